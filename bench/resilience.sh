#!/usr/bin/env bash
# Resilience under load (issue 4). A gateway in front of two mocks: model "gpt" served by the
# primary, with the model "backup" (a healthy second mock) as its fallback. oha sends a fixed
# rate of non-streaming requests while the primary fails a fraction of requests with 503, then
# is fully down (503 on everything) for a while. Prints the client-visible success rate, the
# upstream attempts per client request (counted by the mocks themselves) overall and per
# phase, and latency percentiles. Default gateway config: retry, budget and breaker defaults;
# BREAKER=off keeps the primary's breaker from opening, to see retries and the budget alone.
#   usage: [BREAKER=off] bench/resilience.sh [rate] [flaky-seconds] [down-seconds] [failure-probability]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-200}
FLAKY=${2:-30}
DOWN=${3:-10}
P=${4:-0.3}
source bench/lib.sh
need_tools
build_release

start_mock PRIMARY
start_mock BACKUP
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[providers.primary]
kind = "openai"
base_url = "$PRIMARY_URL/v1"
[providers.backup]
kind = "openai"
base_url = "$BACKUP_URL/v1"
[models.gpt]
targets = [{ provider = "primary", model = "gpt-4o" }]
fallbacks = ["backup"]
[models.backup]
targets = [{ provider = "backup", model = "gpt-4o-mini" }]
TOML
if [ "${BREAKER:-on}" = off ]; then
  printf '[circuit_breaker]\nfailure_threshold = 1000000\nfailure_rate = 1.0\n' >>"$WORK/backstop.toml"
fi
start_gateway "$WORK/backstop.toml"
# Warm the pools, then forget those requests.
load "$WORK/warm" false "$GW_URL" -n 200 -c 20
for url in "$PRIMARY_URL" "$BACKUP_URL"; do curl -fsS -X DELETE "$url/_mock/requests" >/dev/null; done

quiet_check
# Faults are checked in order: the outage window first, then the random failures.
curl -fsS "$PRIMARY_URL/_mock/faults" -d "[
  {\"kind\":\"status\",\"status\":503,\"window\":[\"${FLAKY}s\",\"$((FLAKY + DOWN))s\"]},
  {\"kind\":\"status\",\"status\":503,\"probability\":$P}]" >/dev/null
START_MS=$(date +%s%3N)
N=$((RATE * (FLAKY + DOWN)))
echo "== $N requests at $RATE/s: primary fails ${P} of requests for ${FLAKY}s, then all for ${DOWN}s (breaker ${BREAKER:-on})"
load "$WORK/run" false "$GW_URL" -q "$RATE" -n "$N" -c $((RATE * 2)) --latency-correction -t 130s

# per_phase URL: "calls-in-flaky-phase calls-in-down-phase" from the mock's request log.
per_phase() {
  curl -fsS "$1/_mock/requests" | jq --argjson s "$START_MS" --argjson f "$FLAKY" \
    '[.[] | select(.route == "openai") | (.unix_ms - $s) / 1000] |
     "\(map(select(. < $f)) | length) \(map(select(. >= $f)) | length)"' -r
}
read -r P_FLAKY P_DOWN <<<"$(per_phase "$PRIMARY_URL")"
read -r B_FLAKY B_DOWN <<<"$(per_phase "$BACKUP_URL")"
P_FAILED=$(curl -fsS "$PRIMARY_URL/_mock/requests" | jq '[.[] | select(.outcome != "ok")] | length')
# Answers served by the model asked for ("gpt", on the primary) in the flaky phase: the primary's
# successful calls then, each one answer.
P_OK_FLAKY=$(curl -fsS "$PRIMARY_URL/_mock/requests" | jq --argjson s "$START_MS" --argjson f "$FLAKY" \
  '[.[] | select(.route == "openai" and .outcome == "ok" and (.unix_ms - $s) / 1000 < $f)] | length')
OK=$(ok_count "$WORK/run"); TOTAL=$(total "$WORK/run"); ERR=$(errors "$WORK/run")
SUCCESS=$(calc "100 * $OK / $N" 3)
CALLS=$((P_FLAKY + P_DOWN + B_FLAKY + B_DOWN))
PER_REQ=$(calc "$CALLS / $N" 3)

echo "client: $OK of $N answered 200 ($TOTAL got an HTTP answer, $ERR failed): $SUCCESS% success"
jq -r '"  statuses: \(.statusCodeDistribution)   transport errors: \(.errorDistribution)"' "$WORK/run"
printf 'latency: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  p99.9 %.1f ms  max %.1f ms\n' \
  "$(pct_ms "$WORK/run" p50)" "$(pct_ms "$WORK/run" p90)" "$(pct_ms "$WORK/run" p99)" \
  "$(pct_ms "$WORK/run" p99.9)" "$(jq '.summary.slowest * 1000' "$WORK/run")"
echo "upstream calls: primary $((P_FLAKY + P_DOWN)) ($P_FAILED failed), backup $((B_FLAKY + B_DOWN))"
printf '  flaky phase: %s calls for ~%s requests = %s per request\n' "$((P_FLAKY + B_FLAKY))" \
  "$((RATE * FLAKY))" "$(calc "($P_FLAKY + $B_FLAKY) / ($RATE * $FLAKY)" 3)"
printf '  flaky phase: %s answers from the model asked for = %s%%\n' "$P_OK_FLAKY" \
  "$(calc "100 * $P_OK_FLAKY / ($RATE * $FLAKY)" 1)"
printf '  down phase:  %s calls for ~%s requests = %s per request\n' "$((P_DOWN + B_DOWN))" \
  "$((RATE * DOWN))" "$(calc "($P_DOWN + $B_DOWN) / ($RATE * $DOWN)" 3)"
# timeline URL: upstream calls in each 5 s slice of the run.
timeline() {
  curl -fsS "$1/_mock/requests" | jq -r --argjson s "$START_MS" --argjson n $(((FLAKY + DOWN + 4) / 5)) \
    '[.[] | select(.route == "openai") | ((.unix_ms - $s) / 5000 | floor)] as $t |
     [range(0; $n) as $i | ($t | map(select(. == $i)) | length)] | map(tostring) | join(" ")'
}
echo "calls per 5 s, primary: $(timeline "$PRIMARY_URL")"
echo "calls per 5 s, backup:  $(timeline "$BACKUP_URL")"
echo
echo "== against the targets (issue 4)"
printf '%-40s %9s  %s\n' \
  "client-visible success" "$SUCCESS%" "$(verdict "$SUCCESS >= 99.9") (>= 99.9%)" \
  "upstream attempts per client request" "$PER_REQ" "$(verdict "$PER_REQ <= 1.3") (<= 1.3)"
