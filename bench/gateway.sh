#!/usr/bin/env bash
# Gateway overhead benchmark: builds release, starts the mock and the gateway, and
# measures direct-to-mock against through-the-gateway with wrk at fixed concurrency,
# non-streaming and streaming. Prints throughput, latency percentiles, the gateway's
# CPU time per request and its RSS. Everything runs on loopback.
#   usage: bench/gateway.sh [duration-seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNECTIONS=${2:-32}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet
BIN=target/release/backstop
WORK=$(mktemp -d)
cleanup() { kill "${MOCK_PID:-}" "${GW_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

$BIN mock --listen 127.0.0.1:0 > "$WORK/mock.out" 2>/dev/null & MOCK_PID=$!
until grep -q "listening on" "$WORK/mock.out" 2>/dev/null; do sleep 0.1; done
MOCK_URL=$(sed -n 's/.*listening on //p' "$WORK/mock.out" | head -1)
cat > "$WORK/backstop.toml" <<TOML
state = "memory"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
RUST_LOG=warn $BIN serve --config "$WORK/backstop.toml" --listen 127.0.0.1:0 > "$WORK/gw.out" 2>/dev/null & GW_PID=$!
until grep -q "listening on" "$WORK/gw.out" 2>/dev/null; do sleep 0.1; done
GW_URL=$(sed -n 's/.*listening on //p' "$WORK/gw.out" | head -1)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
run() { # name url stream
  local out; out=$(STREAM=$3 wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/post.lua "$2/v1/chat/completions")
  local rps p50 p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  local total; total=$(echo "$out" | awk '/requests in/ {print $1}')
  printf '%-28s %10s req/s   p50 %8s   p99 %8s   (%s requests)\n' "$1" "$rps" "$p50" "$p99" "$total"
  echo "$total"  > "$WORK/last_total"; echo "$rps" > "$WORK/last_rps"
}
HZ=$(getconf CLK_TCK)
echo "== $CONNECTIONS connections, ${DURATION}s each, $(nproc) cores (load generator, mock and gateway share them)"
run "direct to mock" "$MOCK_URL" false; DIRECT=$(cat "$WORK/last_rps")
before=$(cpu_ticks "$GW_PID")
run "through gateway" "$GW_URL" false; VIA=$(cat "$WORK/last_rps"); N=$(cat "$WORK/last_total")
after=$(cpu_ticks "$GW_PID")
awk -v b="$before" -v a="$after" -v n="$N" -v hz="$HZ" -v d="$DIRECT" -v v="$VIA" 'BEGIN {
  printf "gateway/direct throughput: %.0f%%   gateway CPU per request: %.1f us\n", 100*v/d, (a-b)/hz/n*1e6 }'
run "direct to mock (stream)" "$MOCK_URL" true
run "through gateway (stream)" "$GW_URL" true
echo "gateway RSS after the run: $(rss_mb "$GW_PID") MB"
