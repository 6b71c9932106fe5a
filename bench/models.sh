#!/usr/bin/env bash
# Configuration-scale benchmark: does a large routing table cost the request path or start-up?
# Builds release, starts the mock, writes two configurations of the same shape: 10 providers
# (all the mock) and MODELS public models of 3 targets each on 3 of those providers, each model
# falling back on the next two; MODELS = 1 for the small one, 1,000 (3,000 targets) for the
# large one. Then, in the same run:
#   1. `backstop check` of each (wall time, median of 5);
#   2. start-up of each: from exec to the first 200 from /healthz (median of 5);
#   3. the same load (REQUESTS non-streaming requests, 32 connections) through a gateway on
#      each, to a model in the middle of the large table, in ROUNDS alternating rounds:
#      gateway CPU per request, median over rounds, and the ratio large / small.
# Load generator, mock and gateways share the machine's cores, all on loopback.
#   usage: bench/models.sh [models=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${1:-1000}
REQUESTS=${REQUESTS:-20000}
ROUNDS=${ROUNDS:-5}
source bench/lib.sh
need_tools
build_release

cat >"$WORK/mock.toml" <<'TOML'
log_capacity = 100
TOML
start_mock MOCK "$WORK/mock.toml"

model_table 1 "$MOCK_URL" >"$WORK/small.toml"
model_table "$MODELS" "$MOCK_URL" >"$WORK/large.toml"
MODEL=m$((MODELS / 2))

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
now() { date +%s.%N; }
# check_ms CONFIG: wall time of `backstop check`, in ms.
check_ms() {
  local t0; t0=$(now)
  "$BIN" check --config "$1" >/dev/null
  echo "$(calc "($(now) - $t0) * 1000" 0)"
}
# startup_ms CONFIG: from exec to the first 200 from /healthz, in ms (port given up front).
startup_ms() {
  local port; port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  local t0; t0=$(now)
  RUST_LOG=error "$BIN" serve --config "$1" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
  local pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do sleep 0.005; done
  local ms; ms=$(calc "($(now) - $t0) * 1000" 0)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$ms"
}

quiet_check
echo "== $(nproc) cores shared by oha, the mock and the gateways; $(date -u +%F)"
echo "   small: 1 model, 3 targets ($(wc -c <"$WORK/small.toml") bytes);" \
  "large: $MODELS models, $((3 * MODELS)) targets ($(wc -c <"$WORK/large.toml") bytes)"
for size in small large; do
  for i in $(seq 5); do check_ms "$WORK/$size.toml"; done | median >"$WORK/check.$size"
  for i in $(seq 5); do startup_ms "$WORK/$size.toml"; done | median >"$WORK/start.$size"
  printf '%-6s backstop check %5s ms   start-up to /healthz %5s ms (medians of 5)\n' \
    "$size" "$(cat "$WORK/check.$size")" "$(cat "$WORK/start.$size")"
done

start_gateway "$WORK/small.toml"; SMALL_PID=$GW_PID; SMALL_URL=$GW_URL
start_gateway "$WORK/large.toml"; LARGE_PID=$GW_PID; LARGE_URL=$GW_URL
# run LABEL PID URL MODEL: one oha run; prints and returns the gateway's CPU per request, in us.
run() {
  local label=$1 pid=$2 url=$3 model=$4 g
  g=$(cpu_ticks "$pid")
  oha --no-tui --output-format json -m POST -T application/json -n "$REQUESTS" -c 32 \
    -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello\"}]}" \
    "$url/v1/chat/completions" >"$WORK/$label.json"
  g=$(($(cpu_ticks "$pid") - g))
  local cpu; cpu=$(calc "$g / $HZ / $(total "$WORK/$label.json") * 1e6" 1)
  printf '%-28s %7.0f/s  errors %s  gateway CPU %6s us/request\n' "$label" \
    "$(rps "$WORK/$label.json")" "$(errors "$WORK/$label.json")" "$cpu" >&2
  echo "$cpu"
}
run warm-small "$SMALL_PID" "$SMALL_URL" m0 >/dev/null
run warm-large "$LARGE_PID" "$LARGE_URL" "$MODEL" >/dev/null
: >"$WORK/rounds"
for i in $(seq "$ROUNDS"); do
  s=$(run "small (round $i)" "$SMALL_PID" "$SMALL_URL" m0)
  l=$(run "large, $MODEL (round $i)" "$LARGE_PID" "$LARGE_URL" "$MODEL")
  echo "$s $l $(calc "$l / $s" 3)" >>"$WORK/rounds"
done
RATIO=$(awk '{print $3}' "$WORK/rounds" | median)

echo
echo "== against the targets (issue 11), this run"
printf '%-58s %14s  %s\n' \
  "gateway CPU per request, large / small (median of $ROUNDS rounds)" \
  "$(awk '{print $2}' "$WORK/rounds" | median) / $(awk '{print $1}' "$WORK/rounds" | median) us = $RATIO" \
  "$(verdict "$RATIO <= 1.10") (<= 1.10)" \
  "backstop check, large config" "$(cat "$WORK/check.large") ms" \
  "$(verdict "$(cat "$WORK/check.large") < 1000") (< 1 s)" \
  "start-up to /healthz, large config" "$(cat "$WORK/start.large") ms" \
  "$(verdict "$(cat "$WORK/start.large") < 1000") (< 1 s)"
echo "gateway RSS after the rounds: small $(rss_mb "$SMALL_PID") MB, large $(rss_mb "$LARGE_PID") MB"
