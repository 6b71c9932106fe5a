#!/usr/bin/env bash
# Durable queue benchmark: jobs per second committed to the queue on SQLite (and Redis when redis-server is on
# PATH), from 1 and 32 concurrent callers, against the store's plain record write as a baseline.
#   usage: bench/queue.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
[[ "${1:-}" == "--debug" ]] && profile=()
cargo run --quiet "${profile[@]}" -p backstop-state --example enqueue
