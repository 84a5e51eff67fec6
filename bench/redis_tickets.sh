#!/usr/bin/env bash
# Latency cost of traffic-split `ticket: redis`: one split-proxy (1 worker) with three
# copies of the guide's 50/50 route — local tickets, `ticket: redis` batch 1, batch 16 —
# against one local redis-server and the bench backend, driven by wrk. Prints a markdown
# table (req/s, p50, p99) for 1 connection (pure per-request latency) and for CONNS.
#
#   DURATION=5s bench/redis_tickets.sh
#
# Knobs: DURATION (5s), CONNS (32), SPLIT_PROXY / BENCH_BACKEND (prebuilt binaries;
# otherwise both are built in release mode). Installs wrk and redis-server with apt-get
# when missing. 127.0.0.1 only, free ports, temp dir removed and processes killed on exit.
set -euo pipefail

DURATION=${DURATION:-5s}
CONNS=${CONNS:-32}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

install_missing wrk:wrk redis-server:redis-server
build_binaries
make_workdir split-redis-bench

start_arms
REDIS_PORT=$("$BENCH_BACKEND" ports 1 | xargs)

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$WORK" \
    >"$WORK/redis.out" 2>&1 &
PIDS+=("$!")
wait_for "$WORK/redis.out" "Ready to accept connections"

route() { # id, ticket settings (JSON members, may be empty)
    cat <<EOF
    {"id": "$1", "uri": "/$1/chat/completions",
     "upstream": {"type": "roundrobin", "nodes": {"$ARM_A": 1}},
     "plugins": {"traffic-split": {$2 "rules": [
        {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"$ARM_A": 1}}, "rewrite": {"uri": "/v1/chat/completions"}},
        {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"$ARM_B": 1}}, "rewrite": {"uri": "/v2/chat/completions"}}
     ]}}}
EOF
}
redis_ticket() { echo "\"ticket\": \"redis\", \"redis\": {\"host\": \"127.0.0.1\", \"port\": $REDIS_PORT, \"batch\": $1},"; }
cat >"$WORK/apisix.json" <<EOF
{"routes": [
$(route local ""),
$(route redis1 "$(redis_ticket 1)"),
$(route redis16 "$(redis_ticket 16)")
]}
EOF

"$SPLIT_PROXY" --standalone "$WORK/apisix.json" --workers 1 --listen 127.0.0.1:0 \
    --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$WORK/data" \
    >"$WORK/split.log" 2>&1 &
PIDS+=("$!")
wait_for "$WORK/split.log" "proxy listening on"
SPLIT_ADDR=$(grep -o 'proxy listening on [0-9.:]*' "$WORK/split.log" | awk '{print $4}')

write_post_lua
cat >>"$WORK/post.lua" <<'EOF'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.3f %.3f %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
end
EOF

echo "ticket: redis latency cost — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, split-proxy --workers 1, wrk -t1 -d$DURATION, POST (guide body), redis-server on loopback"
echo
echo "| route | conns | req/s | p50 ms | p99 ms | errors |"
echo "|---|---:|---:|---:|---:|---:|"
for conns in 1 "$CONNS"; do
    for id in local redis1 redis16; do
        url="http://$SPLIT_ADDR/$id/chat/completions"
        timeout 60 wrk -t1 -c"$conns" -d1s -s "$WORK/post.lua" "$url" >/dev/null
        line=$(timeout 120 wrk -t1 -c"$conns" -d"$DURATION" --latency -s "$WORK/post.lua" "$url" \
            | grep '^RESULT ') || die "wrk printed no result for $id"
        read -r _ rps p50 p99 errors <<<"$line"
        case $id in
            local) label="local ticket" ;;
            redis1) label="\`ticket: redis\`, batch 1" ;;
            redis16) label="\`ticket: redis\`, batch 16" ;;
        esac
        echo "| $label | $conns | $rps | $p50 | $p99 | $errors |"
    done
done
fallbacks=$(grep -c "redis call failed" "$WORK/split.log" || true)
echo
echo "redis failure log lines during the run: ${fallbacks:-0}"
