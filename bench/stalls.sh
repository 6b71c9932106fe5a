#!/usr/bin/env bash
# Stall detection benchmark (issue 18): 1,000 streams of which 5% stall mid-answer (after 20
# of 60 chunks arriving every 20 ms), rescued by a mirror that continues from a prefill. For
# `idle = "auto"` (the default) and `idle = "30s"`, prints the time from the stall to the
# rescue (the longest silence the client saw in each stalled stream), p50 and p99. Then 10,000
# streams with natural pauses (one pause of 3x the usual gap in each) and the number the
# gateway took for stalled (goal: 0).
#   usage: bench/stalls.sh [streams] [concurrency] [pausing streams]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
STREAMS=${1:-1000}
CONCURRENCY=${2:-100}
PAUSING=${3:-10000}
command -v jq >/dev/null || { echo "jq is needed: apt-get install -y jq" >&2; exit 1; }
build_release

cat >"$WORK/stalling.toml" <<'TOML'
seed = 18
[[faults]]
kind = "slow_stream"
delay = "20ms"
probability = 0.95
[[faults]]
kind = "stall"
after = 21
for = "120s"
delay = "20ms"
TOML
cat >"$WORK/pausing.toml" <<'TOML'
[[faults]]
kind = "stall"
after = 30
for = "60ms"
delay = "20ms"
TOML
start_mock A "$WORK/stalling.toml"
start_mock B
start_mock C "$WORK/pausing.toml"
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[providers.a]
kind = "openai"
base_url = "$A_URL/v1"
[providers.b]
kind = "openai"
base_url = "$B_URL/v1"
[providers.c]
kind = "openai"
base_url = "$C_URL/v1"
[models.mirror]
targets = [{ provider = "b", model = "m" }]
prefill = true
[models.auto]
targets = [{ provider = "a", model = "m" }]
fallbacks = ["mirror"]
[models.fixed]
targets = [{ provider = "a", model = "m" }]
fallbacks = ["mirror"]
idle = "30s"
[models.pausing]
targets = [{ provider = "c", model = "m" }]
fallbacks = ["mirror"]
[timeouts]
total = "300s"
[retry]
budget_ratio = 1.0
TOML
start_gateway "$WORK/backstop.toml"

run() { # MODEL [STREAMS]
  python3 bench/stalls.py "$GW_URL" "$1" "${2:-$STREAMS}" "$CONCURRENCY" >"$WORK/$1.json"
  jq -r --arg model "$1" '
    (.gaps | map(select(. > 1)) | sort) as $stalled
    | def pct(p): if ($stalled | length) == 0 then "-" else ($stalled[(($stalled | length) - 1) * p | floor] * 1000 | round | tostring) + " ms" end;
    "\($model): \(.complete) of \(.gaps | length) complete; \($stalled | length) stalled, stall to rescue p50 \(pct(0.5)), p99 \(pct(0.99))"' \
    "$WORK/$1.json"
}
run auto
run fixed
run pausing "$PAUSING"
stalls=$(curl -s "$GW_URL/metrics" | awk '/^backstop_stream_stalls_total\{target="c\/m"/ { n += $2 } END { print n + 0 }')
echo "pausing: streams taken for stalled: $stalls (goal 0)"
