#!/usr/bin/env bash
# Gateway overhead benchmark. Builds release, starts backstop-mock and a gateway in front of
# it, and measures direct-to-mock against through-the-gateway with oha, in the same run:
#   1. fixed concurrency, non-streaming, 100,000 requests each: throughput ratio, gateway CPU
#      per request, gateway RSS after those 100,000 requests;
#   2. fixed concurrency, streaming (60 SSE events per answer);
#   3. fixed rate (default 1,000 requests/s), non-streaming (ROUNDS alternating rounds, default
#      5, reported as medians) and streaming: latency p50/p99 and the gateway's added latency
#      (gateway percentile minus direct percentile);
#   4. 1,000 concurrent open streams (the mock's slow_stream fault keeps each open ~3 s).
# Load generator, mock and gateway share the machine's cores, all on loopback.
#   usage: bench/gateway.sh [seconds-per-timed-run] [connections] [rate]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
RATE=${3:-1000}
REQUESTS=${REQUESTS:-100000}
ROUNDS=${ROUNDS:-5}
OPEN_STREAMS=${OPEN_STREAMS:-1000}
source bench/lib.sh
need_tools
build_release

cat >"$WORK/mock.toml" <<'TOML'
log_capacity = 1000
TOML
start_mock MOCK "$WORK/mock.toml"
# GW_THREADS sets server.threads; 0, the default, is one worker thread per core.
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[server]
threads = ${GW_THREADS:-0}
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
start_gateway "$WORK/backstop.toml"

row() { # label report
  printf '%-31s %7.0f/s  p50 %7.3f ms  p99 %7.3f ms  err %s  CPU us/req: gw %s mock %s oha %s other %s\n' \
    "$1" "$(rps "$2")" "$(pct_ms "$2" p50)" "$(pct_ms "$2" p99)" "$(errors "$2")" \
    "$(cpu_us "$2" 1)" "$(cpu_us "$2" 2)" "$(cpu_us "$2" 3)" "$(cpu_us "$2" 4)"
}
# measure LABEL REPORT STREAM URL OHA-ARGS...: one run, and the CPU ticks it cost the gateway,
# the mock, oha and everything else on the machine (other work skews a run: watch that column).
measure() {
  local label=$1 out=$2 stream=$3 url=$4
  shift 4
  local g m b
  g=$(cpu_ticks "$GW_PID"); m=$(cpu_ticks "$MOCK_PID"); b=$(busy_ticks)
  load "$out" "$stream" "$url" "$@"
  g=$(($(cpu_ticks "$GW_PID") - g)); m=$(($(cpu_ticks "$MOCK_PID") - m)); b=$(($(busy_ticks) - b))
  local o; o=$(oha_ticks "$out")
  local rest=$((b - g - m - o)) # /proc/stat is tick-sampled: only meaningful on a busy machine
  echo "$g $m $o $((rest > 0 ? rest : 0))" >"$out.ticks"
  row "$label" "$out"
}
# cpu_us REPORT FIELD: CPU per request of the gateway (1), mock (2), oha (3), the rest (4).
cpu_us() { calc "$(awk -v f="$2" '{print $f}' "$1.ticks") / $HZ / $(total "$1") * 1e6" 0; }

quiet_check
echo "== $(nproc) cores shared by oha, the mock and the gateway; $(date -u +%F)"
load "$WORK/warm" false "$MOCK_URL" -n 2000 -c "$CONNECTIONS"
load "$WORK/warm" false "$GW_URL" -n 2000 -c "$CONNECTIONS"

echo "-- fixed concurrency: $CONNECTIONS connections, $REQUESTS requests each"
measure "direct to mock" "$WORK/d_c" false "$MOCK_URL" -n "$REQUESTS" -c "$CONNECTIONS"
measure "through gateway" "$WORK/g_c" false "$GW_URL" -n "$REQUESTS" -c "$CONNECTIONS"
RSS_100K=$(rss_mb "$GW_PID")
measure "direct to mock (stream)" "$WORK/d_cs" true "$MOCK_URL" -z "${DURATION}s" -w -c "$CONNECTIONS"
measure "through gateway (stream)" "$WORK/g_cs" true "$GW_URL" -z "${DURATION}s" -w -c "$CONNECTIONS"

# A p50 of a few hundred microseconds moves by tens of them from one run to the next on a
# shared VM, so the non-streaming fixed-rate figures are medians over alternating rounds.
ROUND=$(((DURATION + 1) / 2))
echo "-- fixed rate: $RATE requests/s, $ROUNDS alternating rounds of ${ROUND}s each way," \
  "then ${DURATION}s of streams (latency corrected for coordinated omission)"
