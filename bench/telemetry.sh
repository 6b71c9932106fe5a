#!/usr/bin/env bash
# Cost of tracing. Builds release, starts backstop-mock, a healthy OTLP/HTTP sink and four
# gateways in front of the mock: telemetry off, on at 100% sampling, on at 1%, and off again
# (a control: how far two identical gateways differ on this machine). Runs ROUNDS rounds of
# oha at fixed concurrency against each, in an order that rotates every round, and reports
# the median throughput of each as a ratio of off, and the gateway's own CPU time per request
# (from /proc, the sink's and oha's excluded).
#   usage: bench/telemetry.sh [seconds-per-run] [connections]
#   SINK=rust (default): the sink is crates/backstop-mock/examples/otlp_sink.rs, one thread
#     that answers 200 to each batch; SINK=python: bench/otlp_sink.py, which takes more of the
#     machine's CPU per batch (a real collector runs elsewhere and takes none of it).
#   BEFORE=path/to/backstop: adds a fifth gateway, that build at sample_ratio 1.0 (before/after
#     in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-32}
ROUNDS=${ROUNDS:-3}
SINK=${SINK:-rust}
BEFORE=${BEFORE:-}
source bench/lib.sh
need_tools
build_release

start_mock MOCK
if [ "$SINK" = python ]; then
  python3 bench/otlp_sink.py >"$WORK/sink.out" 2>"$WORK/sink.err" &
else
  cargo build --release --quiet -p backstop-mock --example otlp_sink
  target/release/examples/otlp_sink >"$WORK/sink.out" 2>"$WORK/sink.err" &
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
declare -A TICKS REQUESTS
for round in $(seq "$ROUNDS"); do
  for i in $(seq 0 $((COUNT - 1))); do
    name=${NAMES[$(((i + round) % COUNT))]}
    before_ticks=$(cpu_ticks "${PID[$name]}")
    load "$WORK/$name.$round.json" false "${URL[$name]}" -z "${DURATION}s" -c "$CONNECTIONS"
    TICKS[$name]=$((${TICKS[$name]:-0} + $(cpu_ticks "${PID[$name]}") - before_ticks))
    REQUESTS[$name]=$((${REQUESTS[$name]:-0} + $(total "$WORK/$name.$round.json")))
    printf 'round %s %-7s %8.0f/s  errors %s\n' "$round" "$name" "$(rps "$WORK/$name.$round.json")" \
      "$(errors "$WORK/$name.$round.json")"
  done
done
median() { # NAME
  for round in $(seq "$ROUNDS"); do rps "$WORK/$1.$round.json"; done | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
# cpu_us NAME: the gateway's CPU time per request over every round, in microseconds.
cpu_us() { calc "1000000 * ${TICKS[$1]} / $HZ / ${REQUESTS[$1]}" 0; }
off=$(median off); all=$(median all); one=$(median one); control=$(median control)
echo "sink: $SINK; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "telemetry off            $(calc "$off" 0)/s                       gateway CPU $(cpu_us off) µs/request"
echo "off again (control)      $(calc "$control" 0)/s  = $(calc "100 * $control / $off")% of off   gateway CPU $(cpu_us control) µs/request"
echo "on, sample_ratio 1.0     $(calc "$all" 0)/s  = $(calc "100 * $all / $off")% of off   gateway CPU $(cpu_us all) µs/request (target >= 85%: $(verdict "$all >= 0.85 * $off"))"
echo "on, sample_ratio 0.01    $(calc "$one" 0)/s  = $(calc "100 * $one / $off")% of off   gateway CPU $(cpu_us one) µs/request (target >= 97%: $(verdict "$one >= 0.97 * $off"))"
if [ -n "$BEFORE" ]; then
  before=$(median before)
  echo "BEFORE at 1.0            $(calc "$before" 0)/s  = $(calc "100 * $before / $off")% of off   gateway CPU $(cpu_us before) µs/request"
fi
if [ "$SINK" = rust ]; then
  echo "sink received from every gateway: $(curl -s "$SINK_URL/stats")"
fi
