#!/usr/bin/env bash
# End-to-end benchmark: split-proxy vs nginx vs haproxy in front of the same two-port
# backend, each with one worker, driven by wrk with the guide's chat request.
# Prints one markdown table (ratios vs nginx). See bench/README.md.
#
#   DURATION=10s bench/run.sh          # the measurement
#   DURATION=2s  bench/run.sh          # a quick check (under a minute once built)
#
# Knobs (environment): DURATION (10s), WARMUP (1s), CONNS (64), SSE_REQUESTS (50),
# IDLE_CONNS (10000), BACKEND_THREADS (1), SPLIT_PROXY (path to a prebuilt binary),
# BENCH_BACKEND (path to a prebuilt bench-backend), KEEP=1 keeps the temp dir,
# PIN_WRK / PIN_PROXY / PIN_BACKEND (taskset CPU lists, e.g. 0 / 1 / 2-3) to keep the
# load generator, the proxy under test and the backend off each other's cores.
# Everything listens on 127.0.0.1 only, on free ports; all processes die on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
CONNS=${CONNS:-64}
SSE_REQUESTS=${SSE_REQUESTS:-50}
IDLE_CONNS=${IDLE_CONNS:-10000}
BACKEND_THREADS=${BACKEND_THREADS:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=bench
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

# Seconds in a wrk duration (10s, 500ms, 1m), rounded up; used only for timeouts.
seconds_of() {
    local d=$1
    case $d in
        *ms) echo $(( (${d%ms} + 999) / 1000 )) ;;
        *s) echo "${d%s}" ;;
        *m) echo $(( ${d%m} * 60 )) ;;
        *h) echo $(( ${d%h} * 3600 )) ;;
        *) echo "$d" ;;
    esac
}

# --- tools and binaries ------------------------------------------------------------------
install_missing nginx:nginx-light haproxy:haproxy wrk:wrk
export PATH="$PATH:/usr/sbin:/sbin"
build_binaries

# --- file descriptors --------------------------------------------------------------------
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
# haproxy reserves two fds per connection (client + server side) plus a few of its own.
if (( 2 * IDLE_CONNS + 300 > NOFILE )); then
    say "ulimit -n is at most $NOFILE here: idle connection test reduced from $IDLE_CONNS to $(( (NOFILE - 300) / 2 )) (haproxy needs 2 fds per connection)"
    IDLE_CONNS=$(( (NOFILE - 300) / 2 ))
fi

# --- temp dir and cleanup ----------------------------------------------------------------
make_workdir split-bench
chmod 755 "$WORK" # nginx workers may run as an unprivileged user

# Runs a command in the background and waits for it, so INT/TERM are handled at once
# (bash runs traps only after a foreground child ends).
interruptible() {
    "$@" &
    wait "$!"
}

# --- backend (arm A and arm B) -----------------------------------------------------------
# shellcheck disable=SC2046 # pin prints a command prefix (or nothing) to split into words
start_arms $(pin "${PIN_BACKEND:-}")
read -r NGINX_PORT HAPROXY_PORT <<<"$("$BENCH_BACKEND" ports 2 | xargs)"

# --- nginx -------------------------------------------------------------------------------
write_nginx_conf "$NGINX_PORT" "$NOFILE"
# shellcheck disable=SC2046 # as above
start_nginx $(pin "${PIN_PROXY:-}")

# --- haproxy -----------------------------------------------------------------------------
write_haproxy_conf "$HAPROXY_PORT" $((IDLE_CONNS + 50)) "$NOFILE"
# shellcheck disable=SC2046 # as above
start_haproxy $(pin "${PIN_PROXY:-}")

# --- split-proxy (the guide's 50/50 route, arms on A and B with path rewrites) -----------
write_guide_route
# shellcheck disable=SC2046 # as above
start_split $(pin "${PIN_PROXY:-}")

TARGETS=(direct nginx haproxy split-proxy)
declare -A ADDR=([direct]="$ARM_A" [nginx]="127.0.0.1:$NGINX_PORT"
    [haproxy]="127.0.0.1:$HAPROXY_PORT" [split-proxy]="$SPLIT_ADDR")
declare -A PID=([direct]="$BACKEND_PID" [nginx]="$NGINX_PID"
    [haproxy]="$HAPROXY_PID" [split-proxy]="$SPLIT_PID")

# Every target must answer the guide's request with 200 before we measure it.
for t in "${TARGETS[@]}"; do
    ok=0
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://${ADDR[$t]}/chat/completions" \
            -H 'Content-Type: application/json' \
            -d '{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}' || true)
        if [ "$code" = 200 ]; then ok=1; break; fi
        sleep 0.1
    done
    ((ok)) || die "$t (${ADDR[$t]}) does not answer 200 (last: $code); logs in $WORK (KEEP=1)"
done

# --- /proc helpers -----------------------------------------------------------------------
# utime+stime (clock ticks) of a process and its children (nginx's worker).
cpu_ticks() {
    local u s
    read -r u s < <(proc_ticks "$1")
    echo $((u + s))
}
# VmRSS (kB) of a process and its children.
rss_kb() {
    local total=0 p
    for p in $(proc_tree "$1"); do
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    done
    echo "$total"
}
TICKS=$(getconf CLK_TCK)

