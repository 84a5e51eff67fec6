#!/usr/bin/env bash
# A/B of two split-proxy builds against nginx: alternating rounds, so all targets share
# whatever the machine is doing. Each round drives nginx (and any other BASELINES),
# build A and build B in turn with `wrk -t1 -c$CONNS -d$DURATION` (the guide's request,
# run.sh's backend and route) and prints, per target: req/s, p50 and p99 (µs), and user
# and kernel CPU µs per request of the process (utime/stime deltas from /proc/PID/stat,
# nginx's worker included). Medians over the rounds and the rounds B used less user time
# than A close the output.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY            # 8 rounds of 5 s
#   ROUNDS=10 DURATION=5s bench/ab.sh target/a/split-proxy target/b/split-proxy
#
# Knobs: ROUNDS (8), DURATION (5s), CONNS (64), BASELINES ("nginx": the targets driven
# before A and B in each round, any of nginx, haproxy and direct, the backend without a
# proxy; nginx is always one, the ratios are against it; with direct, each target's
# distance below it is printed too), WORKERS (1: split-proxy --workers and nginx
# worker_processes), AFFINITY=1 (workers pinned to CPUs: split-proxy --cpu-affinity,
# nginx worker_cpu_affinity auto), BENCH_BACKEND (prebuilt backend), KEEP=1,
# PIN_WRK / PIN_PROXY / PIN_BACKEND (taskset CPU lists, as in run.sh: e.g. 0 / 1 / 0 gives
# the proxies a core of their own).
# CPU resolution is one clock tick (10 ms) per round: 5 s rounds at ~25k req/s give
# about ±0.1 µs per request.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: bench/ab.sh BINARY_A BINARY_B" >&2; exit 2; }
ROUNDS=${ROUNDS:-8}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-64}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TAG=ab
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

read -r -a BASE <<<"${BASELINES:-nginx}"
[[ " ${BASE[*]} " == *" nginx "* ]] || BASE=(nginx "${BASE[@]}")
for t in "${BASE[@]}"; do
    case $t in nginx | haproxy | direct) ;; *) die "BASELINES: unknown target $t (nginx, haproxy, direct)" ;; esac
done
TARGETS=("${BASE[@]}" a b)
install_missing nginx:nginx-light wrk:wrk
export PATH="$PATH:/usr/sbin:/sbin"
for b in "$1" "$2"; do [ -x "$b" ] || die "not an executable: $b"; done
build_backend
make_workdir split-ab
chmod 755 "$WORK" # nginx workers may run as an unprivileged user

# shellcheck disable=SC2046 # pin prints a command prefix (or nothing) to split into words
start_arms $(pin "${PIN_BACKEND:-}")
read -r NGINX_PORT <<<"$("$BENCH_BACKEND" ports 1 | xargs)"
write_nginx_conf "$NGINX_PORT" 4096
# shellcheck disable=SC2046 # as above
start_nginx $(pin "${PIN_PROXY:-}")
declare -A ADDR=([nginx]="127.0.0.1:$NGINX_PORT" [direct]="$ARM_A") \
    PID=([nginx]="$NGINX_PID" [direct]="$BACKEND_PID")
if [[ " ${BASE[*]} " == *" haproxy "* ]]; then
    install_missing haproxy:haproxy
    read -r HAPROXY_PORT <<<"$("$BENCH_BACKEND" ports 1 | xargs)"
    write_haproxy_conf "$HAPROXY_PORT" 4096 4096
    # shellcheck disable=SC2046 # as above
    start_haproxy $(pin "${PIN_PROXY:-}")
    ADDR[haproxy]="127.0.0.1:$HAPROXY_PORT"
    PID[haproxy]=$HAPROXY_PID
fi
write_guide_route
for side in a b; do
    if [ "$side" = a ]; then SPLIT_PROXY=$1; else SPLIT_PROXY=$2; fi
    # shellcheck disable=SC2046 # as above
    start_split $(pin "${PIN_PROXY:-}")
    ADDR[$side]=$SPLIT_ADDR
    PID[$side]=$SPLIT_PID
    # start_split's files are per instance.
    mv "$WORK/split.log" "$WORK/split-$side.log"
    mv "$WORK/split-data" "$WORK/split-data-$side"
done

write_post_lua
cat >>"$WORK/post.lua" <<'LUA'
function done(summary, latency, requests)
    io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99),
        summary.errors.status + summary.errors.connect + summary.errors.read
        + summary.errors.write + summary.errors.timeout))
end
LUA

# shellcheck disable=SC2207 # pin's words are the command prefix
WRK=($(pin "${PIN_WRK:-}") wrk)
TCK=$(getconf CLK_TCK)
URL=/chat/completions
for t in "${TARGETS[@]}"; do
    "${WRK[@]}" -t1 -c"$CONNS" -d1s -s "$WORK/post.lua" "http://${ADDR[$t]}$URL" >/dev/null
done
say "A = $1"
say "B = $2"
echo "round target req/s p50_us p99_us user_us/req kernel_us/req"
for r in $(seq "$ROUNDS"); do
    for t in "${TARGETS[@]}"; do
        read -r u0 s0 < <(proc_ticks "${PID[$t]}")
        out=$("${WRK[@]}" -t1 -c"$CONNS" -d"$DURATION" -s "$WORK/post.lua" "http://${ADDR[$t]}$URL" | grep '^RESULT')
        read -r u1 s1 < <(proc_ticks "${PID[$t]}")
        read -r _ req dur p50 p99 bad <<<"$out"
        ((bad == 0)) || say "warning: $t had $bad errors or non-2xx answers in round $r"
        awk -v r="$r" -v t="$t" -v req="$req" -v dur="$dur" -v p50="$p50" -v p99="$p99" \
            -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v tck="$TCK" \
            'BEGIN { printf "%d %s %.0f %d %d %.2f %.2f\n", r, t, req / (dur / 1e6), p50, p99,
                     du / tck * 1e6 / req, ds / tck * 1e6 / req }'
    done
done | tee "$WORK/rounds.txt"
awk -v targets="${TARGETS[*]}" '
    { rps[$2] = rps[$2] " " $3; p50[$2] = p50[$2] " " $4; p99[$2] = p99[$2] " " $5
      user[$2] = user[$2] " " $6; sys[$2] = sys[$2] " " $7
      if ($2 == "a") ua[$1] = $6; if ($2 == "b") ub[$1] = $6 }
    function median(list,    v, n, i, j, x) {
        n = split(list, v, " ")
        for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] + 0 > x + 0; j--) v[j + 1] = v[j]; v[j + 1] = x }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    END {
        print "median target req/s p50_us p99_us user_us/req kernel_us/req req/s_vs_nginx"
        n = split(targets, order, " ")
        for (k = 1; k <= n; k++) { t = order[k]
            printf "median %s %.0f %.0f %.0f %.2f %.2f %.3f\n", t, median(rps[t]), median(p50[t]),
                median(p99[t]), median(user[t]), median(sys[t]), median(rps[t]) / median(rps["nginx"]) }
        if ("direct" in rps)
            for (k = 1; k <= n; k++) { t = order[k]
                if (t != "direct")
                    printf "%s: median req/s %.1f %% below direct\n", t, 100 * (1 - median(rps[t]) / median(rps["direct"])) }
        fewer = 0; for (r in ua) if (ub[r] < ua[r]) fewer++
        printf "B used less user time than A in %d of %d rounds\n", fewer, length(ua)
    }' "$WORK/rounds.txt"
