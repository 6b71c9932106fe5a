#!/usr/bin/env bash
# Gateway overhead against the physical limit: every figure is a ratio to "direct", oha
# against bench/upstream (a minimal hyper server: one fixed OpenAI answer, or one fixed stream
# of 20 events), measured in the same run. Builds release, starts the minimal upstream, a
# gateway in front of it at `error` and a second at `info` (the default), and `backstop mock`
# with a gateway in front of it (the mock-based rows of bench/gateway.sh); BASE_BIN=path adds a
# gateway from another build (say, the one before a change) in front of the minimal upstream,
# logging at BASE_LOG (default error).
# Then ROUNDS alternating rounds (default 5) of SECONDS each (default 3) per row, closed loop at
# CONNECTIONS (default 32), non-streaming then streaming; reported as medians over the rounds:
# requests/s and its ratio to direct, the gateway's CPU and context switches per request.
# Then open loop: OPEN_ROUNDS alternating rounds (default 5) of OPEN_SECONDS each (default 3) at RATE
# requests/s (default 1,000; oha's latency corrected for coordinated omission), non-streaming, direct
# and each gateway in front of the minimal upstream; a gateway's added p50 and p99 are the medians
# of its per-round differences from direct.
# "bare proxy" is bench/proxy in front of the minimal upstream: the same HTTP stack and thread
# model as the gateway and nothing else, the floor of what any gateway built of it can cost.
# Load generator, upstreams and gateways share the machine's cores, all on loopback.
#   usage: bench/direct.sh [seconds-per-round] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_ROUND=${1:-3}
CONNECTIONS=${2:-32}
ROUNDS=${ROUNDS:-5}
OPEN_ROUNDS=${OPEN_ROUNDS:-5}
OPEN_SECONDS=${OPEN_SECONDS:-3}
RATE=${RATE:-1000}
source bench/lib.sh
need_tools
build_release
UPSTREAM_BIN=${UPSTREAM_BIN:-target/release/bench-upstream}
[ "$UPSTREAM_BIN" != target/release/bench-upstream ] ||
  cargo build --release --quiet -p backstop-bench-upstream
cargo build --release --quiet -p backstop-bench-proxy

"$UPSTREAM_BIN" >"$WORK/up.out" 2>"$WORK/up.err" &
UP_PID=$!
PIDS+=("$UP_PID")
UP_URL=$(wait_listening "$WORK/up.out")
start_mock MOCK

# gateway NAME UPSTREAM-URL LOG [BIN]: a gateway with the public model "gpt" on that upstream;
# sets NAME_URL and NAME_PID.
gateway() {
  local name=$1 url=$2 log=$3 bin=${4:-$BIN}
  printf 'state = "memory"\n[providers.up]\nkind = "openai"\nbase_url = "%s/v1"\n[models.gpt]\ntargets = [{ provider = "up", model = "gpt-4o-mini" }]\n' \
    "$url" >"$WORK/$name.toml"
  RUST_LOG=$log "$bin" serve --config "$WORK/$name.toml" --listen 127.0.0.1:0 \
    >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_URL" '%s' "$(wait_listening "$WORK/$name.out")"
}
gateway GW "$UP_URL" error
gateway GWINFO "$UP_URL" info
gateway GWMOCK "$MOCK_URL" error
target/release/bench-proxy "$UP_URL" >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
PROXY_URL=$(wait_listening "$WORK/proxy.out")
# Each row: label, URL, and the PID whose CPU is the gateway's (none for the direct rows).
ROWS=("direct|$UP_URL|" "bare proxy|$PROXY_URL|$PROXY_PID" "gateway|$GW_URL|$GW_PID"
  "gateway, info log|$GWINFO_URL|$GWINFO_PID")
if [ -n "${BASE_BIN:-}" ]; then
  gateway GWBASE "$UP_URL" "${BASE_LOG:-error}" "$BASE_BIN"
  ROWS+=("BASE_BIN, ${BASE_LOG:-error} log|$GWBASE_URL|$GWBASE_PID")
fi
ROWS+=("direct to mock|$MOCK_URL|" "gateway on mock|$GWMOCK_URL|$GWMOCK_PID")

