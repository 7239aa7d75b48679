#!/usr/bin/env bash
# The project's test command: formatting, lints, then the tests against real PostgreSQL and a
# real Kafka-protocol broker (started and stopped by scripts/test-env.sh).
#
#   scripts/test.sh                  # cargo test --workspace --all-targets
#   scripts/test.sh -p motcua-store  # arguments replace the cargo test arguments
#
# DATABASE_URL / KAFKA_BROKERS, when set, are used instead of starting servers (see
# scripts/test-env.sh).

set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf 'test: %s\n' "$*" >&2; }

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

if (($# == 0)); then
    # Says plainly whether the test broker deviates from Apache Kafka where the readers care
    # (a fetch inside a record batch; a killed consumer's partitions); the readers' own tests
    # must pass either way.
    step "broker conformance probes"
    scripts/test-env.sh -- cargo test -p motcua-feed --test broker_continuity the_broker_ \
        -- --include-ignored --nocapture 2>&1 |
        grep -E "broker conformance|panicked|FAILED" >&2 || true
    set -- --workspace --all-targets
fi
step "cargo test $*"
exec scripts/test-env.sh -- cargo test "$@"
