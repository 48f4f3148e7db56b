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

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
IMAGES=${IMAGES:-100000}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
DURATION=${DURATION:-10s}
STRICT=${BENCH_STRICT:-0}

need_tools curl python3
install_missing "" wrk nginx
build_shubnet_and_seed
make_work shubnet-bench-ui

# --- the node and its federation -------------------------------------------------------------
DATA=$WORK/node
start_node "$DATA"
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
    stop_node
    say "seeding $n tags with seed_tags"
    "$SEED" "$DATA" "$n" bench/seed:v1 --per-name 1 --name-prefix img- >&2
    start_node "$DATA"
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
mkdir -p "$WORK/www"
cp "$WORK/image.html" "$WORK/www/page.html"
start_nginx 1024 page.html "default_type text/html;"
NGINX_URL=$NGINX_BASE/page.html

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

image_v=$(verdict "$image_p99" '<=' 20)
search_v=$(verdict "$search_p99" '<=' 20)
cold_v=$(verdict "$cold_p99" '<=' 20)
echo "images_in_registry: $count"
echo "image_page_p99_ms: $image_p99 (target <= 20) $image_v"
echo "search_page_p99_ms: $search_p99 (target <= 20) $search_v"
echo "search_cold_p99_ms: $cold_p99 (target <= 20) $cold_v"
echo "nginx_static_p99_ms: $nginx_p99 (info: baseline in the same run)"
echo "image_page_vs_nginx: $(ratio "$image_p99" "$nginx_p99" 1) (info)"
echo "search_page_vs_nginx: $(ratio "$search_p99" "$nginx_p99" 1) (info)"
if [[ $STRICT == 1 && ( $image_v == MISSED || $search_v == MISSED || $cold_v == MISSED ) ]]; then exit 1; fi
