#!/usr/bin/env bash
# Hedging benchmark (issue 6): two mock channels whose first byte is slow (2 s) for 5% of
# requests. The same load runs against a model without hedging and one with
# `hedge = { delay = "50ms" }`; prints p50/p99 latency of each and the upstream calls per
# client request (from the mocks' request logs). Targets: p99 at least 5x lower with
# hedging, upstream calls up at most 10%.
#   usage: bench/hedge.sh [requests] [concurrency]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
REQUESTS=${1:-2000}
CONCURRENCY=${2:-16}
need_tools
build_release

cat >"$WORK/slow.toml" <<'TOML'
seed = 7
[[faults]]
kind = "delay_headers"
delay = "2s"
probability = 0.05
TOML
start_mock A "$WORK/slow.toml"
start_mock B "$WORK/slow.toml"
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[providers.a]
kind = "openai"
base_url = "$A_URL/v1"
[providers.b]
kind = "openai"
base_url = "$B_URL/v1"
[models.plain]
targets = [{ provider = "a", model = "m" }, { provider = "b", model = "m" }]
[models.hedged]
targets = [{ provider = "a", model = "m" }, { provider = "b", model = "m" }]
hedge = { delay = "50ms" }
[timeouts]
first_byte = "10s"
TOML
start_gateway "$WORK/backstop.toml"

upstream_calls() {
  local a b
  a=$(curl -s "$A_URL/_mock/requests" | jq 'length')
  b=$(curl -s "$B_URL/_mock/requests" | jq 'length')
  echo $((a + b))
}
run_model() { # MODEL OUT
  curl -s -X DELETE "$A_URL/_mock/requests" >/dev/null
  curl -s -X DELETE "$B_URL/_mock/requests" >/dev/null
  oha --no-tui --output-format json -m POST -T application/json \
    -d "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}" \
    -n "$REQUESTS" -c "$CONCURRENCY" "$GW_URL/v1/chat/completions" >"$2"
  echo "$(upstream_calls)" >"$2.calls"
}

run_model plain "$WORK/plain.json"
run_model hedged "$WORK/hedged.json"
report() { # NAME OUT
  local calls; calls=$(cat "$2.calls")
  printf '%-8s p50 %8.1f ms   p99 %8.1f ms   ok %s/%s   upstream calls per request %s\n' "$1" \
    "$(pct_ms "$2" p50)" "$(pct_ms "$2" p99)" "$(ok_count "$2")" "$REQUESTS" "$(calc "$calls / $REQUESTS" 3)"
}
echo "== $REQUESTS requests, $CONCURRENCY connections, 5% of first bytes 2 s late, hedge after 50 ms"
report plain "$WORK/plain.json"
report hedged "$WORK/hedged.json"
P99_PLAIN=$(pct_ms "$WORK/plain.json" p99)
P99_HEDGED=$(pct_ms "$WORK/hedged.json" p99)
CALLS_PLAIN=$(cat "$WORK/plain.json.calls")
CALLS_HEDGED=$(cat "$WORK/hedged.json.calls")
echo "p99 falls $(calc "$P99_PLAIN / $P99_HEDGED")x (target >= 5x: $(verdict "$P99_PLAIN / $P99_HEDGED >= 5"))"
echo "upstream calls grow $(calc "100 * ($CALLS_HEDGED - $CALLS_PLAIN) / $CALLS_PLAIN")% (target <= 10%: $(verdict "$CALLS_HEDGED <= 1.1 * $CALLS_PLAIN"))"
