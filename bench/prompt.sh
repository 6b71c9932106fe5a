#!/usr/bin/env bash
# Large-prompt benchmark: what the gateway spends per megabyte of request body when caller and
# upstream speak the same protocol (OpenAI to OpenAI: the body is validated, `model` rewritten
# and the rest forwarded as it came). Builds release, starts the mock and a gateway in front of
# it, writes a request of SIZE bytes (default 1 MiB: a system prompt and one user message of
# prose, lines escaped as \n like any real prompt), and runs, in ROUNDS alternating rounds, the
# that request and a small one (REQUESTS large ones, 20 times as many small ones, 4 connections,
# non-streaming).
# Reports the gateway's CPU per request for both (medians over rounds), the CPU per MB of body
# (large minus small, over the size), and the same direct to the mock for comparison.
# Load generator, mock and gateway share the machine's cores, all on loopback.
#   usage: bench/prompt.sh [size-bytes=1048576]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1048576}
REQUESTS=${REQUESTS:-300}
SMALL_REQUESTS=${SMALL_REQUESTS:-$((REQUESTS * 20))}
ROUNDS=${ROUNDS:-5}
source bench/lib.sh
need_tools
build_release

cat >"$WORK/mock.toml" <<'TOML'
log_capacity = 10
TOML
start_mock MOCK "$WORK/mock.toml"
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
start_gateway "$WORK/backstop.toml"

python3 - "$SIZE" >"$WORK/large.json" <<'PY'
import json, sys
size = int(sys.argv[1])
line = "The quick brown fox jumps over the lazy dog, and the \"gateway\" forwards every byte.\n"
def body(text):
    return json.dumps({"model": "gpt", "messages": [
        {"role": "system", "content": "You summarise documents."},
        {"role": "user", "content": text}]}, separators=(",", ":"))
lines = size // len(body(line))
while len(body(line * lines)) > size:
    lines -= 1
text = line * lines
text += "x" * (size - len(body(text)))
sys.stdout.write(body(text))
PY
body false >"$WORK/small.json"
MB=$(calc "$(wc -c <"$WORK/large.json") / 1048576" 3)

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# run LABEL URL FILE [COUNT]: one oha run with that body; prints the gateway's CPU per
# request, in us.
run() {
  local label=$1 url=$2 file=$3 count=${4:-$REQUESTS} g
  g=$(cpu_ticks "$GW_PID")
  oha --no-tui --output-format json -m POST -T application/json -n "$count" -c 4 \
    -D "$file" "$url/v1/chat/completions" >"$WORK/$label.json"
  g=$(($(cpu_ticks "$GW_PID") - g))
  local cpu; cpu=$(calc "$g / $HZ / $(total "$WORK/$label.json") * 1e6" 0)
  printf '%-34s %7.0f/s  p50 %7.2f ms  errors %s  gateway CPU %6s us/request\n' "$label" \
    "$(rps "$WORK/$label.json")" "$(pct_ms "$WORK/$label.json" p50)" \
    "$(errors "$WORK/$label.json")" "$cpu" >&2
  echo "$cpu"
}

quiet_check
echo "== $(nproc) cores shared by oha, the mock and the gateway; $(date -u +%F)"
echo "   large body $(wc -c <"$WORK/large.json") bytes ($MB MiB), small body $(wc -c <"$WORK/small.json") bytes"
run "direct to mock, large" "$MOCK_URL" "$WORK/large.json" >/dev/null
run warm-up "$GW_URL" "$WORK/large.json" >/dev/null
: >"$WORK/rounds"
for i in $(seq "$ROUNDS"); do
  l=$(run "through gateway, large (round $i)" "$GW_URL" "$WORK/large.json")
  s=$(run "through gateway, small (round $i)" "$GW_URL" "$WORK/small.json" "$SMALL_REQUESTS")
  echo "$l $s $(calc "($l - $s) / $MB" 0)" >>"$WORK/rounds"
done
LARGE=$(awk '{print $1}' "$WORK/rounds" | median)
SMALL=$(awk '{print $2}' "$WORK/rounds" | median)
PER_MB=$(awk '{print $3}' "$WORK/rounds" | median)

echo
echo "== against the target (issue 11), this run"
printf '%-58s %14s  %s\n' \
  "gateway CPU per MiB of body (large - small, median of $ROUNDS)" "$PER_MB us" \
  "$(verdict "$PER_MB <= 1000") (<= 1 ms)"
echo "-- for information"
printf '%-58s %14s\n' \
  "gateway CPU per large request / per small request" "$LARGE / $SMALL us" \
  "gateway RSS at the end / peak" "$(rss_mb "$GW_PID") / $(hwm_mb "$GW_PID") MB"
