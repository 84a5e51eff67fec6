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

"$BENCH_BACKEND" serve --listen 127.0.0.1:0 --listen 127.0.0.1:0 --threads 1 >"$WORK/backend.out" 2>&1 &
PIDS+=("$!")
wait_for "$WORK/backend.out" "listening on" 2
ARM_A=$(grep "listening on" "$WORK/backend.out" | sed -n 1p | awk '{print $3}')
ARM_B=$(grep "listening on" "$WORK/backend.out" | sed -n 2p | awk '{print $3}')
sed -e "s/@A@/$ARM_A/g" -e "s/@B@/$ARM_B/g" >"$WORK/apisix.json" <<'EOF'
{"routes": [{"id": "aimlapi-split", "uri": "/chat/completions",
  "upstream": {"type": "roundrobin", "nodes": {"@A@": 1}, "pass_host": "node"},
  "plugins": {"traffic-split": {"rules": [
    {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"@A@": 1}, "pass_host": "node"},
     "rewrite": {"uri": "/v1/chat/completions"}},
    {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"@B@": 1}, "pass_host": "node"},
     "rewrite": {"uri": "/v2/chat/completions"}}]}}}]}
EOF
valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" --dump-instr=no \
    "$SPLIT_PROXY" --standalone "$WORK/apisix.json" --workers 1 --grace 1s \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --data-dir "$WORK/split-data" --log-level warn >"$WORK/split.log" 2>&1 &
VG=$!
PIDS+=("$VG")
wait_for "$WORK/split.log" "config source:"
ADDR=$(sed -n 's/.*proxy listening on //p' "$WORK/split.log" | head -1)
METRICS=$(sed -n 's/.*metrics listening on //p' "$WORK/split.log" | head -1)

cat >"$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}'
wrk.headers["Content-Type"] = "application/json"
EOF
served() { # requests counted by the proxy so far
    curl -s "http://$METRICS/metrics" | awk '/^split_arm_requests_total/ {n += $2} END {print n + 0}'
}
say "warm-up"
wrk -t1 -c"$CONNS" -d3s -s "$WORK/post.lua" "http://$ADDR/chat/completions" >/dev/null
before=$(served)
callgrind_control -z "$VG" >/dev/null
say "measured run ($DURATION, $CONNS connections)"
wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://$ADDR/chat/completions" >"$WORK/wrk.txt"
callgrind_control -d "$VG" >/dev/null
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
