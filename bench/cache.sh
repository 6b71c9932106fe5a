#!/usr/bin/env bash
# Cached-tier benchmark: answers served from a model's cache (serve = "always", SQLite state)
# against direct-to-mock answers and against the same gateway calling the mock, non-streaming,
# fixed concurrency, same run. Issue 13 asks cache hits at >= 80% of the throughput of
# direct-to-mock answers through the gateway.
#   usage: bench/cache.sh [seconds-per-run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
source bench/lib.sh
need_tools
build_release

start_mock MOCK
cat >"$WORK/backstop.toml" <<TOML
state = "sqlite:$WORK/state.db"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
cache = { serve = "always" }
[models.plain]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
start_gateway "$WORK/backstop.toml"

# run LABEL URL MODEL: one timed oha run, non-streaming.
run() {
  oha --no-tui --output-format json -m POST -T application/json -z "${DURATION}s" -c "$CONNECTIONS" \
    -d "{\"model\":\"$3\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}" \
    "$2/v1/chat/completions" >"$WORK/$1"
  printf '%-34s %8.0f/s  p50 %6.3f ms  p99 %6.3f ms  non-200 %s\n' "$1" "$(rps "$WORK/$1")" \
    "$(pct_ms "$WORK/$1" p50)" "$(pct_ms "$WORK/$1" p99)" "$(errors "$WORK/$1")"
}

echo "== $(nproc) cores shared by oha, the mock and the gateway; $(date -u +%F)"
curl -fsS "$GW_URL/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"gpt","messages":[{"role":"user","content":"Say hello"}]}' >/dev/null
sleep 0.5
run direct-to-mock "$MOCK_URL" gpt
run gateway-to-mock "$GW_URL" plain
run gateway-cache-hits "$GW_URL" gpt
echo "cache hits / direct to mock:     $(calc "100 * $(rps "$WORK/gateway-cache-hits") / $(rps "$WORK/direct-to-mock")" 0)%"
echo "cache hits / gateway to mock:    $(calc "100 * $(rps "$WORK/gateway-cache-hits") / $(rps "$WORK/gateway-to-mock")" 0)%"
echo "$(curl -fsS "$GW_URL/metrics" | grep '^backstop_cache_hits_total')"
