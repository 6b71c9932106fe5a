#!/usr/bin/env bash
# Cost of tracing. Builds release, starts backstop-mock, a healthy OTLP/HTTP sink
# (bench/otlp_sink.py) and four gateways in front of the mock: telemetry off, on at 100%
# sampling, on at 1%, and off again (a control: how far two identical gateways differ on
# this machine). Runs ROUNDS rounds of oha at fixed concurrency against each, in an order
# that rotates every round, and reports the median throughput of each as a ratio of off.
#   usage: bench/telemetry.sh [seconds-per-run] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-32}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
need_tools
build_release

start_mock MOCK
python3 bench/otlp_sink.py >"$WORK/sink.out" 2>"$WORK/sink.err" &
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
declare -A URL
NAMES=(off all one control)
for name in "${NAMES[@]}"; do
  start_gateway "$WORK/$name.toml"
  URL[$name]=$GW_URL
done

for round in $(seq "$ROUNDS"); do
  for i in 0 1 2 3; do
    name=${NAMES[$(((i + round) % 4))]}
    load "$WORK/$name.$round.json" false "${URL[$name]}" -z "${DURATION}s" -c "$CONNECTIONS"
    printf 'round %s %-4s %8.0f/s  errors %s\n' "$round" "$name" "$(rps "$WORK/$name.$round.json")" \
      "$(errors "$WORK/$name.$round.json")"
  done
done
median() { # NAME
  for round in $(seq "$ROUNDS"); do rps "$WORK/$1.$round.json"; done | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
off=$(median off); all=$(median all); one=$(median one); control=$(median control)
echo "telemetry off            $(calc "$off" 0)/s"
echo "off again (control)      $(calc "$control" 0)/s  = $(calc "100 * $control / $off")% of off"
echo "on, sample_ratio 1.0     $(calc "$all" 0)/s  = $(calc "100 * $all / $off")% of off (target >= 85%: $(verdict "$all >= 0.85 * $off"))"
echo "on, sample_ratio 0.01    $(calc "$one" 0)/s  = $(calc "100 * $one / $off")% of off (target >= 97%: $(verdict "$one >= 0.97 * $off"))"
