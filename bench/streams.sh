#!/usr/bin/env bash
# Open-stream benchmark: what each stream held open through the gateway costs it in memory.
# Builds release, starts the mock (every stream slowed to one event every DELAY, 30 events, so
# a stream stays open for 30 x DELAY) and a gateway in front of it, then for each N in turn
# has bench/stream_client.py open N streams at once and read them to their end, and reports:
#   - errors (failed, refused or reset) and streams cut short, which should both be 0;
#   - the gateway's RSS once all N are open, less its idle RSS before the first round, per
#     stream; the idle RSS is taken after a warm-up of 200 requests, so the worker threads,
#     the pools and the allocator's first pages are already counted in it;
#   - beside it the same for the gateway's anonymous memory (`Anonymous` of
#     /proc/PID/smaps_rollup: the heap and the stacks, without the binary's mapped pages), and
#     the part of it in transparent huge pages (`AnonHugePages`), which should stay 0.
# Why the figure is read the way it is: RSS grows by whole pages, and a page the allocator
# backed with a 2 MB transparent huge page counts 2 MB from its first byte; the gateway's
# allocator (mimalloc) used to ask for huge pages (`madvise`), and the per-stream figure of one
# build then moved by half between runs. It asks no more (the `no_thp` feature), and the script
# samples the memory every 0.5 s for 3 s from the moment every stream has its first event, takes
# the lowest, and prints the first beside it. ROUNDS=3 repeats each count on the same gateway (a
# round starts once the previous one's streams have ended) and prints the spread: the first
# round also pays for what the gateway keeps once grown (tokio's table of sockets, the upstream
# pool's idle connections, the allocator's pages for each size), so rounds can differ.
# The client opens at most 32 connections at a time: bursts overflow the listen queues of the
# gateway and the mock on 2 cores, and a dropped SYN is retried a second later.
# The client, the mock and the gateway share the machine's cores, all on loopback. Each stream
# is a client socket, two at the gateway (its client's and its upstream's) and one at the mock:
# the script raises the open-file limit to 65,536 where it may (root with CAP_SYS_RESOURCE),
# and where the limit stays lower runs at most the streams the gateway has descriptors for,
# (limit - 200) / 2, saying so.
# KEEP_ALIVE=1: the client's connections stay open after their stream (as the SDKs' do), instead of asking
# `connection: close`; hyper then reads the connection again while the stream runs.
#   usage: bench/streams.sh [counts=1000,10000]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${1:-1000,10000}
DELAY=${DELAY:-2s}
ROUNDS=${ROUNDS:-1}
GOAL_KB=${GOAL_KB:-40}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FITS=$((($(ulimit -n) - 200) / 2))
source bench/lib.sh
build_release

