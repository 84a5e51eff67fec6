#!/usr/bin/env bash
# A profile-guided (PGO) release build of split-proxy, for the deployments that want its
# highest throughput. The plain `cargo build --release` stays the default build; this one
# is the same source, compiled a second time with the branch and call counts of a
# training run, so that LLVM lays out and inlines the request path for how it really runs.
#
#   bench/pgo.sh                 # → target/pgo/release/split-proxy (prints the path)
#   TRAIN=20s bench/pgo.sh       # a longer training run
#   CHECK=1 bench/pgo.sh         # then split-proxy's integration tests against it
#   SPLIT_PROXY=target/pgo/release/split-proxy bench/run.sh
#
# Steps (about 10 minutes on 2 cores: two release builds with fat LTO):
#   1. an instrumented build (`-Cprofile-generate`) into target/pgo-gen;
#   2. the training run, on loopback behind the bench backend (what run.sh starts):
#      - the guide's 50/50 traffic-split route, `wrk -t1 -c64 -d$TRAIN` with the guide's
#        request (non-streamed answers);
#      - a route with key-auth, limit-count and proxy-rewrite (a consumer's `apikey`),
#        `wrk -d$TRAIN_PLUGINS`;
#      - streamed (SSE) answers through the split route, `bench-backend ttfb`;
#   3. `llvm-profdata merge` of the run's profiles. It must come from rustc's LLVM major
#      version N: LLVM_PROFDATA if set (refused if it is another version), else the
#      first found of rustup's llvm-tools, llvm-profdata-N, /usr/lib/llvm-N/bin; if none,
#      `rustup component add llvm-tools`, then apt-get `llvm-N`;
#   4. the optimized build (`-Cprofile-use`) into target/pgo.
#
# Code the training does not reach (other plugins, the admin API, errors) is compiled
# as rarely run: still correct, laid out away from the hot path. Builds go to their own
# target dirs, so the plain release build is not rebuilt. CHECK=1 then runs split-proxy's
# integration tests against the new binary (`SPLIT_PROXY_BIN`; a few more minutes). Knobs:
# TRAIN (10s), TRAIN_PLUGINS (3s), SSE_TRAIN (300 requests), BENCH_BACKEND (prebuilt
# backend), KEEP=1 (keep the temp dir with the profiles).
set -euo pipefail

TRAIN=${TRAIN:-10s}
TRAIN_PLUGINS=${TRAIN_PLUGINS:-3s}
SSE_TRAIN=${SSE_TRAIN:-300}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=pgo
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

TARGET_ROOT=${CARGO_TARGET_DIR:-$ROOT/target}
GEN_DIR=$TARGET_ROOT/pgo-gen
USE_DIR=$TARGET_ROOT/pgo

# find_profdata: prints an llvm-profdata of rustc's LLVM major version, installing one
# when none is found.
find_profdata() {
    local version major sysroot host candidate attempt
    version=$(rustc -vV)
    major=$(sed -n 's/^LLVM version: \([0-9]*\).*/\1/p' <<<"$version")
    [ -n "$major" ] || die "cannot read rustc's LLVM version from 'rustc -vV'"
    sysroot=$(rustc --print sysroot)
    host=$(sed -n 's/^host: //p' <<<"$version")
    if [ -n "${LLVM_PROFDATA:-}" ]; then
        "$LLVM_PROFDATA" --version 2>/dev/null | grep -q "LLVM version $major\." ||
            die "LLVM_PROFDATA=$LLVM_PROFDATA is not an llvm-profdata of LLVM $major (rustc's)"
        echo "$LLVM_PROFDATA"
        return 0
    fi
    for attempt in 1 2 3; do
        for candidate in "$sysroot/lib/rustlib/$host/bin/llvm-profdata" \
            "llvm-profdata-$major" "/usr/lib/llvm-$major/bin/llvm-profdata" llvm-profdata; do
            command -v "$candidate" >/dev/null 2>&1 || continue
            if "$candidate" --version 2>/dev/null | grep -q "LLVM version $major\."; then
                echo "$candidate"
                return 0
            fi
        done
        case $attempt in
            1) say "no llvm-profdata of LLVM $major: trying rustup's llvm-tools"
               rustup component add llvm-tools >&2 2>/dev/null || true ;;
            2) install_missing "llvm-profdata-$major:llvm-$major" || true ;;
        esac
    done
    die "no llvm-profdata of LLVM $major (rustc's); set LLVM_PROFDATA"
}

