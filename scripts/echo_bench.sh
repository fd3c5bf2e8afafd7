#!/usr/bin/env bash
# Throughput and p99 latency of the `echo_server` example (tidegate::conn) against `unguarded_echo` (the common
# tokio echo server: Framed + unbounded channel + a task per frame) under the same pipelined load from the
# `echo_load` example, for two loads:
#   small: 16 connections x 64-byte frames x 16 in flight per connection
#   large: 16 connections x 4 KiB frames x 4 in flight per connection
# Usage: scripts/echo_bench.sh [duration_s]   (measured seconds per run, default 5, after 1 s of warm-up)
#
# The server and the client each run with `--workers 1`: on a 2-core machine each then has one core, so the
# client is not starving the server of CPU (or the other way round) and the two servers get the same share.
# Everything binds 127.0.0.1; the servers are killed on exit, whatever the exit.
set -euo pipefail

DURATION=${1:-5}
WARMUP=1
cd "$(dirname "$0")/.."

cargo build --release --quiet --example echo_server --example unguarded_echo --example echo_load
bin=target/release/examples
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts server $1 on a free loopback port; sets server_pid and addr.
start_server() {
    local out="$work/$1.out"
    "$bin/$1" --addr 127.0.0.1:0 --workers 1 >"$out" 2>&1 &
    server_pid=$!
    local deadline=$((SECONDS + 30))
    until grep -q 'listening on ' "$out" 2>/dev/null; do
        if ((SECONDS >= deadline)) || ! kill -0 "$server_pid" 2>/dev/null; then
            echo "echo_bench: $1 did not start" >&2
            cat "$out" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$out" | head -n1)
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# name conns size inflight
loads=("small 16 64 16" "large 16 4096 4")
servers=(echo_server unguarded_echo)
declare -A fps p99 errs

for server in "${servers[@]}"; do
    start_server "$server"
    for load in "${loads[@]}"; do
        read -r name conns size inflight <<<"$load"
        line=$(timeout $((DURATION + WARMUP + 30)) "$bin/echo_load" --addr "$addr" --conns "$conns" \
            --size "$size" --inflight "$inflight" --duration-s "$DURATION" --warmup-s "$WARMUP" --workers 1 |
            tail -n1)
        fps[$name,$server]=$(sed -n 's/.*frames_per_s=\([0-9]*\).*/\1/p' <<<"$line")
        p99[$name,$server]=$(sed -n 's/.*p99_us=\([0-9]*\).*/\1/p' <<<"$line")
        errs[$name,$server]=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")
    done
    stop_server
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

printf '%-34s %-15s %12s %9s %7s\n' load server frames/s "p99 µs" errors
for load in "${loads[@]}"; do
    read -r name conns size inflight <<<"$load"
    label="$name (${conns}c x ${size}B x ${inflight})"
    for server in "${servers[@]}"; do
        printf '%-34s %-15s %12s %9s %7s\n' "$label" "$server" "${fps[$name,$server]}" \
            "${p99[$name,$server]}" "${errs[$name,$server]}"
    done
    printf '%-34s %-15s %12s %9s\n' "$label" "tidegate/unguarded" \
        "$(ratio "${fps[$name,echo_server]}" "${fps[$name,unguarded_echo]}")" \
        "$(ratio "${p99[$name,echo_server]}" "${p99[$name,unguarded_echo]}")"
done
