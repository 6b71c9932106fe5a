#!/usr/bin/env bash
# Two builds side by side: the gateway CPU per request of build A and build B, serving the same load
# in alternating rounds whose order flips each round (the second run of a round tends to cost a little
# less on this machine; run A=B to see the noise). By default both serve one model ("gpt", one target)
# in front of bench/upstream; TABLE=N serves the N-model table of bench/models.sh (on the mock) and
# asks MODEL (default m$((N / 2)), which has two fallback models).
# REQUESTS (default 50,000) requests a run at 32 connections, streaming with STREAM=1 (bench/upstream's
# 20-event stream; the figure is then CPU per stream); GW_LOG sets the log level.
#   usage: A=path B=path bench/ab.sh [rounds=8]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-8}
REQUESTS=${REQUESTS:-50000}
: "${A:?A=path of build A}" "${B:?B=path of build B}"
BIN=$A
source bench/lib.sh
need_tools
if [ -n "${TABLE:-}" ]; then
  start_mock MOCK
  model_table "$TABLE" "$MOCK_URL" >"$WORK/gw.toml"
  MODEL=${MODEL:-m$((TABLE / 2))}
else
  [ -x target/release/bench-upstream ] || cargo build --release --quiet -p backstop-bench-upstream
  target/release/bench-upstream >"$WORK/up.out" 2>"$WORK/up.err" &
  PIDS+=($!)
  UP_URL=$(wait_listening "$WORK/up.out")
  printf 'state = "memory"\n[providers.up]\nkind = "openai"\nbase_url = "%s/v1"\n[models.gpt]\ntargets = [{ provider = "up", model = "gpt-4o-mini" }]\n' \
    "$UP_URL" >"$WORK/gw.toml"
  MODEL=gpt
fi
STREAM_FIELD=
[ "${STREAM:-0}" = 0 ] || STREAM_FIELD='"stream":true,'
BIN=$A start_gateway "$WORK/gw.toml"; A_PID=$GW_PID; A_URL=$GW_URL
BIN=$B start_gateway "$WORK/gw.toml"; B_PID=$GW_PID; B_URL=$GW_URL
# run PID URL: one oha run; prints the gateway's CPU per request, in us.
run() {
  local pid=$1 url=$2 g
  g=$(cpu_ticks "$pid")
  oha --no-tui --output-format json -m POST -T application/json -n "$REQUESTS" -c 32 \
    -d "{\"model\":\"$MODEL\",$STREAM_FIELD\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}" \
    "$url/v1/chat/completions" >"$WORK/run.json"
  g=$(($(cpu_ticks "$pid") - g))
  [ "$(errors "$WORK/run.json")" = 0 ] || echo "warning: $(errors "$WORK/run.json") errors" >&2
  calc "$g / $HZ / $(total "$WORK/run.json") * 1e6" 1
}
quiet_check
run "$A_PID" "$A_URL" >/dev/null
run "$B_PID" "$B_URL" >/dev/null
: >"$WORK/rounds"
for i in $(seq "$ROUNDS"); do
  if ((i % 2)); then
    a=$(run "$A_PID" "$A_URL"); b=$(run "$B_PID" "$B_URL")
  else
    b=$(run "$B_PID" "$B_URL"); a=$(run "$A_PID" "$A_URL")
  fi
  echo "$a $b $(calc "$b / $a" 3)" >>"$WORK/rounds"
  printf 'round %2d: A %6s us  B %6s us  B/A %s\n' "$i" "$a" "$b" "$(calc "$b / $a" 3)"
done
echo "gateway CPU per request, medians of $ROUNDS rounds ($MODEL, ${GW_LOG:-error} log${STREAM_FIELD:+, streaming}):" \
  "A $(median 1 <"$WORK/rounds") us, B $(median 2 <"$WORK/rounds") us," \
  "B/A $(median 3 <"$WORK/rounds") (B cheaper in $(awk '$3 < 1' "$WORK/rounds" | wc -l) of $ROUNDS)"
