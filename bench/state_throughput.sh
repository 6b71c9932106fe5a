#!/usr/bin/env bash
# State-backend overhead benchmark: three gateways in front of one mock, alike but for `state`
# (memory, sqlite:, redis:// on a real redis-server), driven in alternating rounds in the same run:
#   1. fixed concurrency (32 connections): requests per second, ratio to `memory`
#      (goals: sqlite >= 95%, redis >= 90%);
#   2. fixed rate (1,000 requests/s): p50 latency, added over `memory` (goal: redis <= 20 us).
# Figures are medians of ROUNDS rounds (default 5). Needs redis-server on PATH.
#   usage: bench/state_throughput.sh [seconds-per-run] [connections] [rate]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNECTIONS=${2:-32}
RATE=${3:-1000}
ROUNDS=${ROUNDS:-5}
source bench/lib.sh
need_tools
command -v redis-server >/dev/null || { echo "needs redis-server on PATH" >&2; exit 2; }
build_release

REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" >/dev/null &
PIDS+=("$!")
start_mock MOCK
declare -A URL
for backend in memory sqlite redis; do
  case $backend in
    memory) state=memory ;;
    sqlite) state="sqlite:$WORK/state.db" ;;
    redis) state="redis://127.0.0.1:$REDIS_PORT" ;;
  esac
  cat >"$WORK/$backend.toml" <<TOML
state = "$state"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
  start_gateway "$WORK/$backend.toml"
  URL[$backend]=$GW_URL
done

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

quiet_check
echo "== $(nproc) cores shared by oha, the mock, redis-server and the gateways; $(date -u +%F)"
for backend in memory sqlite redis; do load "$WORK/warm" false "${URL[$backend]}" -n 2000 -c "$CONNECTIONS"; done
for round in $(seq "$ROUNDS"); do
  for backend in memory sqlite redis; do
    load "$WORK/c_${backend}_$round" false "${URL[$backend]}" -z "${DURATION}s" -c "$CONNECTIONS"
    load "$WORK/r_${backend}_$round" false "${URL[$backend]}" -z "${DURATION}s" -c "$CONNECTIONS" -q "$RATE"
  done
done
declare -A RPS P50
for backend in memory sqlite redis; do
  RPS[$backend]=$(for r in $(seq "$ROUNDS"); do rps "$WORK/c_${backend}_$r"; done | median)
  P50[$backend]=$(for r in $(seq "$ROUNDS"); do pct_ms "$WORK/r_${backend}_$r" p50; done | median)
done
echo "-- $CONNECTIONS connections: requests/s (median of $ROUNDS rounds), ratio to memory"
for backend in memory sqlite redis; do
  printf '%-7s %8.0f/s  %s\n' "$backend" "${RPS[$backend]}" "$(calc "${RPS[$backend]} / ${RPS[memory]} * 100")%"
done
echo "-- $RATE requests/s: p50 (median of $ROUNDS rounds), added over memory"
for backend in memory sqlite redis; do
  printf '%-7s p50 %7.3f ms  +%s us\n' "$backend" "${P50[$backend]}" "$(calc "(${P50[$backend]} - ${P50[memory]}) * 1000" 0)"
done
echo "sqlite >= 95%: $(verdict "${RPS[sqlite]} >= 0.95 * ${RPS[memory]}")   redis >= 90%: $(verdict "${RPS[redis]} >= 0.90 * ${RPS[memory]}")   redis added p50 <= 20 us: $(verdict "(${P50[redis]} - ${P50[memory]}) * 1000 <= 20")"