cat >"$WORK/mock.toml" <<TOML
chunks = 30
log_capacity = 100
TOML
start_mock MOCK "$WORK/mock.toml"
cat >"$WORK/backstop.toml" <<TOML
state = "memory"
[server]
max_connections = 60000
[providers.mock]
kind = "openai"
base_url = "$MOCK_URL/v1"
[models.gpt]
targets = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML
start_gateway "$WORK/backstop.toml"
PORT=${GW_URL##*:}
established() { ss -Htn state established "( sport = :$PORT )" | wc -l; }

# anon_mb PID / huge_mb PID: its anonymous memory, and the part of that in huge pages, in MB.
anon_mb() { awk '/^Anonymous:/ {printf "%.1f", $2/1024}' "/proc/$1/smaps_rollup"; }
huge_mb() { awk '/^AnonHugePages:/ {printf "%.1f", $2/1024}' "/proc/$1/smaps_rollup"; }

# settle: samples RSS every 0.5 s for 3 s once every stream is open; prints "FIRST-RSS RSS ANON
# HUGE", RSS the lowest sample (pages freed while the streams opened are returned to the system a
# second or so later: mimalloc's purge delay), anonymous memory and huge pages read with it.
settle() {
  local first rss low anon huge i
  first=$(rss_mb "$GW_PID")
  low=$first anon=$(anon_mb "$GW_PID") huge=$(huge_mb "$GW_PID")
  for i in $(seq 6); do
    sleep 0.5
    rss=$(rss_mb "$GW_PID")
    if verdict "$rss < $low" | grep -q ok; then
      low=$rss anon=$(anon_mb "$GW_PID") huge=$(huge_mb "$GW_PID")
    fi
  done
  echo "$first $low $anon $huge"
}

# round N: holds N streams open; prints the RSS growth per stream once all are open.
round() {
  local n=$1 line first rss anon huge
  python3 bench/stream_client.py --connecting 32 ${KEEP_ALIVE:+--keep-alive} "$GW_URL" "$n" >"$WORK/client.$n" 2>"$WORK/client.$n.err" &
  local client=$!
  PIDS+=("$client")
  until line=$(grep '^open' "$WORK/client.$n" 2>/dev/null); do
    kill -0 "$client" 2>/dev/null || { cat "$WORK/client.$n.err" >&2; exit 1; }
    sleep 0.1
  done
  local held; held=$(established)
  read -r first rss anon huge < <(settle)
  read -r _ _ _ seconds <<<"$line"
  wait "$client"
  read -r _ complete errors short < <(grep '^done' "$WORK/client.$n")
  local per; per=$(calc "($rss - $IDLE) * 1024 / $n")
  local per_anon; per_anon=$(calc "($anon - $IDLE_ANON) * 1024 / $n")
  printf '%6d streams: all open after %5.1f s (%d held at the gateway then), RSS %6.1f MB' \
    "$n" "$seconds" "$held" "$rss"
  printf ' (first read %.1f):\n' "$first"
  printf '        %5.1f KB per stream (anonymous: %5.1f KB, huge pages %s MB); %d complete, %d errors, %d cut short\n' \
    "$per" "$per_anon" "$huge" "$complete" "$errors" "$short"
  echo "$n $per $per_anon $errors $short" >>"$WORK/rounds"
}

echo "== $(nproc) cores shared by the client, the mock and the gateway; $(date -u +%F)"
echo "   mock: one event every $DELAY, 30 events a stream; gateway RSS at start $(rss_mb "$GW_PID") MB"
for i in $(seq 200); do
  curl -fsS -o /dev/null -H 'content-type: application/json' -d "$(body true)" "$GW_URL/v1/chat/completions"
done
curl -fsS "$MOCK_URL/_mock/faults" -d "{\"kind\":\"slow_stream\",\"delay\":\"$DELAY\"}" >/dev/null
sleep 1
IDLE=$(rss_mb "$GW_PID")
IDLE_ANON=$(anon_mb "$GW_PID")
echo "   idle RSS after a warm-up of 200 requests: $IDLE MB (anonymous $IDLE_ANON MB, huge pages $(huge_mb "$GW_PID") MB)"
: >"$WORK/rounds"
for n in ${COUNTS//,/ }; do
  if [ "$n" -gt "$FITS" ]; then
    echo "   $n streams need $((2 * n + 200)) descriptors at the gateway; the open-file limit is $(ulimit -n): running $FITS"
    n=$FITS
  fi
  for _ in $(seq "$ROUNDS"); do
    round "$n"
    sleep 2
  done
done
echo
echo "== against the target (issue 11), this run"
while read -r n per per_anon errors short; do
  printf '%-58s %24s  %s\n' "$n open streams: RSS (anonymous) per stream, errors, cut short" \
    "$per ($per_anon) KB, $errors, $short" \
    "$(verdict "$per <= $GOAL_KB && $errors == 0 && $short == 0") (<= $GOAL_KB KB, 0, 0)"
done <"$WORK/rounds"
if [ "$ROUNDS" -gt 1 ]; then
  sort -n -k1,1 -k2,2 "$WORK/rounds" | awk '{ n[$1]++; if (!($1 in lo)) lo[$1] = $2; hi[$1] = $2 }
    END { for (k in n) printf "%d open streams, %d rounds: RSS per stream from %.1f to %.1f KB\n", k, n[k], lo[k], hi[k] }'
fi
echo "gateway peak RSS of the whole run (VmHWM): $(hwm_mb "$GW_PID") MB"
