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
    set -- --workspace --all-targets
fi
step "cargo test $*"
exec scripts/test-env.sh -- cargo test "$@"