# --- throughput and latency --------------------------------------------------------------
write_post_lua
cat >>"$WORK/post.lua" <<'EOF'
function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d non2xx=%d socket_errors=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
LIMIT=$(( $(seconds_of "$DURATION") + $(seconds_of "$WARMUP") + 30 ))
declare -A RPS P50 P99 P999 CPU RSS TTFB IDLE WARN
for t in "${TARGETS[@]}"; do
    say "load: $t (${ADDR[$t]}), warmup $WARMUP, run $DURATION"
    url="http://${ADDR[$t]}/chat/completions"
    # shellcheck disable=SC2046 # pin prints a command prefix (or nothing)
    interruptible timeout "$LIMIT" $(pin "${PIN_WRK:-}") wrk -t1 -c"$CONNS" -d"$WARMUP" -s "$WORK/post.lua" "$url" >"$WORK/wrk-$t-warmup.txt"
    before=$(cpu_ticks "${PID[$t]}")
    # shellcheck disable=SC2046 # as above
    interruptible timeout "$LIMIT" $(pin "${PIN_WRK:-}") wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$WORK/post.lua" "$url" \
        >"$WORK/wrk-$t.txt"
    after=$(cpu_ticks "${PID[$t]}")
    line=$(grep '^RESULT ' "$WORK/wrk-$t.txt") || die "wrk printed no result for $t: $(cat "$WORK/wrk-$t.txt")"
    eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/r_/')"
    # shellcheck disable=SC2154 # r_* come from the eval above
    {
        RPS[$t]=$(awk -v n="$r_requests" -v us="$r_duration_us" 'BEGIN {printf "%.0f", n / (us / 1e6)}')
        P50[$t]=$r_p50_us P99[$t]=$r_p99_us P999[$t]=$r_p999_us
        CPU[$t]=$(awk -v d=$((after - before)) -v hz="$TICKS" -v n="$r_requests" \
            'BEGIN {printf "%.2f", (n > 0) ? (d / hz * 1e6 / n) : 0}')
        ((r_non2xx == 0 && r_socket_errors == 0)) ||
            WARN[$t]="$t: $r_non2xx non-2xx responses, $r_socket_errors socket errors"
    }
    RSS[$t]=$(rss_kb "${PID[$t]}")
done

# --- SSE time to first chunk -------------------------------------------------------------
for t in "${TARGETS[@]}"; do
    say "sse: $t, $SSE_REQUESTS streamed requests"
    out=$(timeout 120 "$BENCH_BACKEND" ttfb --url "http://${ADDR[$t]}/chat/completions" \
        --requests "$SSE_REQUESTS") || die "ttfb against $t failed"
    TTFB[$t]=$(echo "$out" | tr ' ' '\n' | sed -n 's/^median_us=//p')
done

# --- idle keep-alive connections ---------------------------------------------------------
for t in nginx haproxy split-proxy; do
    say "idle: $t, $IDLE_CONNS keep-alive connections"
    base=$(rss_kb "${PID[$t]}")
    timeout 120 "$BENCH_BACKEND" idle --addr "${ADDR[$t]}" --conns "$IDLE_CONNS" --hold-secs 60 \
        >"$WORK/idle-$t.out" 2>&1 &
    holder=$!
    PIDS+=("$holder")
    wait_for "$WORK/idle-$t.out" "^ready"
    sleep 1
    held=$(sed -n 's/^ready conns=\([0-9]*\).*/\1/p' "$WORK/idle-$t.out")
    now=$(rss_kb "${PID[$t]}")
    held=${held:-0}
    if ((held > 0)); then
        IDLE[$t]=$(awk -v d=$((now - base)) -v n="$held" 'BEGIN {printf "%.1f", d / n}')
    fi
    ((held == IDLE_CONNS)) ||
        WARN[$t-idle]="$t: only $held of $IDLE_CONNS idle connections opened ($(tail -1 "$WORK/idle-$t.out"))"
    kill -TERM "$holder" 2>/dev/null || true
    wait "$holder" 2>/dev/null || true
    sleep 0.5 # let the proxy notice the closes before the next one starts
done

# --- report ------------------------------------------------------------------------------
# "value (ratio×)" against nginx; lower-is-better columns say so in the header.
cell() { # value nginx_value decimals scale
    awk -v v="$1" -v b="$2" -v d="$3" -v s="${4:-1}" 'BEGIN {
        if (v == "") { printf "—"; exit }
        printf "%." d "f", v / s
        if (b != "" && b + 0 > 0) printf " (%.2f×)", v / b
    }'
}
echo
echo "split-proxy benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, wrk -t1 -c$CONNS -d$DURATION, POST /chat/completions (guide body), 1 worker each"
echo
echo "| target | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | RSS MB after run | SSE first chunk µs (median) | idle KB/conn ($IDLE_CONNS conns) |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in "${TARGETS[@]}"; do
    name=$t
    [ "$t" = direct ] && name="backend direct (ceiling)"
    sse=$(cell "${TTFB[$t]}" "${TTFB[nginx]}" 0)
    if [ "$t" != direct ]; then
        sse="$sse, $(printf '%+d' $(( ${TTFB[$t]} - ${TTFB[direct]} ))) vs direct"
    fi
    echo "| $name | $(cell "${RPS[$t]}" "${RPS[nginx]}" 0) | $(cell "${P50[$t]}" "${P50[nginx]}" 3 1000) | $(cell "${P99[$t]}" "${P99[nginx]}" 3 1000) | $(cell "${P999[$t]}" "${P999[nginx]}" 3 1000) | $(cell "${CPU[$t]}" "${CPU[nginx]}" 1) | $(cell "${RSS[$t]}" "${RSS[nginx]}" 1 1024) | $sse | $(cell "${IDLE[$t]:-}" "${IDLE[nginx]}" 1) |"
done
echo
arms=$(curl -s "http://$SPLIT_METRICS/metrics" | grep '^split_arm_requests_total' | sort | awk '{printf "%s%s", sep, $0; sep="; "}' || true)
echo "split-proxy per-arm counters after the run: ${arms:-unavailable}"
echo "Ratios in parentheses are vs nginx (req/s: higher is better; all other columns: lower is better)."
for w in "${WARN[@]}"; do echo "WARNING: $w"; done
