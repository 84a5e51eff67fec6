#!/usr/bin/env bash
# Instructions per request of split-proxy on the benchmark's request path, counted by
# callgrind (repeatable on a noisy machine, unlike time). Starts the bench backend and
# split-proxy (under valgrind) with the same guide route as run.sh, warms up, zeroes the
# counters, drives REQUESTS-ish requests with wrk, dumps, and prints Ir per request plus
# the top functions (inclusive and self).
#
#   bench/profile.sh                      # builds release binaries first
#   SPLIT_PROXY=... BENCH_BACKEND=... bench/profile.sh
#
# Knobs: DURATION (wrk run under valgrind, 10s), CONNS (8), TOP (30), KEEP=1 keeps the
# temp dir (with the callgrind.out file for callgrind_annotate / kcachegrind).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
TOP=${TOP:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=profile
WAIT_SECS=60 # valgrind starts slowly
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
build_binaries
make_workdir split-profile

start_arms
write_guide_route
start_split valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" --dump-instr=no
write_post_lua
served() { # requests counted by the proxy so far
    curl -s "http://$SPLIT_METRICS/metrics" | awk '/^split_arm_requests_total/ {n += $2} END {print n + 0}'
}
say "warm-up"
wrk -t1 -c"$CONNS" -d3s -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >/dev/null
before=$(served)
callgrind_control -z "$SPLIT_PID" >/dev/null
say "measured run ($DURATION, $CONNS connections)"
wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >"$WORK/wrk.txt"
callgrind_control -d "$SPLIT_PID" >/dev/null
after=$(served)
n=$((after - before))
((n > 0)) || die "no request served: $(cat "$WORK/wrk.txt")"
# The dump after -z holds only the measured run (plus two metrics scrapes).
dump="$WORK/callgrind.out.1"
[ -f "$dump" ] || die "callgrind wrote no dump"
ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "requests=$n instructions=$ir Ir/request=$((ir / n))"
echo "== inclusive"
callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p"
echo "== self"
callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p"