# ctx PID: voluntary + involuntary context switches of all the process's threads so far.
ctx() {
  cat /proc/"$1"/task/*/status 2>/dev/null |
    awk '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'
}
# run LABEL URL PID STREAM: one timed round; appends "label rps cpu_us ctx" to $WORK/STREAM.
run() {
  local label=$1 url=$2 pid=$3 stream=$4 out="$WORK/run"
  local t=0 c=0
  [ -z "$pid" ] || { t=$(cpu_ticks "$pid"); c=$(ctx "$pid"); }
  load "$out" "$stream" "$url" -z "${SECONDS_PER_ROUND}s" -w -c "$CONNECTIONS"
  local n; n=$(total "$out")
  [ "$(errors "$out")" = 0 ] || echo "warning: $label: $(errors "$out") errors" >&2
  local cpu=- cs=-
  if [ -n "$pid" ]; then
    cpu=$(calc "($(cpu_ticks "$pid") - $t) / $HZ / $n * 1e6" 1)
    cs=$(calc "($(ctx "$pid") - $c) / $n" 2)
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$(rps "$out")" "$cpu" "$cs" "$n" >>"$WORK/$stream"
}
# report STREAM: medians per row, ratios to the direct row's median.
report() {
  local direct; direct=$(awk -F'\t' '$1 == "direct" {print $2}' "$WORK/$1" | sort -n |
    awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
  local row label
  for row in "${ROWS[@]}"; do
    label=${row%%|*}
    awk -F'\t' -v l="$label" -v d="$direct" '
      function med(col,   i, j, t, n, v) {
        n = 0; for (i = 1; i <= N; i++) if (R[i, col] != "-") v[++n] = R[i, col] + 0
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n ? v[int((n + 1) / 2)] : "-"
      }
      $1 == l { N++; R[N, 2] = $2; R[N, 3] = $3; R[N, 4] = $4 }
      END {
        r = med(2)
        printf "%-22s %8.0f/s  %5.1f%% of direct  gateway CPU %6s us/req  context switches %5s/req\n", \
          l, r, 100 * r / d, med(3), med(4)
      }' "$WORK/$1"
  done
}

quiet_check
echo "== $(nproc) cores shared by oha, the upstreams and the gateways; $(date -u +%F); load: $(uptime | sed 's/.*load/load/')"
for row in "${ROWS[@]}"; do
  IFS='|' read -r _ url _ <<<"$row"
  load "$WORK/warm" false "$url" -n 2000 -c "$CONNECTIONS"
done
for stream in false true; do
  for i in $(seq "$ROUNDS"); do
    for row in "${ROWS[@]}"; do
      IFS='|' read -r label url pid <<<"$row"
      run "$label" "$url" "$pid" "$stream"
    done
  done
done
echo "-- non-streaming, $CONNECTIONS connections, medians of $ROUNDS rounds of ${SECONDS_PER_ROUND}s"
report false
echo "-- streaming (20 events; the mock sends 60), $CONNECTIONS connections, medians of $ROUNDS rounds"
report true

# Open loop: the rows in front of the minimal upstream, at a fixed rate.
echo "-- open loop: $RATE requests/s, non-streaming, $CONNECTIONS connections, $OPEN_ROUNDS alternating rounds of ${OPEN_SECONDS}s;" \
  "added = the gateway's percentile minus direct's in the same round, median over the rounds"
FIXED=(-q "$RATE" -n $((RATE * OPEN_SECONDS)) -c "$CONNECTIONS" --latency-correction)
for i in $(seq "$OPEN_ROUNDS"); do
  for row in "${ROWS[@]}"; do
    IFS='|' read -r label url pid <<<"$row"
    [ "$url" != "$MOCK_URL" ] && [ "$url" != "$GWMOCK_URL" ] || continue
    load "$WORK/open" false "$url" "${FIXED[@]}"
    [ "$(errors "$WORK/open")" = 0 ] || echo "warning: $label: $(errors "$WORK/open") errors at $RATE/s" >&2
    printf '%s\t%s\t%s\n' "$label" "$(pct_ms "$WORK/open" p50)" "$(pct_ms "$WORK/open" p99)" >>"$WORK/open_round$i"
  done
done
for row in "${ROWS[@]}"; do
  IFS='|' read -r label url pid <<<"$row"
  [ -n "$pid" ] && [ "$url" != "$GWMOCK_URL" ] || continue
  for i in $(seq "$OPEN_ROUNDS"); do
    awk -F'\t' -v l="$label" '$1 == "direct" { d50 = $2; d99 = $3 } $1 == l { g50 = $2; g99 = $3 }
      END { printf "%.0f %.0f %.0f %.0f\n", (g50 - d50) * 1000, (g99 - d99) * 1000, d50 * 1000, d99 * 1000 }' "$WORK/open_round$i"
  done >"$WORK/open_added"
  printf '%-22s added p50 %4s us  added p99 %5s us  (direct p50 %s us, p99 %s us; per round p50: %s)\n' "$label" \
    "$(median 1 <"$WORK/open_added")" "$(median 2 <"$WORK/open_added")" \
    "$(median 3 <"$WORK/open_added")" "$(median 4 <"$WORK/open_added")" \
    "$(awk '{printf "%s%s", (NR > 1 ? "," : ""), $1}' "$WORK/open_added")"
done

SERVED=$(cat "$WORK/false" "$WORK/true" | awk -F'\t' '$1 == "gateway" { n += $5 } END { print n }')
SERVED=$((SERVED + OPEN_ROUNDS * RATE * OPEN_SECONDS))
echo "-- gateway RSS after its $SERVED requests: $(rss_mb "$GW_PID") MB (the info one: $(rss_mb "$GWINFO_PID") MB);" \
  "load at the end: $(uptime | sed 's/.*load average: //')"
if [ -n "${BASE_BIN:-}" ]; then
  BASE_SERVED=$(cat "$WORK/false" "$WORK/true" | awk -F'\t' '$1 ~ /^BASE_BIN/ { n += $5 } END { print n }')
  echo "-- BASE_BIN gateway RSS after its $BASE_SERVED requests: $(rss_mb "$GWBASE_PID") MB"
fi
