#!/usr/bin/env bash
# Slowloris: CONNECTIONS connections that send a request's headers one byte a second, split over
# two attacker processes, while normal requests are timed. Reports the normal requests' p50/p99
# before and during the attack (and their ratio), failures, and the gateway's peak RSS and open
# file descriptors.
# usage: bench/slowloris.sh [connections=20000] [seconds=30] [max_connections=10000]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
CONNECTIONS=${1:-20000}
SECONDS_=${2:-30}
MAX=${3:-10000}

build_release
start_mock UP
cat >"$WORK/gw.toml" <<TOML
state = "memory"
[providers.mock]
kind = "openai"
base_url = "$UP_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
[server]
max_connections = $MAX
TOML
start_gateway "$WORK/gw.toml"
half=$((CONNECTIONS / 2))
python3 bench/slowloris.py "$GW_URL" "$GW_PID" "$half" "$SECONDS_" >"$WORK/a.json" &
ATTACK=$!
python3 bench/slowloris.py "$GW_URL" "$GW_PID" "$((CONNECTIONS - half))" "$SECONDS_" >"$WORK/b.json"
wait "$ATTACK"
jq -s '{
  attackers: (map(.attack_connections) | add),
  before_p50_ms: .[1].before.p50_ms, before_p99_ms: .[1].before.p99_ms,
  during_ok: (map(.during.ok) | add), during_failed: (map(.during.failed) | add),
  during_p50_ms: .[1].during.p50_ms, during_p99_ms: .[1].during.p99_ms,
  p50_ratio: ((.[1].during.p50_ms / .[1].before.p50_ms) * 100 | round / 100),
  p99_ratio: ((.[1].during.p99_ms / .[1].before.p99_ms) * 100 | round / 100),
  gateway_rss_mb: (map(.gateway_rss_mb.peak) | max), gateway_fds_peak: (map(.gateway_fds.peak) | max)
}' "$WORK/a.json" "$WORK/b.json"
curl -s "$GW_URL/metrics" | grep -E '^backstop_connections' || true
