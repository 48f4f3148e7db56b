#!/usr/bin/env bash
# bench/ui.sh — p99 latency of the web UI's image page and search page with many images in the
# registry (100 000 by default), next to a static file from nginx measured in the same run.
#
# What it measures (wrk --latency, THREADS threads, CONNS connections, DURATION each):
#   image_page_p99_ms     GET /ui/images/bench/img-N/v1 (one image page: decodes its manifest,
#                         reads its usage counts). Target <= 20 ms.
#   search_page_p99_ms    GET /ui/search?q=img, a word in every reference: the worst case
#                         for the page (100 000 matches counted, one page rendered). The same
#                         query repeats, so after the first request its matches come from the
#                         index's per-term cache. Target <= 20 ms.
#   search_cold_p99_ms    GET /ui/search?q=img-N with N random in 0..9999 on every request:
#                         10 000 distinct terms, so nearly every request misses the term cache
#                         and scans all references. Target <= 20 ms.
#   nginx_static_p99_ms   GET of a static HTML file of about the same size from nginx (Debian's),
#                         the baseline on this machine at this moment.
#   *_vs_nginx            each page's p99 divided by nginx's (info: how far from a static file).
#
# Output lines: `name: value (target ...) ok|MISSED`, then info lines.
#
# Usage: bash bench/ui.sh       (as root: installs nginx and wrk with apt if missing)
# Env:   IMAGES=100000 THREADS=2 CONNS=16 DURATION=10s BENCH_DIR=/var/tmp BENCH_STRICT=1
#        CARGO_TARGET_DIR as for cargo; SHUBNET_BIN / SEED_BIN to use existing release binaries.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
IMAGES=${IMAGES:-100000}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10s}
STRICT=${BENCH_STRICT:-0}

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# --- tools ---------------------------------------------------------------------------------
for t in curl python3; do command -v "$t" >/dev/null || die "$t is missing (apt-get install -y $t)"; done
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
if ((${#need[@]})); then
    say "installing ${need[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -z ${SHUBNET_BIN:-} || -z ${SEED_BIN:-} ]]; then
    say "building the release binary and the seed_tags example"
    cargo build --release -p shubnet-node --bins --examples >&2
fi
BIN=${SHUBNET_BIN:-$TARGET/release/shubnet}
SEED=${SEED_BIN:-$TARGET/release/examples/seed_tags}
[[ -x $SEED ]] || die "no seed_tags at $SEED"
[[ -x $BIN ]] || die "no binary at $BIN"

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/shubnet-bench-ui.XXXXXX")
NODE_PID=""
NGINX_PID=""
cleanup() {
    [[ -n $NODE_PID ]] && kill "$NODE_PID" 2>/dev/null && wait "$NODE_PID" 2>/dev/null
    [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
wait_for() {
    local deadline=$((SECONDS + 60))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
verdict() {
    if python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= float(sys.argv[2]) else 1)" "$1" "$2"; then
        echo ok
    else
        echo MISSED
    fi
}

# --- the node and its federation -------------------------------------------------------------
DATA=$WORK/node
start_node() {
    rm -f "$DATA/api.url"
    "$BIN" serve --data-dir "$DATA" --http 127.0.0.1:0 --p2p /ip4/127.0.0.1/tcp/0 >>"$WORK/node.log" 2>&1 &
    NODE_PID=$!
    wait_for test -s "$DATA/api.url" || { cat "$WORK/node.log" >&2; die "node did not start"; }
    NODE_URL=$(tr -d '[:space:]' <"$DATA/api.url")
}
start_node
export SHUBNET_NODE=$NODE_URL SHUBNET_DATA_DIR=$DATA
"$BIN" federation create --name "Bench" --institution bench --namespace bench >/dev/null

# populate_images N: puts N signed images bench/img-0:v0 .. bench/img-(N-1):v0 into the node.
# One real push (content, SIF-less metadata, manifest), then, with the node stopped, the
# seed_tags example signs N manifests for that content with the node's publisher key and
# imports them through the registry's batch acceptance (signature, roster, namespace and
# succession checks; log/ fsynced; index) — see node/examples/seed_tags.rs.
populate_images() {
    local n=$1
    printf 'bench image\n' >"$WORK/seed.bin"
    "$BIN" push "$WORK/seed.bin" bench/seed:v1 >/dev/null
    kill "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null || true
    say "seeding $n tags with seed_tags"
    "$SEED" "$DATA" "$n" bench/seed:v1 --per-name 1 --name-prefix img- >&2
    start_node
    export SHUBNET_NODE=$NODE_URL
}

have=$(curl -sf "$NODE_URL/ui/collections/bench" | grep -o '[0-9][0-9]* images' | head -1 | cut -d' ' -f1 || true)
populate_images "$IMAGES"
count=$(curl -sf "$NODE_URL/ui/collections/bench" | grep -o '[0-9][0-9]* images' | head -1 | cut -d' ' -f1)
[[ $count == "$((IMAGES + 1))" ]] || die "the registry lists ${count:-0} images, expected $IMAGES (had ${have:-0})"
say "the registry holds $count images"

MID=$((IMAGES / 2))
IMAGE_URL=$NODE_URL/ui/images/bench/img-$MID/v0
# A word in every reference: the search walks all of them and pages the result.
SEARCH_URL="$NODE_URL/ui/search?q=img"
curl -sf -o "$WORK/image.html" "$IMAGE_URL" || die "no image page at $IMAGE_URL"
curl -sf -o /dev/null "$SEARCH_URL" || die "no search page"

# --- nginx with a static page of the same size -----------------------------------------------
mkdir -p "$WORK/www" "$WORK/nginx-tmp"
cp "$WORK/image.html" "$WORK/www/page.html"
NGINX_PORT=$(free_port)
cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    sendfile on;
    access_log off;
    default_type text/html;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; }
}
EOF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx-stderr.log" &
NGINX_PID=$!
NGINX_URL=http://127.0.0.1:$NGINX_PORT/page.html
wait_for curl -sf -o /dev/null "$NGINX_URL" || { cat "$WORK"/nginx-*.log >&2; die "nginx did not start"; }

cat >"$WORK/cold.lua" <<'EOF'
request = function()
  return wrk.format("GET", "/ui/search?q=img-" .. math.random(0, 9999))
end
EOF

# p99 URL [wrk args] -> milliseconds, from wrk's latency distribution.
p99() {
    local out
    out=$(wrk --latency -t"$THREADS" -c"$CONNS" -d"$DURATION" "${@:2}" "$1")
    if grep -q 'Non-2xx' <<<"$out"; then die "$1 answered errors under load:\n$out"; fi
    python3 -c '
import re, sys
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", sys.stdin.read(), re.M)
if not m: sys.exit("no 99% line in the wrk output")
scale = dict(us=0.001, ms=1.0, s=1000.0)[m.group(2)]
print("%.2f" % (float(m.group(1)) * scale))' <<<"$out"
}

say "wrk: nginx, image page, search page ($THREADS threads, $CONNS connections, $DURATION each)"
nginx_p99=$(p99 "$NGINX_URL")
image_p99=$(p99 "$IMAGE_URL")
search_p99=$(p99 "$SEARCH_URL")
cold_p99=$(p99 "$NODE_URL/ui/search" -s "$WORK/cold.lua")
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / max(float(sys.argv[2]), 0.001):.1f}')" "$1" "$2"; }

image_v=$(verdict "$image_p99" 20)
search_v=$(verdict "$search_p99" 20)
cold_v=$(verdict "$cold_p99" 20)
echo "images_in_registry: $count"
echo "image_page_p99_ms: $image_p99 (target <= 20) $image_v"
echo "search_page_p99_ms: $search_p99 (target <= 20) $search_v"
echo "search_cold_p99_ms: $cold_p99 (target <= 20) $cold_v"
echo "nginx_static_p99_ms: $nginx_p99 (info: baseline in the same run)"
echo "image_page_vs_nginx: $(ratio "$image_p99" "$nginx_p99") (info)"
echo "search_page_vs_nginx: $(ratio "$search_p99" "$nginx_p99") (info)"
if [[ $STRICT == 1 && ( $image_v == MISSED || $search_v == MISSED || $cold_v == MISSED ) ]]; then exit 1; fi
