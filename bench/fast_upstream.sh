#!/usr/bin/env bash
# Hostile-upstream benchmark: what an upstream that floods the gateway can make it hold.
# Builds release, starts bench/fast_upstream.py (valid deltas as fast as the socket takes
# them, forever; or non-streaming answers of 60-100 MB) and a gateway in front of it, and
# reports the gateway's peak RSS during and its RSS after:
#   1. STREAMS concurrent endless streams (each ends at max_stream_bytes, default 64 MiB,
#      or at total = TOTAL, whichever comes first);
#   2. ANSWERS concurrent non-streaming answers of 60-100 MB (each is capped at 64 MiB on its
#      own, and all together at server.max_buffered_bytes, default 256 MiB).
# Upstream, clients and gateway share the machine's cores, all on loopback.
#   usage: bench/fast_upstream.sh [streams] [answers]
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${1:-20}
ANSWERS=${2:-20}
TOTAL=${TOTAL:-10s}
source bench/lib.sh
build_release

python3 bench/fast_upstream.py >"$WORK/up.out" 2>"$WORK/up.err" &
PIDS+=("$!")
UP_URL=$(wait_listening "$WORK/up.out")
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[providers.fast]
kind = "openai"
base_url = "$UP_URL/v1"
[models.endless]
targets = [{ provider = "fast", model = "endless" }]
[models.large]                              # its own target: endless streams open endless's circuit
targets = [{ provider = "fast", model = "large" }]
[timeouts]
first_byte = "5s"
total = "$TOTAL"
TOML
start_gateway "$WORK/backstop.toml"
echo "gateway RSS at start: $(rss_mb "$GW_PID") MB"

# run N MODEL STREAM: N concurrent requests; prints status, bytes and time of each, one a line.
run() {
  local n=$1 model=$2 stream=$3 i
  local request="{\"model\":\"$model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
  for i in $(seq "$n"); do
    curl -sN -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' --max-time 120 \
      -H 'content-type: application/json' -d "$request" "$GW_URL/v1/chat/completions" &
  done
  wait
}

# phase LABEL N MODEL STREAM: one run, sampling the gateway's RSS every 0.1 s.
phase() {
  local label=$1 peak=0 rss
  run "$2" "$3" "$4" >"$WORK/$label.txt" &
  local runner=$!
  while kill -0 "$runner" 2>/dev/null; do
    rss=$(rss_mb "$GW_PID")
    peak=$(awk -v a="$peak" -v b="$rss" 'BEGIN { print (b > a ? b : a) }')
    sleep 0.1
  done
  sleep 2
  echo "$label: peak RSS during $peak MB, RSS 2 s after $(rss_mb "$GW_PID") MB"
  awk '{ n[$1]++; bytes += $2; if ($3 > t) t = $3 }
       END { for (s in n) printf "  status %s: %d;", s, n[s];
             printf " %.0f MB received in all, slowest %.1f s\n", bytes / 1048576, t }' \
    "$WORK/$label.txt"
}

phase "$STREAMS endless streams" "$STREAMS" endless true
phase "$ANSWERS answers of 60-100 MB" "$ANSWERS" large false
echo "gateway peak RSS of the whole run (VmHWM): $(hwm_mb "$GW_PID") MB"
# The allocator hands freed memory back to the system lazily, as threads allocate again.
sleep 10
(run 20 large false) >/dev/null
(run 20 endless true) >/dev/null
echo "after 10 s idle and a second round (20 answers, 20 streams): RSS $(rss_mb "$GW_PID") MB, peak of the whole run $(hwm_mb "$GW_PID") MB"
