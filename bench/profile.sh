#!/usr/bin/env bash
# Instructions per request of split-proxy on the benchmark's request path, counted by
# callgrind (repeatable on a noisy machine, unlike time). Starts the bench backend and
# split-proxy (under valgrind) with the same guide route as run.sh, warms up, zeroes the
# counters, drives REQUESTS-ish requests with wrk, dumps, and prints Ir per request plus
# the top functions (inclusive and self).
#
#   bench/profile.sh                      # builds release binaries first
#   SPLIT_PROXY=... BENCH_BACKEND=... bench/profile.sh
#   TARGET=nginx bench/profile.sh         # nginx (one process) with run.sh's config
#
# Knobs: TARGET (split-proxy or nginx), DURATION (wrk run under valgrind, 10s), CONNS
# (8), TOP (30), CACHE=1 (also simulate the caches and print misses per request: L1
# instruction, L1 data read and write, and last-level; the last level is CACHE_LL,
# "524288,8,64", this machine's 512 KiB L2 per core, whose misses go to the shared L3),
# KEEP=1 keeps the temp dir (with the callgrind.out file for
# callgrind_annotate / kcachegrind). Requests are wrk's count of completed ones (those
# still in flight when it stops, at most CONNS, are left out of the count).
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-8}
TOP=${TOP:-30}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=profile
WAIT_SECS=60 # valgrind starts slowly
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

TARGET=${TARGET:-split-proxy}
command -v valgrind >/dev/null || die "valgrind is missing (apt-get install valgrind)"
command -v wrk >/dev/null || die "wrk is missing (apt-get install wrk)"
case $TARGET in
    split-proxy) build_binaries ;;
    nginx)
        export PATH="$PATH:/usr/sbin:/sbin"
        command -v nginx >/dev/null || die "nginx is missing (apt-get install nginx-light)"
        build_backend
        ;;
    *) die "TARGET must be split-proxy or nginx, not '$TARGET'" ;;
esac
make_workdir split-profile
CALLGRIND=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" --dump-instr=no)
[ "${CACHE:-0}" = 1 ] && CALLGRIND+=(--cache-sim=yes "--LL=${CACHE_LL:-524288,8,64}")

start_arms
write_post_lua
cat >>"$WORK/post.lua" <<'EOF'
function done(summary, latency, requests)
    io.write(string.format("REQUESTS %d\n", summary.requests))
end
EOF
if [ "$TARGET" = nginx ]; then
    chmod 755 "$WORK" # nginx may switch to an unprivileged user
    read -r port <<<"$("$BENCH_BACKEND" ports 1 | xargs)"
    # One process: the worker's instructions are the ones counted.
    write_nginx_conf "$port" 4096 "master_process off;"
    start_nginx "${CALLGRIND[@]}"
    PID=$NGINX_PID
    ADDR=127.0.0.1:$port
    for _ in $(seq 200); do
        curl -s -o /dev/null -X POST "http://$ADDR/chat/completions" -d '{}' && break
        sleep 0.3
    done
else
    write_guide_route
    start_split "${CALLGRIND[@]}"
    PID=$SPLIT_PID
    ADDR=$SPLIT_ADDR
fi
say "warm-up"
wrk -t1 -c"$CONNS" -d3s -s "$WORK/post.lua" "http://$ADDR/chat/completions" >/dev/null
callgrind_control -z "$PID" >/dev/null
say "measured run ($DURATION, $CONNS connections)"
wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://$ADDR/chat/completions" >"$WORK/wrk.txt"
callgrind_control -d "$PID" >/dev/null
n=$(awk '/^REQUESTS/ {print $2}' "$WORK/wrk.txt")
grep -q "Non-2xx" "$WORK/wrk.txt" && die "non-2xx answers: $(cat "$WORK/wrk.txt")"
((${n:-0} > 0)) || die "no request served: $(cat "$WORK/wrk.txt")"
# The dump after -z holds only the measured run.
dumps=("$WORK"/callgrind.out.*)
dump=${dumps[0]}
[ -f "$dump" ] || die "callgrind wrote no dump"
annotated=$(callgrind_annotate "$dump" 2>/dev/null)
ir=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' <<<"$annotated")
echo "target=$TARGET requests=$n instructions=$ir Ir/request=$((ir / n))"
if [ "${CACHE:-0}" = 1 ]; then
    # The events line names the columns of the totals line.
    awk -v n="$n" '
        /^Ir  / && !names { for (i = 1; i <= NF; i++) name[i] = $i; names = NF }
        /PROGRAM TOTALS/ {
            k = 0
            for (i = 1; i <= NF && k < names; i++) if ($i ~ /^[0-9,]+$/) { gsub(",", "", $i); v[name[++k]] = $i }
            printf "per request: I1 misses %.0f, D1 read misses %.0f, D1 write misses %.0f, LL misses %.0f (instructions %.0f, data reads %.0f, data writes %.0f)\n",
                v["I1mr"] / n, v["D1mr"] / n, v["D1mw"] / n, (v["ILmr"] + v["DLmr"] + v["DLmw"]) / n,
                v["ILmr"] / n, v["DLmr"] / n, v["DLmw"] / n
            exit
        }' <<<"$annotated"
fi
echo "== inclusive"
callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p"
echo "== self"
callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null | sed -n '/file:function/,$p' | sed -n "3,$((TOP + 2))p"