install_missing wrk:wrk
PROFDATA=$(find_profdata)
say "llvm-profdata: $PROFDATA"
build_backend
make_workdir split-pgo
mkdir -p "$WORK/train"

say "1/4 instrumented build (target/pgo-gen)"
# Build scripts and proc macros are instrumented too and write their profiles while
# the build runs: those go to build-profiles and are not used. A fixed path keeps
# RUSTFLAGS the same from run to run, so an unchanged source is not built again.
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$GEN_DIR/build-profiles" \
    cargo build --quiet --release --locked -p split-proxy --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$GEN_DIR" >&2
SPLIT_PROXY=$GEN_DIR/release/split-proxy

say "2/4 training run"
start_arms
# The guide's split route plus a keyed route with its later plugins, and the consumer.
write_guide_route ', {"id": "keyed", "uri": "/keyed/chat/completions",
   "upstream": {"type": "roundrobin", "nodes": {"'"$ARM_A"'": 1}},
   "plugins": {"key-auth": {},
     "limit-count": {"count": 1000000000, "time_window": 60, "key": "remote_addr"},
     "proxy-rewrite": {"uri": "/v1/chat/completions"}}}' \
    ', "consumers": [{"username": "bench", "plugins": {"key-auth": {"key": "bench-key"}}}]'
export LLVM_PROFILE_FILE=$WORK/train/split-%p-%m.profraw
start_split
unset LLVM_PROFILE_FILE
write_post_lua
wrk -t1 -c64 -d"$TRAIN" -s "$WORK/post.lua" "http://$SPLIT_ADDR/chat/completions" >"$WORK/wrk-split.txt"
wrk -t1 -c16 -d"$TRAIN_PLUGINS" -s "$WORK/post.lua" -H "apikey: bench-key" \
    "http://$SPLIT_ADDR/keyed/chat/completions" >"$WORK/wrk-keyed.txt"
timeout 120 "$BENCH_BACKEND" ttfb --url "http://$SPLIT_ADDR/chat/completions" \
    --requests "$SSE_TRAIN" >"$WORK/ttfb.txt" || die "streamed training requests failed"
for run in split keyed; do
    if grep -q "Non-2xx\|Socket errors" "$WORK/wrk-$run.txt"; then
        die "training run '$run' had errors: $(cat "$WORK/wrk-$run.txt")"
    fi
done
# The profile is written when the process exits.
kill -TERM "$SPLIT_PID"
wait "$SPLIT_PID" 2>/dev/null || true
compgen -G "$WORK/train/*.profraw" >/dev/null || die "the training run wrote no profile"
say "trained on $(grep -h "requests in" "$WORK"/wrk-*.txt | awk '{s += $1} END {print s}') requests and $SSE_TRAIN streamed ones"

say "3/4 merging the profiles"
"$PROFDATA" merge -o "$WORK/split.profdata" "$WORK"/train/*.profraw
# Named by its content: a new profile changes RUSTFLAGS, so cargo rebuilds with it.
rm -rf "$USE_DIR/profiles"
mkdir -p "$USE_DIR/profiles"
PROFILE=$USE_DIR/profiles/split-$(sha256sum "$WORK/split.profdata" | cut -c1-16).profdata
cp "$WORK/split.profdata" "$PROFILE"

say "4/4 optimized build (target/pgo)"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$PROFILE" \
    cargo build --quiet --release --locked -p split-proxy --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$USE_DIR" >&2
"$USE_DIR/release/split-proxy" --version >/dev/null || die "the PGO build does not run"
if [ "${CHECK:-0}" = 1 ]; then
    # The same source, so the same behaviour: split-proxy's integration suites, each
    # test starting this binary (SPLIT_PROXY_BIN) instead of the debug one.
    say "check: split-proxy's tests against the PGO build"
    SPLIT_PROXY_BIN=$USE_DIR/release/split-proxy \
        cargo test --quiet --locked -p split-proxy --manifest-path "$ROOT/Cargo.toml" >&2
fi
say "done"
echo "$USE_DIR/release/split-proxy"
