#!/usr/bin/env bash
# Checks the `metrics_endpoint` example's exposition with real Prometheus tooling:
#   1. `promtool check metrics` on its /metrics output must report no problem;
#   2. a real Prometheus (temporary config and data directory, loopback only, scrape interval 1 s) scrapes it
#      for 15 s while a client echoes, and `tidegate_budget_used_bytes` must come back through Prometheus' HTTP
#      API (/api/v1/query) with a result, with 13 samples or more in the 15 s and the client's frames moving.
# Usage: scripts/prometheus_check.sh
#
# Installs Debian's `prometheus` package (and curl) with apt-get when `promtool` or `prometheus` is missing: run
# it as root, or with sudo available. Everything binds 127.0.0.1; the example, Prometheus and the client are
# stopped and the temporary directory removed on exit, whatever the exit.
set -euo pipefail

SCRAPE_SECONDS=15
cd "$(dirname "$0")/.."

say() { printf 'prometheus_check: %s\n' "$*"; }
fail() {
    say "FAIL: $*" >&2
    exit 1
}

if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null || ! command -v curl >/dev/null; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || fail "promtool/prometheus missing, and not root to install them"
        sudo=(sudo)
    fi
    say "installing Debian's prometheus package"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # Packages only: in a container without an init system the package's service is not started.
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends prometheus curl >/dev/null
fi
say "$(promtool --version 2>&1 | head -n1)"

cargo build --quiet --example metrics_endpoint
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (at most 30 s) until file $1 has a line matching $2, while process $3 lives; prints the match.
wait_line() {
    local deadline=$((SECONDS + 30))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ((SECONDS >= deadline)) || ! kill -0 "$3" 2>/dev/null; then
            cat "$1" >&2 || true
            fail "no line matching '$2' in $1"
        fi
        sleep 0.1
    done
    grep -m1 "$2" "$1"
}

target/debug/examples/metrics_endpoint --listen 127.0.0.1:0 --admin 127.0.0.1:0 --workers 2 \
    >"$work/endpoint.out" 2>&1 &
pids+=($!)
endpoint_pid=$!
echo_addr=$(wait_line "$work/endpoint.out" 'echo listening on ' "$endpoint_pid" | sed 's/.*listening on //')
admin_addr=$(wait_line "$work/endpoint.out" 'admin listening on ' "$endpoint_pid" | sed 's/.*listening on //')
say "metrics_endpoint: echo on $echo_addr, admin on $admin_addr"

# A client that keeps echoing while Prometheus watches, so counters move: one 5-byte frame every 100 ms on one
# connection (bash's /dev/tcp; the answers are read and dropped).
(
    exec 3<>"/dev/tcp/${echo_addr%:*}/${echo_addr##*:}"
    cat <&3 >/dev/null &
    while printf '\0\0\0\005hello' >&3; do sleep 0.1; done
) 2>/dev/null &
pids+=($!)

curl -fsS --max-time 10 "http://$admin_addr/metrics" -o "$work/metrics.txt"
say "/metrics: $(grep -c '^tidegate_' "$work/metrics.txt") series in $(grep -c '^# TYPE' "$work/metrics.txt") families"
if ! promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1; then
    cat "$work/promtool.out" >&2
    fail "promtool check metrics failed"
fi
if [[ -s "$work/promtool.out" ]]; then
    cat "$work/promtool.out" >&2
    fail "promtool check metrics reported problems"
fi
say "promtool check metrics: no problems"

# A free loopback port for Prometheus' web side: one nothing answers on.
port=""
for candidate in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
        port=$candidate
        break
    fi
done
[[ -n "$port" ]] || fail "no free loopback port for Prometheus"

cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tidegate
    static_configs:
      - targets: ['$admin_addr']
EOF
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool check config"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
pids+=($!)
prometheus_pid=$!
api="http://127.0.0.1:$port"
deadline=$((SECONDS + 30))
until curl -fsS --max-time 2 "$api/-/ready" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! kill -0 "$prometheus_pid" 2>/dev/null; then
        tail -n 20 "$work/prometheus.log" >&2 || true
        fail "Prometheus did not become ready on 127.0.0.1:$port"
    fi
    sleep 0.2
done
say "Prometheus ready on 127.0.0.1:$port"
# Prometheus hands discovered targets to its scrapers every 5 s: the 15 s count from the first scrape.
deadline=$((SECONDS + 30))
until grep -q '"health":"up"' <<<"$(curl -fsS --max-time 2 "$api/api/v1/targets" 2>/dev/null)"; do
    ((SECONDS < deadline)) || fail "the scrape target is not up: $(curl -sS "$api/api/v1/targets")"
    sleep 0.2
done
say "scrape target up; scraping for ${SCRAPE_SECONDS} s"
sleep "$SCRAPE_SECONDS"
result=$(curl -fsS --max-time 10 -G "$api/api/v1/query" --data-urlencode 'query=tidegate_budget_used_bytes')
say "query tidegate_budget_used_bytes: $result"
grep -q '"status":"success"' <<<"$result" || fail "the query did not succeed"
grep -q '"result":\[{' <<<"$result" || fail "the query returned no series"
scrapes=$(curl -fsS --max-time 10 -G "$api/api/v1/query" \
    --data-urlencode "query=count_over_time(tidegate_budget_limit_bytes[${SCRAPE_SECONDS}s])")
samples=$(sed -n 's/.*"value":\[[0-9.]*,"\([0-9]*\)"\].*/\1/p' <<<"$scrapes")
say "samples of tidegate_budget_limit_bytes in the last ${SCRAPE_SECONDS} s: ${samples:-none}"
# Scraped every second for 15 s: allow for the first scrape's offset and a late one.
((${samples:-0} >= SCRAPE_SECONDS - 2)) || fail "too few scrapes: $scrapes"
# The client's frames, as Prometheus sees them move (about 10 a second).
rate=$(curl -fsS --max-time 10 -G "$api/api/v1/query" \
    --data-urlencode 'query=sum(rate(tidegate_codec_frames_total[10s]))')
frames=$(sed -n 's/.*"value":\[[0-9.]*,"\([0-9.e+-]*\)"\].*/\1/p' <<<"$rate")
say "frames per second through Prometheus: ${frames:-none}"
awk -v r="${frames:-0}" 'BEGIN { exit !(r > 1) }' || fail "tidegate_codec_frames_total did not move: $rate"
say "OK"
