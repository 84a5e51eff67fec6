#!/usr/bin/env bash
# Heap allocations per proxied request, counted by valgrind's DHAT: builds split-proxy
# with the system allocator (`--features system-alloc`; DHAT only sees malloc/free, not
# mimalloc), serves the guide's route behind the bench backend as run.sh does, drives it
# with wrk, and prints allocations and bytes per request plus every allocation site
# reached at least once per two requests (size, count per request, the frames around
# the first split function).
#
#   bench/allocs.sh                          # builds the system-allocator binary first
#   SPLIT_PROXY=... BENCH_BACKEND=... bench/allocs.sh
#
# Knobs: DURATION (wrk run under valgrind, 4s), CONNS (8), KEEP=1 keeps the temp dir
# (dhat.json opens in valgrind's dh_view.html). The build goes to target/allocs (thin
# LTO and line tables, so sites have names; counts match the release build's, whose
# inlining does not change what is allocated). Requests are split's own count
# (split_arm_requests_total), so the warm-up is included in both counts.
set -euo pipefail

DURATION=${DURATION:-4s}
CONNS=${CONNS:-8}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=allocs
WAIT_SECS=60 # valgrind starts slowly
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

install_missing valgrind:valgrind wrk:wrk python3:python3 curl:curl
if [ -z "${SPLIT_PROXY:-}" ]; then
    say "building split-proxy with the system allocator (target/allocs)"
    CARGO_TARGET_DIR="$ROOT/target/allocs" CARGO_PROFILE_RELEASE_LTO=thin \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=4 CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --quiet --release -p split-proxy --features system-alloc \
        --manifest-path "$ROOT/Cargo.toml" >&2
    SPLIT_PROXY="$ROOT/target/allocs/release/split-proxy"
fi
build_binaries
make_workdir split-allocs

start_arms
write_guide_route
start_split valgrind --tool=dhat --dhat-out-file="$WORK/dhat.json"
write_post_lua
say "wrk -t1 -c$CONNS -d$DURATION under DHAT"
wrk -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >"$WORK/wrk.txt"
requests=$(curl -fsS "http://$SPLIT_METRICS/metrics" |
    awk '/^split_arm_requests_total/ {n += $2} END {print n + 0}')
[ "$requests" -gt 0 ] || die "split-proxy counted no request: $(cat "$WORK/split.log")"
# DHAT writes its file when the process exits.
kill -INT "$SPLIT_PID"
for _ in $(seq 300); do
    kill -0 "$SPLIT_PID" 2>/dev/null || break
    sleep 0.2
done
[ -s "$WORK/dhat.json" ] || die "DHAT wrote no output: $(tail -5 "$WORK/split.log")"

python3 - "$WORK/dhat.json" "$requests" <<'PY'
import json, re, sys

data = json.load(open(sys.argv[1]))
requests = int(sys.argv[2])
frames = data["ftbl"]
blocks = sum(p["tbk"] for p in data["pps"])
size = sum(p["tb"] for p in data["pps"])
print(f"requests={requests} allocations/request={blocks / requests:.2f} "
      f"bytes/request={size / requests:.0f}")
rows = []
for p in data["pps"]:
    if p["tbk"] < requests / 2:
        continue
    names = []
    for i in p["fs"][1:]:
        m = re.search(r": (.*) \(", frames[i])
        names.append(m.group(1) if m else frames[i])
    first = next((k for k, n in enumerate(names) if "split_" in n), 0)
    where = " <- ".join(n[:70] for n in names[max(0, first - 1):first + 3])
    rows.append((p["tbk"] / requests, p["tb"] / p["tbk"], where))
print("per request  bytes  site (allocating frame <- callers)")
for count, avg, where in sorted(rows, reverse=True):
    print(f"{count:11.2f} {avg:6.0f}  {where}")
PY
