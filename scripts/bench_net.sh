#!/usr/bin/env bash
# Network benchmark: gort against tokio on loopback, same machine, same sitting.
#
#   scripts/bench_net.sh [SECS]      (default 10 s per run)
#
# 1. HTTP/1.1 plaintext: `wrk -t1 -c100 -d${SECS}s --latency` against examples/http_hello (gort) and
#    examples/http_hello_tokio (the same server on tokio). wrk comes from Debian's packages
#    (installed here with apt-get when missing).
# 2. TCP echo: examples/net_load (100 connections, 64-byte messages, at most SECS seconds and
#    5,000,000 messages) against examples/echo_server and examples/echo_server_tokio.
#
# Each server runs BENCH_ROUNDS times (default 3), alternating with its rival; prints the medians of
# requests/s and p99 side by side. Targets (shared/DESIGN.md): gort >= 1.1x tokio's
# requests/s, and a p99 no worse than tokio's. Every server this script starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
HTTP_PORT=${BENCH_HTTP_PORT:-18480}
ECHO_PORT=${BENCH_ECHO_PORT:-18481}

if ! command -v wrk >/dev/null 2>&1; then
    echo "== installing wrk (Debian package) =="
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

cargo build --release --example http_hello --example http_hello_tokio \
    --example echo_server --example echo_server_tokio --example net_load
BIN=target/release/examples

SERVER_PID=""
stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

start_server() { # binary addr
    "$BIN/$1" "$2" >/dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/${2%:*}/${2#*:}") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench_net: $1 did not start listening on $2" >&2
    exit 1
}

# wrk's latency lines use us/ms/s units: print microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "s") n *= 1e6; else if (u == "ms") n *= 1e3; else if (u == "m") n *= 6e7;
        printf "%.0f", n }'
}

run_wrk() { # binary -> "reqs p99_us"
    local addr="127.0.0.1:$HTTP_PORT"
    start_server "$1" "$addr"
    wrk -t1 -c100 -d2s "http://$addr/" >/dev/null # warm-up
    local out
    out=$(wrk -t1 -c100 -d"${SECS}s" --latency "http://$addr/")
    stop_server
    local reqs p99
    reqs=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
    echo "$reqs $(to_us "$p99")"
}

run_echo() { # binary -> "msgs p99_us"
    local addr="127.0.0.1:$ECHO_PORT"
    start_server "$1" "$addr"
    "$BIN/net_load" "$addr" 100 64 1 >/dev/null # warm-up
    local out
    out=$("$BIN/net_load" "$addr" 100 64 "$SECS" 5000000)
    stop_server
    echo "$out" | awk '/^RESULT/ { split($2, r, "="); split($3, p, "="); print r[2], p[2] }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The machine is shared: each server runs ROUNDS times, alternating with its rival, and the table
# shows medians.
ROUNDS=${BENCH_ROUNDS:-3}
declare -A R
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round/$ROUNDS: HTTP/1.1 plaintext (wrk -t1 -c100 -d${SECS}s), TCP echo (100 conns x 64 B, ${SECS}s) =="
    for s in http_hello http_hello_tokio; do
        read -r a b < <(run_wrk "$s")
        echo "   $s: $a req/s, p99 $b us"
        R[$s.rate]+="$a "
        R[$s.p99]+="$b "
    done
    for s in echo_server echo_server_tokio; do
        read -r a b < <(run_echo "$s")
        echo "   $s: $a msg/s, p99 $b us"
        R[$s.rate]+="$a "
        R[$s.p99]+="$b "
    done
done
g_req=$(echo "${R[http_hello.rate]}" | median)
t_req=$(echo "${R[http_hello_tokio.rate]}" | median)
g_p99=$(echo "${R[http_hello.p99]}" | median)
t_p99=$(echo "${R[http_hello_tokio.p99]}" | median)
g_msg=$(echo "${R[echo_server.rate]}" | median)
t_msg=$(echo "${R[echo_server_tokio.rate]}" | median)
g_ep99=$(echo "${R[echo_server.p99]}" | median)
t_ep99=$(echo "${R[echo_server_tokio.p99]}" | median)

printf '\nmedians of %s rounds\n%-28s %14s %14s %10s\n' "$ROUNDS" "workload" "gort" "tokio" "gort/tokio"
printf '%-28s %14s %14s %10s\n' "http plaintext req/s" "$g_req" "$t_req" "$(ratio "$g_req" "$t_req")"
printf '%-28s %14s %14s %10s\n' "http plaintext p99 (us)" "$g_p99" "$t_p99" "$(ratio "$g_p99" "$t_p99")"
printf '%-28s %14s %14s %10s\n' "echo msgs/s" "$g_msg" "$t_msg" "$(ratio "$g_msg" "$t_msg")"
printf '%-28s %14s %14s %10s\n' "echo p99 (us)" "$g_ep99" "$t_ep99" "$(ratio "$g_ep99" "$t_ep99")"
