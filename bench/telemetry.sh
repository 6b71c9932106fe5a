#!/usr/bin/env bash
# Cost of tracing. Builds release, starts backstop-mock, a healthy OTLP/HTTP sink and four
# gateways in front of the mock: telemetry off, on at 100% sampling, on at 1%, and off again
# (a control: how far two identical gateways differ on this machine). After a 1 s warm-up of
# each, runs ROUNDS short rounds of oha at fixed concurrency against each, in an order that
# rotates every round. Each gateway's throughput is taken as a share of off's in the same
# round, and the median of those per-round shares is reported with their spread (load from
# other processes that drifts over the run moves both sides of a round alike), beside the
# gateway's own CPU time per request (from /proc, the sink's and oha's excluded; median of
# the rounds, and what it adds to off's in the same round). The control's spread is how
# finely a share can be read on this machine.
#   usage: bench/telemetry.sh [seconds-per-run] [connections]
#   SINK=rust (default): the sink is crates/backstop-mock/examples/otlp_sink.rs, one thread
#     that answers 200 to each batch; SINK=python: bench/otlp_sink.py, which takes more of the
#     machine's CPU per batch (a real collector runs elsewhere and takes none of it).
#   BEFORE=path/to/backstop: adds a fifth gateway, that build at sample_ratio 1.0 (before/after
#     in the same run). ROUNDS=9 (rounds of seconds-per-run=2 s each). SINK_BIN=path: a built
#     otlp_sink example instead of building it with the release profile. GW_CPUS=0 LOAD_CPUS=1
#     (bench/lib.sh): each gateway alone on a core, so that its throughput reads its own cost.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-2}
CONNECTIONS=${2:-32}
ROUNDS=${ROUNDS:-9}
SINK=${SINK:-rust}
BEFORE=${BEFORE:-}
SINK_BIN=${SINK_BIN:-}
source bench/lib.sh
need_tools
build_release

start_mock MOCK
if [ "$SINK" = python ]; then
  "${LOAD_RUN[@]}" python3 bench/otlp_sink.py >"$WORK/sink.out" 2>"$WORK/sink.err" &
else
  if [ -z "$SINK_BIN" ]; then
    cargo build --release --quiet -p backstop-mock --example otlp_sink
    SINK_BIN=target/release/examples/otlp_sink
  fi
  "${LOAD_RUN[@]}" "$SINK_BIN" >"$WORK/sink.out" 2>"$WORK/sink.err" &
fi
PIDS+=("$!")
SINK_URL=$(wait_listening "$WORK/sink.out")

config() { # FILE TELEMETRY-TABLE
  cat >"$1" <<TOML
state = "memory"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
$2
TOML
}
config "$WORK/off.toml" ""
config "$WORK/control.toml" ""
config "$WORK/all.toml" "[telemetry]
otlp_endpoint = \"$SINK_URL\"
sample_ratio = 1.0"
config "$WORK/one.toml" "[telemetry]
otlp_endpoint = \"$SINK_URL\"
sample_ratio = 0.01"
declare -A URL PID
NAMES=(off all one control)
for name in "${NAMES[@]}"; do
  start_gateway "$WORK/$name.toml"
  URL[$name]=$GW_URL PID[$name]=$GW_PID
done
if [ -n "$BEFORE" ]; then
  cp "$WORK/all.toml" "$WORK/before.toml"
  BIN=$BEFORE start_gateway "$WORK/before.toml"
  URL[before]=$GW_URL PID[before]=$GW_PID
  NAMES+=(before)
fi

COUNT=${#NAMES[@]}
# A short warm-up of each gateway first: the first requests (connections, allocator growth) are
# not measured.
for name in "${NAMES[@]}"; do
  load "$WORK/warm.json" false "${URL[$name]}" -z 1s -c "$CONNECTIONS"
done
# Per round and gateway: throughput, and the gateway's CPU time per request in microseconds.
declare -A RPS CPU
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((COUNT - 1))); do
    name=${NAMES[$(((i + round) % COUNT))]}
    before_ticks=$(cpu_ticks "${PID[$name]}")
    load "$WORK/$name.$round.json" false "${URL[$name]}" -z "${DURATION}s" -c "$CONNECTIONS"
    ticks=$(($(cpu_ticks "${PID[$name]}") - before_ticks))
    RPS[$name.$round]=$(rps "$WORK/$name.$round.json")
    CPU[$name.$round]=$(calc "1000000 * $ticks / $HZ / $(total "$WORK/$name.$round.json")" 2)
    printf 'round %s %-7s %8.0f/s  %6.1f µs/request  errors %s\n' "$round" "$name" "${RPS[$name.$round]}" \
      "${CPU[$name.$round]}" "$(errors "$WORK/$name.$round.json")"
  done
done
# median: the median of the numbers on stdin; spread: their lowest and highest.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.1f..%.1f", lo, hi }'; }
# ratios NAME: its throughput as a percentage of off's in the same round, one line per round.
ratios() { for round in $(seq "$ROUNDS"); do calc "100 * ${RPS[$1.$round]} / ${RPS[off.$round]}" 3; echo; done; }
# cpu NAME / added NAME: its CPU per request in each round / less off's in the same round.
cpu() { for round in $(seq "$ROUNDS"); do echo "${CPU[$1.$round]}"; done; }
added() { for round in $(seq "$ROUNDS"); do calc "${CPU[$1.$round]} - ${CPU[off.$round]}" 2; echo; done; }
row() { # NAME LABEL [TARGET-PERCENT]
  local share; share=$(ratios "$1" | median)
  printf '%-24s %8.0f/s  %5.1f%% of off (rounds %s%%)  gateway CPU %5.1f µs/request (%+.1f)' "$2" \
    "$(for round in $(seq "$ROUNDS"); do echo "${RPS[$1.$round]}"; done | median)" "$share" \
    "$(ratios "$1" | spread)" "$(cpu "$1" | median)" "$(added "$1" | median)"
  if [ -n "${3:-}" ]; then printf '  target >= %s%%: %s' "$3" "$(verdict "$share >= $3")"; fi
  echo
}
echo "sink: $SINK; $ROUNDS rounds of ${DURATION}s; medians of per-round ratios to off; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-24s %8.0f/s                                   gateway CPU %5.1f µs/request\n' "telemetry off" \
  "$(for round in $(seq "$ROUNDS"); do echo "${RPS[off.$round]}"; done | median)" "$(cpu off | median)"
row control "off again (control)"
row all "on, sample_ratio 1.0" 85
row one "on, sample_ratio 0.01" 97
if [ -n "$BEFORE" ]; then row before "BEFORE at 1.0"; fi
if [ "$SINK" = rust ]; then
  echo "sink received from every gateway: $(curl -s "$SINK_URL/stats")"
fi
