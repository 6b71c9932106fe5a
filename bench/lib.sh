# Shared helpers for the benchmark scripts (sourced, not run): the release build, starting
# mocks and a gateway on free loopback ports, running oha and reading its JSON report,
# and reading a process's CPU time and RSS from /proc.
# shellcheck shell=bash

# BIN=path runs another build of backstop (say, the one before a change) instead of building.
BIN=${BIN:-target/release/backstop}
HZ=$(getconf CLK_TCK)
# GW_CPUS / LOAD_CPUS (taskset cpu lists, e.g. 0 and 1): the gateways run on the first cores, the mocks, sinks,
# oha and the other clients on the second; unset, every process shares every core. With the gateway alone on its core, its
# throughput follows its own CPU per request, not the load generator's and the upstream's share of the same cores.
GW_RUN=() LOAD_RUN=()
[ -z "${GW_CPUS:-}" ] || GW_RUN=(taskset -c "$GW_CPUS")
[ -z "${LOAD_CPUS:-}" ] || LOAD_RUN=(taskset -c "$LOAD_CPUS")
PIDS=()
WORK=$(mktemp -d)
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Installs oha (the load generator) when it is missing; it compiles for several minutes.
need_tools() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v oha >/dev/null; then
    echo "oha is missing: cargo install oha --locked (compiles for a few minutes)" >&2
    cargo install oha --locked --quiet
  fi
  command -v jq >/dev/null || { echo "jq is needed: apt-get install -y jq" >&2; exit 1; }
}

build_release() {
  [ "$BIN" != target/release/backstop ] || cargo build --release --quiet --bin backstop
}

# wait_listening FILE: prints the URL from the "listening on URL" line the process writes.
wait_listening() {
  local i
  for i in $(seq 100); do
    if grep -q "listening on" "$1" 2>/dev/null; then
      sed -n 's/.*listening on //p' "$1" | head -1
      return 0
    fi
    sleep 0.1
  done
  echo "no 'listening on' line in $1 after 10 s" >&2
  return 1
}

# start_mock NAME [SCRIPT]: starts `backstop mock`; sets NAME_URL and NAME_PID.
start_mock() {
  local name=$1 script=${2:-}
  local args=(mock --listen 127.0.0.1:0)
  [ -n "$script" ] && args+=(--script "$script")
  "${LOAD_RUN[@]}" "$BIN" "${args[@]}" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  local pid=$!
  PIDS+=("$pid")
  printf -v "${name}_PID" '%s' "$pid"
  printf -v "${name}_URL" '%s' "$(wait_listening "$WORK/$name.out")"
}

# model_table N URL: a configuration of 10 providers (all at URL) and N public models m0..m(N-1),
# 3 targets each on 3 of the providers, each falling back on the next two (bench/models.sh, bench/ab.sh).
model_table() {
  local n=$1 url=$2 i
  printf 'state = "memory"\n'
  for i in $(seq 0 9); do
    printf '[providers.p%d]\nkind = "openai"\nbase_url = "%s/v1"\n' "$i" "$url"
  done
  for ((i = 0; i < n; i++)); do
    printf '[models.m%d]\ntargets = [' "$i"
    printf '{ provider = "p%d", model = "up-%d-a" }, ' $((i % 10)) "$i"
    printf '{ provider = "p%d", model = "up-%d-b" }, ' $(((i + 1) % 10)) "$i"
    printf '{ provider = "p%d", model = "up-%d-c" }]\n' $(((i + 2) % 10)) "$i"
    if ((i + 2 < n)); then printf 'fallbacks = ["m%d", "m%d"]\n' $((i + 1)) $((i + 2)); fi
  done
}

# start_gateway CONFIG: starts `backstop serve`; sets GW_URL and GW_PID.
start_gateway() {
  RUST_LOG=${GW_LOG:-error} "${GW_RUN[@]}" "$BIN" serve --config "$1" --listen 127.0.0.1:0 \
    >"$WORK/gw.out" 2>"$WORK/gw.err" &
  GW_PID=$!
  PIDS+=("$GW_PID")
  GW_URL=$(wait_listening "$WORK/gw.out")
}

# start_gateway_on_mock STATE: starts a mock and a gateway with the public model "gpt" on it and the given
# `state`; sets MOCK_URL, GW_URL and their PIDs.
start_gateway_on_mock() {
  start_mock MOCK
  printf 'state = "%s"\n[providers.mock]\nkind = "openai"\nbase_url = "%s/v1"\n[models.gpt]\ntargets = [{ provider = "mock", model = "gpt-4o-mini" }]\n' \
    "$1" "$MOCK_URL" >"$WORK/backstop.toml"
  start_gateway "$WORK/backstop.toml"
}

# body STREAM: a small OpenAI chat request for the public model "gpt".
body() {
  printf '{"model":"gpt","stream":%s,"messages":[{"role":"user","content":"Say hello"}]}' "$1"
}

# load OUT STREAM URL OHA-ARGS...: one oha run against URL/v1/chat/completions, JSON report in OUT.
load() {
  local out=$1 stream=$2 url=$3
  shift 3
  local TIMEFORMAT='%U %S'
  { time "${LOAD_RUN[@]}" oha --no-tui --output-format json -m POST -T application/json -d "$(body "$stream")" \
    "$@" "$url/v1/chat/completions" >"$out" 2>"$out.err"; } 2>"$out.time"
}
# oha_ticks REPORT: CPU time oha itself used for that run, in clock ticks.
oha_ticks() { awk -v hz="$HZ" '{ printf "%d", ($1 + $2) * hz }' "$1.time"; }
# busy_ticks: CPU time used by everything on the machine so far (all cores), in clock ticks.
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# Fields of an oha JSON report. Latencies are printed in milliseconds.
rps() { jq -r '.summary.requestsPerSec' "$1"; }
total() { jq -r '[.statusCodeDistribution[]] | add // 0' "$1"; }
ok_count() { jq -r '.statusCodeDistribution["200"] // 0' "$1"; }
errors() { jq -r '([.errorDistribution[]] | add // 0) + (([.statusCodeDistribution[]] | add // 0) - (.statusCodeDistribution["200"] // 0))' "$1"; }
pct_ms() { jq -r --arg p "$2" '.latencyPercentiles[$p] * 1000' "$1"; }
size_per_request() { jq -r '.summary.sizePerRequest // 0' "$1"; }

# cpu_ticks PID: user + system CPU time of the process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# rss_mb PID / hwm_mb PID: resident set size now / at its peak, in MB.
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# median FIELD: the median of that whitespace-separated column of standard input.
median() { awk -v f="$1" '{print $f}' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# calc EXPR: floating-point arithmetic with awk.
calc() { awk "BEGIN { printf \"%.${2:-1}f\", $1 }"; }
# verdict OK-EXPR: "ok" or "MISSED".
verdict() { if awk "BEGIN { exit !($1) }"; then echo ok; else echo MISSED; fi; }

# quiet_check: warns when other processes keep the machine busy (they skew every figure).
quiet_check() {
  local b; b=$(busy_ticks); sleep 2
  local used=$(($(busy_ticks) - b))
  if [ "$used" -gt $((HZ / 5)) ]; then
    echo "warning: other processes used $((50 * used / HZ))% of a core while idle; figures will be skewed" >&2
  fi
}
