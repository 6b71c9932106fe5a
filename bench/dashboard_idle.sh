#!/usr/bin/env bash
# The dashboard's cost at idle: ten open pages, each polling GET /admin/dashboard once a
# second (as the page does) for 30 s, against a release gateway with a little history;
# reports the gateway's CPU time over that span as a share of one core (target < 1%).
#   usage: bench/dashboard_idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
build_release
start_mock MOCK
cat >"$WORK/gw.toml" <<TOML
state = "memory"
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
[models.b]
targets = [{ provider = "mock", model = "b" }]
TOML
start_gateway "$WORK/gw.toml"
for _ in $(seq 20); do
  curl -s -o /dev/null -X POST -H 'content-type: application/json' -d "$(body false)" "$GW_URL/v1/chat/completions"
done
before=$(cpu_ticks "$GW_PID")
pollers=()
for _ in $(seq 10); do
  (for _ in $(seq 30); do curl -s -o /dev/null "$GW_URL/admin/dashboard"; sleep 1; done) &
  pollers+=($!)
done
wait "${pollers[@]}"
used=$(($(cpu_ticks "$GW_PID") - before))
share=$(calc "100 * $used / $HZ / 30" 2)
echo "10 pages polling for 30 s: gateway CPU $used ticks of 1/$HZ s = $share% of one core (target < 1%: $(verdict "$share < 1"))"
