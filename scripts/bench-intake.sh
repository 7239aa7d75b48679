#!/usr/bin/env bash
# Benchmark of the intake on the embedded SQLite store through gRPC (issue 2's target: at
# least 5,000 accepted commands per second sustained, p99 under 20 ms).
#
#   scripts/bench-intake.sh [runs=3] [concurrency=32] [seconds=20]
#
# Each run starts a fresh release node on a free loopback port with its data in a temporary
# directory, drives it with `motcua loadgen` (closed loop: receive, forward, digitise, resolve,
# return, over and over), and stops it. Prints each run's JSON summary and the medians.
# Load generator and node share the machine, as they would on a 2-core test box.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

runs=${1:-3}
concurrency=${2:-32}
seconds=${3:-20}

cargo build --release -p motcua >&2
bin=target/release/motcua
work=$(mktemp -d)
node_pid=""
cleanup() {
    [[ -n $node_pid ]] && kill "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

throughputs=()
p99s=()
for run in $(seq 1 "$runs"); do
    port=$(free_port)
    rm -rf "$work/data"
    # One principal (the node's administrator token) drives the whole load: no per-principal
    # rate limit for the benchmark.
    "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$port" \
        --rate-limit-per-principal 0 2>"$work/node.log" &
    node_pid=$!
    for _ in $(seq 1 50); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    summary=$(MOTCUA_DATA_DIR="$work/data" "$bin" loadgen --mix pipeline --server "http://127.0.0.1:$port" --concurrency "$concurrency" \
        --duration "$seconds" --warmup 3 --json 2>/dev/null)
    kill "$node_pid"
    wait "$node_pid" 2>/dev/null || true
    node_pid=""
    echo "run $run: $summary"
    throughputs+=("$(sed -E 's/.*"throughput_per_s":([0-9.]+).*/\1/' <<<"$summary")")
    # The first p99 is the overall one (the per-RPC ones follow).
    p99s+=("$(grep -o '"p99_ms":[0-9.]*' <<<"$summary" | head -1 | cut -d: -f2)")
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median over $runs runs, $concurrency clients: $(median "${throughputs[@]}") commands/s, p99 $(median "${p99s[@]}") ms"
