# bench/lib.sh — the set-up the benchmark scripts share, sourced by each of them (never run on
# its own): the repository root as the working directory, tools and Debian packages, the
# release binaries, a scratch directory removed on exit with every process the script started,
# one node or one nginx on loopback, and the arithmetic of the report lines. It owns no
# measurement: what is timed, against which baseline, and what is printed stays in each script.
#
# Sourced as `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"` after `set -euo pipefail`.
# Variables it reads: CARGO_TARGET_DIR, SHUBNET_BIN, SEED_BIN, BENCH_DIR, WAIT_SECS.
# Variables it sets: ROOT, TARGET, BIN, SEED, WORK, NODE_PID, NODE_URL, NGINX, NGINX_PID,
# NGINX_PORT, NGINX_BASE, PIDS (every background process to stop on exit), CLEANUP_DIRS.

# shellcheck shell=bash disable=SC2034  # the variables it sets are for the sourcing script
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------------
# need_tools CMD... : stop unless each command is on PATH.
need_tools() {
    local t
    for t in "$@"; do command -v "$t" >/dev/null || die "$t is missing (apt-get install -y $t)"; done
}

# install_missing WHY PKG... : installs (Debian packages, as root) those of nginx and wrk that
# are missing; WHY ends the message that says so.
install_missing() {
    local why=$1 p need=()
    shift
    for p in "$@"; do
        case $p in
            nginx) command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx) ;;
            *) command -v "$p" >/dev/null || need+=("$p") ;;
        esac
    done
    if ((${#need[@]})); then
        say "installing ${need[*]} (Debian packages)$why"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

# --- binaries --------------------------------------------------------------------------------
# build_shubnet: BIN is SHUBNET_BIN, else the release binary, built first.
build_shubnet() {
    if [[ -n ${SHUBNET_BIN:-} ]]; then
        BIN=$SHUBNET_BIN
    else
        say "building the release binary"
        cargo build --release -p shubnet-node >&2
        BIN=$TARGET/release/shubnet
    fi
    [[ -x $BIN ]] || die "no binary at $BIN"
}

# build_shubnet_and_seed: BIN as above, and SEED the seed_tags example (SEED_BIN, else built
# with the release binary), for benchmarks that need a large registry.
build_shubnet_and_seed() {
    if [[ -z ${SHUBNET_BIN:-} || -z ${SEED_BIN:-} ]]; then
        say "building the release binary and the seed_tags example"
        cargo build --release -p shubnet-node --bins --examples >&2
    fi
    BIN=${SHUBNET_BIN:-$TARGET/release/shubnet}
    SEED=${SEED_BIN:-$TARGET/release/examples/seed_tags}
    [[ -x $BIN ]] || die "no binary at $BIN"
    [[ -x $SEED ]] || die "no seed_tags at $SEED"
}

# --- scratch space and processes, cleaned on exit --------------------------------------------
NODE_PID=""
NGINX_PID=""
PIDS=()
CLEANUP_DIRS=()

# make_work PREFIX: WORK is a new directory under BENCH_DIR (default /var/tmp), removed on exit
# after the node, nginx and everything in PIDS are stopped.
make_work() {
    WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/$1.XXXXXX")
    CLEANUP_DIRS+=("$WORK")
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in "$NODE_PID" "$NGINX_PID" "${PIDS[@]}"; do
        [[ -n $p ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    rm -rf "${CLEANUP_DIRS[@]}"
}

# wait_for CMD... : retries a check every 50 ms for up to WAIT_SECS (default 60) seconds.
wait_for() {
    local deadline=$((SECONDS + ${WAIT_SECS:-60}))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# --- one node --------------------------------------------------------------------------------
# start_node DATA_DIR [serve args...]: a node on loopback ports, logging to WORK/node.log; sets
# NODE_PID and NODE_URL once it has written its API URL.
start_node() {
    local data=$1
    shift
    rm -f "$data/api.url"
    "$BIN" serve --data-dir "$data" --http 127.0.0.1:0 --p2p /ip4/127.0.0.1/tcp/0 "$@" \
        >>"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    wait_for test -s "$data/api.url" || { cat "$WORK/node.log" >&2; die "node did not start"; }
    NODE_URL=$(tr -d '[:space:]' <"$data/api.url")
}

# stop_node: stops the node start_node started and waits for it to exit.
stop_node() {
    kill -TERM "$NODE_PID"
    wait "$NODE_PID" || true
    NODE_PID=""
}

# --- nginx, the baseline ---------------------------------------------------------------------
# start_nginx CONNECTIONS PROBE [http directives]: Debian's nginx serving WORK/www on a free
# loopback port (sendfile on, no access log, temp files in WORK), with the extra directives
# in its http block; sets NGINX_PID, NGINX_PORT and NGINX_BASE once PROBE (a path under
# WORK/www) answers.
start_nginx() {
    local conns=$1 probe=$2 extra=${3:-}
    mkdir -p "$WORK/www" "$WORK/nginx-tmp"
    NGINX_PORT=$(free_port)
    cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections $conns; }
http {
    sendfile on;
    access_log off;
    $extra
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
    }
}
EOF
    "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx-stderr.log" &
    NGINX_PID=$!
    NGINX_BASE=http://127.0.0.1:$NGINX_PORT
    wait_for curl -sf -o /dev/null -r 0-0 "$NGINX_BASE/$probe" ||
        { cat "$WORK"/nginx-*.log >&2; die "nginx did not start"; }
}

# speed URL SIZE: bytes/s of `curl -o /dev/null`, stopping unless exactly SIZE bytes came.
speed() {
    local out
    out=$(curl -sS --fail -o /dev/null -w '%{speed_download} %{size_download}' "$1")
    [[ ${out#* } == "$2" ]] || die "$1 gave ${out#* } bytes, want $2"
    echo "${out% *}"
}

# --- arithmetic for the report -----------------------------------------------------------------
now() { date +%s.%N; }
py() { python3 -c "$@"; }
free_port() { py "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
# ratio A B [DECIMALS]: A / B (B at least 0.001).
ratio() { py "import sys; print(f'{float(sys.argv[1]) / max(float(sys.argv[2]), 0.001):.${3:-2}f}')" "$1" "$2"; }
# median DECIMALS VALUE...
median() { py "import sys, statistics; print(f'{statistics.median(map(float, sys.argv[2:])):.$1f}')" "$@"; }
mibps() { py "print(f'{float(\"$1\") / 1048576:.0f}')"; }
# verdict VALUE OP TARGET -> ok | MISSED (OP is <= or >=)
verdict() {
    if py "import sys, operator as o; v, op, t = sys.argv[1:]; sys.exit(0 if {'<=': o.le, '>=': o.ge}[op](float(v), float(t)) else 1)" "$1" "$2" "$3"; then
        echo ok
    else
        echo MISSED
    fi
}
