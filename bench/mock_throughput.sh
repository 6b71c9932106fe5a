#!/usr/bin/env bash
# Measures how many small non-streaming requests per second backstop-mock answers.
#
# Usage: bench/mock_throughput.sh [DURATION] [CONNECTIONS]   (defaults: 10s, 64)
# Needs wrk (apt-get install wrk). Builds the release binary, starts it on a free loopback
# port, runs wrk with bench/mock_chat.lua, prints the figure and stops the mock.
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${1:-10s}"
connections="${2:-64}"
threads=1   # the box has 2 cores: one for wrk, the rest for the mock

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p backstop-mock --bin backstop-mock
bin="${BACKSTOP_MOCK_BIN:-target/release/backstop-mock}"

out="$(mktemp)"
"$bin" --listen 127.0.0.1:0 >"$out" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 50); do
  grep -q "listening on" "$out" && break
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$out" | head -n1)"
[ -n "$url" ] || { echo "backstop-mock did not start" >&2; exit 1; }

# The request log keeps the last 100,000 requests by default; a long run just rotates it.
echo "wrk -t$threads -c$connections -d$duration -s bench/mock_chat.lua $url"
wrk -t"$threads" -c"$connections" -d"$duration" --latency -s bench/mock_chat.lua "$url"
