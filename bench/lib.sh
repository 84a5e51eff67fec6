# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run): logging, tool installation, release
# builds of split-proxy and the bench backend, a temp dir with process cleanup, and a
# bounded wait for log lines. The sourcing script sets ROOT and BENCH_TAG first.

say() { printf '%s\n' "${BENCH_TAG:-bench}: $*" >&2; }
die() { say "error: $*"; exit 1; }

# pin CPUS: the taskset prefix for a CPU list (e.g. 0, 2-3), or nothing when CPUS is empty.
pin() { [ -n "${1:-}" ] && echo "taskset -c $1"; true; }

# install_missing CMD:PACKAGE...: apt-get installs the packages whose command is absent.
install_missing() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] ||
            missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    say "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# Sets SPLIT_PROXY and BENCH_BACKEND, building release binaries unless given.
build_binaries() {
    if [ -z "${SPLIT_PROXY:-}" ]; then
        say "building split-proxy (release)"
        cargo build --quiet --release -p split-proxy --manifest-path "$ROOT/Cargo.toml" >&2
        SPLIT_PROXY="${CARGO_TARGET_DIR:-$ROOT/target}/release/split-proxy"
    fi
    [ -x "$SPLIT_PROXY" ] || die "split-proxy binary not found at $SPLIT_PROXY"
    build_backend
}

# Sets BENCH_BACKEND, building the bench backend in release mode unless given.
build_backend() {
    if [ -z "${BENCH_BACKEND:-}" ]; then
        say "building bench-backend (release)"
        cargo build --quiet --release --manifest-path "$ROOT/bench/backend/Cargo.toml" >&2
        BENCH_BACKEND="${CARGO_TARGET_DIR:-$ROOT/bench/backend/target}/release/bench-backend"
    fi
    [ -x "$BENCH_BACKEND" ] || die "bench-backend binary not found at $BENCH_BACKEND"
}

# make_workdir NAME: sets WORK to a fresh temp dir and PIDS to (); on exit every process
# in PIDS (and its children) gets TERM, then KILL after 3 s, and WORK is removed
# (kept with KEEP=1).
make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    PIDS=()
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}

cleanup() {
    local pid child
    for pid in $(jobs -p); do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for child in $(pgrep -P "$pid" 2>/dev/null); do kill -TERM "$child" 2>/dev/null || true; done
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}

# wait_for FILE PATTERN [N]: waits until FILE has at least N lines matching PATTERN, at
# most WAIT_SECS (20) seconds.
wait_for() {
    local file=$1 pattern=$2 n=${3:-1} count
    for _ in $(seq $((${WAIT_SECS:-20} * 10))); do
        # The file may not exist yet: the background job creates it.
        count=$(grep -c -- "$pattern" "$file" 2>/dev/null || true)
        if [ "${count:-0}" -ge "$n" ]; then return 0; fi
        sleep 0.1
    done
    die "timed out waiting for '$pattern' in $file: $(tail -5 "$file" 2>/dev/null)"
}

# start_arms [PREFIX...]: the bench backend on two loopback ports, the split's arm A and
# arm B, with BACKEND_THREADS threads (1), run under PREFIX (e.g. taskset) if given;
# sets BACKEND_PID, ARM_A and ARM_B.
start_arms() {
    "$@" "$BENCH_BACKEND" serve --listen 127.0.0.1:0 --listen 127.0.0.1:0 \
        --threads "${BACKEND_THREADS:-1}" >"$WORK/backend.out" 2>&1 &
    BACKEND_PID=$!
    PIDS+=("$BACKEND_PID")
    wait_for "$WORK/backend.out" "listening on" 2
    ARM_A=$(grep "listening on" "$WORK/backend.out" | sed -n 1p | awk '{print $3}')
    ARM_B=$(grep "listening on" "$WORK/backend.out" | sed -n 2p | awk '{print $3}')
}

# write_guide_route [ROUTES [MEMBERS]]: $WORK/apisix.json with the guide's 50/50 route:
# /chat/completions split between ARM_A (rewritten to /v1/...) and ARM_B (/v2/...).
# ROUTES (", {route}...") follow it in the routes array; MEMBERS (", "consumers": [...]")
# follow the array in the top-level object.
write_guide_route() {
    local routes=${1:-} members=${2:-}
    cat >"$WORK/apisix.json" <<JSON
{"routes": [{"id": "aimlapi-split", "uri": "/chat/completions",
  "upstream": {"type": "roundrobin", "nodes": {"$ARM_A": 1}, "pass_host": "node"},
  "plugins": {"traffic-split": {"rules": [
    {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"$ARM_A": 1}, "pass_host": "node"},
     "rewrite": {"uri": "/v1/chat/completions"}},
    {"weight": 50, "upstream": {"type": "roundrobin", "nodes": {"$ARM_B": 1}, "pass_host": "node"},
     "rewrite": {"uri": "/v2/chat/completions"}}]}}}$routes]$members}
