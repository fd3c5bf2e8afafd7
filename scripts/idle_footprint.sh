#!/usr/bin/env bash
# Server memory per idle `Connection`: starts the `idle_footprint` example's echo server on 127.0.0.1, opens
# CONNECTIONS (default 8000) loopback connections from a separate client process (each sends one frame, reads the
# echo, then stays idle), and prints the growth of the server's VmRSS per connection. Fails above LIMIT bytes
# (default 4096).
set -euo pipefail

CONNECTIONS=${CONNECTIONS:-8000}
LIMIT=${LIMIT:-4096}
cd "$(dirname "$0")/.."

# Each process needs one descriptor per connection, plus a few.
hard=$(ulimit -Hn)
if [[ "$hard" != unlimited && "$hard" -lt $((CONNECTIONS + 64)) ]]; then
    echo "idle_footprint: the hard limit on open files ($hard) is below $((CONNECTIONS + 64)); using $((hard - 64)) connections" >&2
    CONNECTIONS=$((hard - 64))
fi
ulimit -n "$hard"

cargo build --release --example idle_footprint --quiet
bin=target/release/examples/idle_footprint
work=$(mktemp -d)
server_pid=""
client_pid=""
cleanup() {
    [[ -n "$client_pid" ]] && kill "$client_pid" 2>/dev/null || true
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin" server "$CONNECTIONS" >"$work/server.out" &
server_pid=$!

wait_for() { # file pattern seconds
    local deadline=$((SECONDS + $3))
    until grep -q "$2" "$1" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "idle_footprint: timed out waiting for '$2' in $1" >&2
            cat "$1" >&2 || true
            exit 1
        fi
        sleep 0.1
    done
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

wait_for "$work/server.out" '^port ' 30
port=$(awk '/^port / { print $2 }' "$work/server.out")
sleep 0.5
before=$(rss_kib "$server_pid")

"$bin" clients "$port" "$CONNECTIONS" >"$work/client.out" &
client_pid=$!
wait_for "$work/client.out" '^connected ' 120
wait_for "$work/server.out" '^ready ' 60
after=$(rss_kib "$server_pid")

per_conn=$(((after - before) * 1024 / CONNECTIONS))
heap_before=$(awk '/^heap / { print $2; exit }' "$work/server.out")
heap_after=$(awk '/^heap / { last = $2 } END { print last }' "$work/server.out")
echo "connections: $CONNECTIONS"
echo "server VmRSS: ${before} KiB before, ${after} KiB after"
echo "per idle connection: ${per_conn} bytes of RSS (limit ${LIMIT}), of which $(((heap_after - heap_before) / CONNECTIONS)) bytes of live heap"
if ((per_conn > LIMIT)); then
    echo "idle_footprint: FAILED, ${per_conn} > ${LIMIT} bytes per connection" >&2
    exit 1
fi
