#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md, one after another, in one sitting (so comparisons
# between them are fair), and keeps each one's output in a directory:
#
#   scripts/bench-all.sh            # everything: ~20 minutes on 2 cores, after the build
#   scripts/bench-all.sh --quick    # smaller sizes and single runs: about 15 minutes
#   scripts/bench-all.sh intake replay   # only the named ones
#
# Names: intake intake-pg relay e2e feed replay freshness deadlines portal history.
# PostgreSQL and the broker are started by scripts/test-env.sh as the tests do (or use
# DATABASE_URL / KAFKA_BROKERS). Results go to ${MOTCUA_BENCH_DIR:-target/bench}/<name>.log;
# the last lines of each are printed at the end. Record them in BENCHMARKS.md with the load
# average shown here: the machine is shared, and another process's build halves the numbers.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
if [[ ${1:-} == "--quick" ]]; then
    quick=1
    shift
fi
all=(intake intake-pg relay e2e feed replay freshness deadlines portal history)
wanted=("$@")
((${#wanted[@]})) || wanted=("${all[@]}")
out=${MOTCUA_BENCH_DIR:-target/bench}
mkdir -p "$out"

size() { if ((quick)); then echo "$2"; else echo "$1"; fi; }

echo "bench: building the release binaries and examples" >&2
cargo build --release --workspace --examples >&2
cargo build --release -p motcua >&2

run() {
    local name=$1
    shift
    echo "bench: $name (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    if "$@" >"$out/$name.log" 2>&1; then
        echo "bench: $name done" >&2
    else
        echo "bench: $name FAILED (see $out/$name.log)" >&2
    fi
}

for name in "${wanted[@]}"; do
    case $name in
    intake) run intake scripts/bench-intake.sh "$(size 3 1)" 48 "$(size 15 10)" ;;
    intake-pg) run intake-pg env KAFKA_BROKERS=skip scripts/test-env.sh -- \
        scripts/bench-intake.sh "$(size 3 1)" 32 "$(size 15 10)" ;;
    relay) run relay scripts/test-env.sh -- target/release/examples/relay_bench \
        --events "$(size 200000 50000)" --runs "$(size 3 1)" ;;
    e2e) run e2e scripts/test-env.sh -- target/release/examples/e2e_latency 1000 "$(size 20 8)" 12 ;;
    feed) run feed scripts/test-env.sh -- target/release/examples/feed_bench all --runs "$(size 3 1)" ;;
    replay) run replay env KAFKA_BROKERS=skip scripts/test-env.sh -- \
        target/release/examples/replay_bench --dossiers "$(size 400000 50000)" --days 73 \
        --runs "$(size 3 1)" ;;
    freshness) run freshness scripts/test-env.sh -- target/release/examples/freshness_bench --feed kafka ;;
    deadlines) run deadlines target/release/examples/deadline_bench \
        --dossiers "$(size 1000000 100000)" --overdue "$(size 100000 10000)" ;;
    portal) run portal target/release/examples/sync_bench --dossiers "$(size 200000 20000)" ;;
    history)
        rm -rf "$out/history-store"
        run history target/release/motcua history generate --data-dir "$out/history-store" \
            --dossiers "$(size 200000 20000)" --days 365
        ;;
    *)
        echo "bench: unknown benchmark '$name' (one of: ${all[*]})" >&2
        exit 2
        ;;
    esac
done

for name in "${wanted[@]}"; do
    echo "== $name"
    tail -n 5 "$out/$name.log" 2>/dev/null || true
done
