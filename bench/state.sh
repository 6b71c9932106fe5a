#!/usr/bin/env bash
# Shared-state benchmark: how long a breaker opened on one replica takes to open on another through a
# real redis-server (Redis pub/sub), p50 and p99 over 100 trips. Needs redis-server on PATH.
#   usage: bench/state.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "bench/state.sh needs redis-server on PATH" >&2; exit 2; }
cargo run --quiet --release -p backstop-state --example propagation