JSON
}

# start_split [PREFIX...]: split-proxy serving $WORK/apisix.json with $WORKERS workers
# (1 unless set), pinned to CPUs with AFFINITY=1 (--cpu-affinity), run under PREFIX
# (taskset, valgrind) if given; sets SPLIT_PID, SPLIT_ADDR (proxy) and SPLIT_METRICS
# (metrics listener).
start_split() {
    local pin=()
    [ "${AFFINITY:-0}" = 1 ] && pin=(--cpu-affinity)
    "$@" "$SPLIT_PROXY" --standalone "$WORK/apisix.json" --workers "${WORKERS:-1}" "${pin[@]}" --grace 1s \
        --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
        --data-dir "$WORK/split-data" --log-level warn >"$WORK/split.log" 2>&1 &
    SPLIT_PID=$!
    PIDS+=("$SPLIT_PID")
    wait_for "$WORK/split.log" "config source:"
    SPLIT_ADDR=$(sed -n 's/.*proxy listening on //p' "$WORK/split.log" | head -1)
    # shellcheck disable=SC2034 # for the sourcing script (run.sh)
    SPLIT_METRICS=$(sed -n 's/.*metrics listening on //p' "$WORK/split.log" | head -1)
    [ -n "$SPLIT_ADDR" ] || die "split-proxy did not print its proxy address: $(cat "$WORK/split.log")"
}

# write_nginx_conf PORT NOFILE [DIRECTIVE...]: $WORK/nginx/nginx.conf, nginx's
# counterpart of the guide's route: $WORKERS workers (1 unless set), pinned to CPUs with
# AFFINITY=1 (worker_cpu_affinity auto), ARM_A and ARM_B at weight 1 with keep-alive
# upstream connections (up to 640 idle, as split keeps by default: keepalive_pool.size
# 320 per node; with 64, over 64 requests in flight made nginx close and reopen
# upstream connections), no access log; each DIRECTIVE (e.g. "master_process off;")
# goes at the top.
write_nginx_conf() {
    local port=$1 nofile=$2 d
    shift 2
    mkdir -p "$WORK/nginx"
    {
        for d in "$@"; do echo "$d"; done
        [ "${AFFINITY:-0}" = 1 ] && echo "worker_cpu_affinity auto;"
        cat <<EOF
worker_processes ${WORKERS:-1};
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $((nofile - 100)); }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    upstream arms {
        server $ARM_A weight=1;
        server $ARM_B weight=1;
        keepalive 640;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://arms;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    } >"$WORK/nginx/nginx.conf"
}

# start_nginx [PREFIX...]: nginx with the config write_nginx_conf wrote, run under PREFIX
# (taskset, valgrind) if given; sets NGINX_PID.
start_nginx() {
    "$@" nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        >"$WORK/nginx/stdout" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}

# write_haproxy_conf PORT MAXCONN NOFILE: $WORK/haproxy.cfg, haproxy's counterpart of
# the guide's route: one thread, ARM_A and ARM_B at weight 50 with reused server
# connections, answering on 127.0.0.1:PORT.
write_haproxy_conf() {
    cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $2
    ulimit-n $3
defaults
    mode http
    maxconn $2
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend bench
    bind 127.0.0.1:$1
    default_backend arms
backend arms
    balance roundrobin
    # Forward each SSE chunk at once: without it haproxy corks streamed chunks with
    # MSG_MORE until the next one (the haproxy counterpart of nginx's X-Accel-Buffering).
    option http-no-delay
    server a $ARM_A weight 50
    server b $ARM_B weight 50
EOF
}

# start_haproxy [PREFIX...]: haproxy with the config write_haproxy_conf wrote, run under
# PREFIX (taskset) if given; sets HAPROXY_PID.
start_haproxy() {
    "$@" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    PIDS+=("$HAPROXY_PID")
}

# proc_tree PID: the process and its children (nginx's worker), one PID a line.
proc_tree() { echo "$1"; pgrep -P "$1" 2>/dev/null || true; }

# proc_ticks PID: "UTIME STIME", the clock ticks of a process and its children.
proc_ticks() {
    local p u=0 s=0 a b
    for p in $(proc_tree "$1"); do
        read -r a b < <(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
        u=$((u + a))
        s=$((s + b))
    done
    echo "$u $s"
}

# write_post_lua: $WORK/post.lua, the wrk script sending the guide's request body.
write_post_lua() {
    cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
}