FIXED=(-q "$RATE" -n $((RATE * ROUND)) -c "$CONNECTIONS" --latency-correction)
: >"$WORK/rounds"
for i in $(seq "$ROUNDS"); do
  measure "direct to mock (round $i)" "$WORK/d_r$i" false "$MOCK_URL" "${FIXED[@]}"
  measure "through gateway (round $i)" "$WORK/g_r$i" false "$GW_URL" "${FIXED[@]}"
  echo "$(calc "($(pct_ms "$WORK/g_r$i" p50) - $(pct_ms "$WORK/d_r$i" p50)) * 1000" 0)" \
    "$(calc "($(pct_ms "$WORK/g_r$i" p99) - $(pct_ms "$WORK/d_r$i" p99)) * 1000" 0)" \
    "$(cpu_us "$WORK/g_r$i" 1)" >>"$WORK/rounds"
done
FIXED=(-q "$RATE" -n $((RATE * DURATION)) -c "$CONNECTIONS" --latency-correction)
measure "direct to mock (stream)" "$WORK/d_rs" true "$MOCK_URL" "${FIXED[@]}"
measure "through gateway (stream)" "$WORK/g_rs" true "$GW_URL" "${FIXED[@]}"

echo "-- $OPEN_STREAMS concurrent streams held open (mock: 50 ms before each of 60 events)"
curl -fsS "$MOCK_URL/_mock/faults" -d '{"kind":"slow_stream","delay":"50ms"}' >/dev/null
PORT=${GW_URL##*:}
(peak=0; while sleep 0.2; do
  n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
  [ "$n" -gt "$peak" ] && { peak=$n; echo "$peak" >"$WORK/peak"; }
done) & PIDS+=($!)
measure "through gateway (slow streams)" "$WORK/g_open" true "$GW_URL" \
  -n $((OPEN_STREAMS * 2)) -c "$OPEN_STREAMS" -t 60s
curl -fsS -X DELETE "$MOCK_URL/_mock/faults" >/dev/null
PEAK=$(cat "$WORK/peak" 2>/dev/null || echo 0)
OPEN_ERRORS=$(errors "$WORK/g_open")
# A complete answer has the same size as one streamed at full speed; a cut one is shorter.
SHORT=$(awk -v a="$(size_per_request "$WORK/g_open")" -v b="$(size_per_request "$WORK/g_cs")" \
  'BEGIN { print (a + 0 < b - 0.5) ? "yes" : "no" }')

echo
echo "== against the targets (issue 3), this run"
add50=$(median 1 <"$WORK/rounds"); add99=$(median 2 <"$WORK/rounds")
s50=$(calc "($(pct_ms "$WORK/g_rs" p50) - $(pct_ms "$WORK/d_rs" p50)) * 1000" 0)
s99=$(calc "($(pct_ms "$WORK/g_rs" p99) - $(pct_ms "$WORK/d_rs" p99)) * 1000" 0)
ratio=$(calc "100 * $(rps "$WORK/g_c") / $(rps "$WORK/d_c")" 0)
sratio=$(calc "100 * $(rps "$WORK/g_cs") / $(rps "$WORK/d_cs")" 0)
cpu=$(cpu_us "$WORK/g_c" 1); cpu_rate=$(median 3 <"$WORK/rounds"); cpu_stream=$(cpu_us "$WORK/g_cs" 1)
printf '%-58s %12s  %s\n' \
  "non-streaming throughput, gateway/direct ($CONNECTIONS conns)" "$ratio%" "$(verdict "$ratio >= 40") (>= 40%)" \
  "gateway CPU per request ($CONNECTIONS conns)" "$cpu us" "$(verdict "$cpu < 60") (< 60 us)" \
  "gateway CPU per request (at $RATE/s)" "$cpu_rate us" "$(verdict "$cpu_rate < 60") (< 60 us)" \
  "added latency p50 at $RATE/s (median of $ROUNDS rounds)" "$add50 us" "$(verdict "$add50 < 150") (< 150 us)" \
  "added latency p99 at $RATE/s (median of $ROUNDS rounds)" "$add99 us" "$(verdict "$add99 < 1000") (< 1 ms)" \
  "gateway RSS after $REQUESTS+ requests" "$RSS_100K MB" "$(verdict "$RSS_100K < 50") (< 50 MB)" \
  "concurrent streams held (peak open, errors, cut short)" "$PEAK, $OPEN_ERRORS, $SHORT" \
  "$(verdict "$PEAK >= $OPEN_STREAMS && $OPEN_ERRORS == 0") ($OPEN_STREAMS, 0, no)"
echo "-- for information"
printf '%-58s %12s\n' \
  "streaming throughput, gateway/direct ($CONNECTIONS conns)" "$sratio%" \
  "gateway CPU per stream of 60 events ($CONNECTIONS conns)" "$cpu_stream us" \
  "added latency of a whole stream p50 / p99 at $RATE/s" "$s50 / $s99 us" \
  "gateway peak RSS (1,000 open streams included)" "$(hwm_mb "$GW_PID") MB" \
  "gateway RSS at the end" "$(rss_mb "$GW_PID") MB"
