#!/usr/bin/env bash
# Where split-proxy's time goes per request, by sampling (perf, cpu-clock): catches what
# instruction counts (bench/profile.sh) miss — cache misses, atomics, the clock. Starts
# the bench backend and split-proxy with the guide's route as run.sh does, warms up,
# records `perf record -e cpu-clock --call-graph dwarf` on the proxy while wrk drives it,
# and prints µs per request by leaf symbol (user space), plus a few grouped rows.
#
#   bench/perf.sh                          # builds release binaries first
#   SPLIT_PROXY=... BENCH_BACKEND=... bench/perf.sh
#
# Knobs: DURATION (seconds recorded, 3), CONNS (64), FREQ (2000 Hz), TOP (25), KEEP=1
# keeps the temp dir with perf.data. perf's unwinding inflates every figure; compare
# builds in alternating runs of this script, not against other methods.
set -euo pipefail

DURATION=${DURATION:-3}
CONNS=${CONNS:-64}
FREQ=${FREQ:-2000}
TOP=${TOP:-25}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=perf
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

install_missing perf:linux-perf wrk:wrk python3:python3
build_binaries
make_workdir split-perf

start_arms
write_guide_route
start_split
write_post_lua

say "warm-up"
wrk -t1 -c"$CONNS" -d2s -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >/dev/null
# wrk runs past both ends of the recording, so every recorded second is under load.
wrk -t1 -c"$CONNS" -d"$((DURATION + 2))s" -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >"$WORK/wrk.txt" &
WRK=$!
sleep 1
say "recording ${DURATION}s at ${FREQ} Hz"
perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -p "$SPLIT_PID" -o "$WORK/perf.data" \
    -- sleep "$DURATION" >/dev/null 2>&1
wait "$WRK"
# Requests in the recorded seconds: wrk's steady rate over its whole run times the
# recording's length (perf's own start and write-out fall outside the samples).
rps=$(awk '/Requests\/sec/ {print int($2)}' "$WORK/wrk.txt")
n=$((rps * DURATION))
((n > 0)) || die "no request served: $(cat "$WORK/wrk.txt")"
perf script -i "$WORK/perf.data" --no-inline -F ip,sym 2>/dev/null >"$WORK/samples.txt"
python3 - "$WORK/samples.txt" "$n" "$FREQ" "$TOP" <<'PY'
import collections, sys

path, requests, freq, top = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
us = lambda samples: samples * 1e6 / freq / requests
groups = {
    "memcmp": ("memcmp",),
    "memmove/memcpy": ("memmove", "memcpy"),
    "clock": ("clock_gettime", "Timespec"),
    "mimalloc": ("mi_", "_mi_"),
    "bytes refcounts": ("shared_v_", "promotable_"),
}
total = user = 0
leaves, grouped = collections.Counter(), collections.Counter()
for sample in open(path).read().split("\n\n"):
    lines = [l.strip() for l in sample.strip().split("\n") if l.strip()]
    if not lines:
        continue
    total += 1
    ip, _, sym = lines[0].partition(" ")
    if ip.startswith("ffff"):  # kernel address
        continue
    user += 1
    leaves[sym[:100]] += 1
    for name, prefixes in groups.items():
        if any(sym.startswith(p) or p in sym for p in prefixes):
            grouped[name] += 1
            break
print(f"requests={requests} samples={total} total={us(total):.2f}us/req user={us(user):.2f}us/req")
print("== groups (user space, us/request)")
for name in groups:
    print(f"{us(grouped[name]):7.3f}  {name}")
print("== leaves (user space, us/request)")
for sym, count in leaves.most_common(top):
    print(f"{us(count):7.3f}  {sym}")
PY
