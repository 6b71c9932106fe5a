#!/usr/bin/env bash
# Idempotency-key overhead: requests at a fixed rate (default 1,000/s) through the gateway to the mock, SQLite
# state, in rounds alternating between requests without an Idempotency-Key and requests each with a unique one;
# reports each round's p50 and the added p50 as the median of the per-round differences, same run. Issue 13
# asks the check to add <= 20 us p50 at 1,000 req/s on SQLite. oha sends one fixed header (every keyed request
# after the first would be a replay), so the client is the example crates/backstop-gateway/examples/idempotency_load.rs.
#   usage: bench/idempotency.sh [rate=1000] [seconds-per-round=5] [rounds=6]
#   environment: BIN=path (another build of the gateway), CLIENT_PROFILE=release (the client's cargo profile;
#   `quick` builds it in minutes), STATE=memory (the gateway's `state`: the key's cost without the file)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-1000}
SECONDS_PER_ROUND=${2:-5}
ROUNDS=${3:-6}
source bench/lib.sh
build_release
CLIENT_PROFILE=${CLIENT_PROFILE:-release}
cargo build --profile "$CLIENT_PROFILE" --quiet -p backstop-gateway --example idempotency_load

start_gateway_on_mock "${STATE:-sqlite:$WORK/state.db}"

echo "== $(nproc) cores shared by the client, the mock and the gateway; $(date -u +%F)"
quiet_check
GATEWAY_PID=$GW_PID GATEWAY_CLK_TCK=$HZ "${LOAD_RUN[@]}" target/"$CLIENT_PROFILE"/examples/idempotency_load "$GW_URL" "$RATE" "$SECONDS_PER_ROUND" "$ROUNDS"
echo "$(curl -fsS "$GW_URL/metrics" | grep -E '^backstop_idempotency' || true)"
