#!/usr/bin/env bash
# bench/gateway.sh — the client-facing gateway (issue 5) against nginx, measured in one run on
# one release-build node whose registry holds TAGS (100 000) signed tags.
#
# What it measures:
#   manifest_rps_vs_nginx     `wrk -c 64` requests/s of the shub manifest endpoint
#                             GET /api/container/<c>/<n>:<t> (a tag among the 100 000), divided by
#                             wrk's requests/s of nginx serving that same JSON as a static file
#                             (same size, same run). p99 latency of both is printed.
#                             Target >= 0.3. Higher is better.
#   download_vs_nginx         curl -o /dev/null throughput of a SIZE_MIB (1 GiB) image fetched the
#                             way `apptainer pull shub://` does (GET /api/container/... -> `image`
#                             URL), divided by curl of the same file from nginx (sendfile), both
#                             warm, median of RUNS. Target >= 0.8. Higher is better.
#   concurrent_pulls_ok       PULLS (200) simultaneous curl downloads of one PULL_MIB (100 MB)
#                             image through its `image` URL; each must return 200 and the exact
#                             size. Target: all of them.
#   pull_rss_growth_mib       the node's resident memory during those pulls (VmRSS sampled every
#                             100 ms) minus its RSS just before them, printed beside the image
#                             size and per stream: streaming keeps each stream's buffers
#                             constant, so growth stays far below PULLS x image size.
#                             Target <= PULLS x 4 MiB (a few leaves in flight per stream).
#   pull_rss_flat_in_image_size  the same PULLS-pull round first on an image a fifth the size:
#                             the 100 MB round may grow RSS at most 1.5 x (or 64 MiB) more than
#                             the 20 MB one. Memory follows streams, not image size.
#
# How the 100 000 tags get there, honestly and fast: one real `shubnet push` of a small SIF-less
# image (lab-a/seed:v1), then, with the node stopped, the `seed_tags` example
# (node/examples/seed_tags.rs) signs TAGS manifests for that content with the node's own
# publisher key and imports them through the registry's batch acceptance (the path sync uses:
# signature, roster, namespace and succession checks, log/ with fsync, index). Reuse it for any
# benchmark that needs a large registry (listings, search, the web UI):
#     cargo build --release -p shubnet-node --examples
#     shubnet push small.sif lab-a/seed:v1            # with the node running, in a federation
#     # stop the node
#     $CARGO_TARGET_DIR/release/examples/seed_tags DATA_DIR 100000 lab-a/seed:v1 \
#         [--per-name 10] [--name-prefix img]         # lab-a/img0:v0 ... lab-a/img9999:v9
#
# Usage: bash bench/gateway.sh     (as root: installs wrk and nginx with apt if missing)
# Env:   TAGS=100000 SIZE_MIB=1024 PULL_MIB=100 PULLS=200 RUNS=3 WRK_SECS=10 CONNS=64
#        BENCH_DIR=/var/tmp BENCH_STRICT=1 (exit 1 if a target is missed)
#        SHUBNET_BIN / SEED_BIN to use existing release binaries; CARGO_TARGET_DIR as for cargo.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TAGS=${TAGS:-100000}
SIZE_MIB=${SIZE_MIB:-1024}
PULL_MIB=${PULL_MIB:-100}
PULLS=${PULLS:-200}
RUNS=${RUNS:-3}
WRK_SECS=${WRK_SECS:-10}
CONNS=${CONNS:-64}
STRICT=${BENCH_STRICT:-0}

need_tools curl python3
install_missing " for the baseline" wrk nginx
build_shubnet_and_seed
make_work shubnet-gwbench

DATA=$WORK/node
cli() { "$BIN" "$@" --node "$NODE_URL" --data-dir "$DATA"; }

# --- a node with the images and TAGS tags ---------------------------------------------------
start_node "$DATA" --log warn
cli federation create --name Bench --institution lab-a >/dev/null
say "writing the images: ${SIZE_MIB} MiB, ${PULL_MIB} MB, and a 1 MiB seed"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/big.bin"
head -c "$((PULL_MIB * 1000 * 1000))" /dev/urandom >"$WORK/pull.bin"
SMALL_SIZE=$((PULL_MIB * 1000 * 1000 / 5))
head -c "$SMALL_SIZE" /dev/urandom >"$WORK/small.bin"
head -c 1048576 /dev/urandom >"$WORK/seed.bin"
cli push "$WORK/big.bin" lab-a/big:v1 >/dev/null
cli push "$WORK/pull.bin" lab-a/pull:v1 >/dev/null
cli push "$WORK/small.bin" lab-a/small:v1 >/dev/null
cli push "$WORK/seed.bin" lab-a/seed:v1 >/dev/null
stop_node
say "seeding $TAGS signed tags"
seeded=$("$SEED" "$DATA" "$TAGS" lab-a/seed:v1)
say "$seeded"
start_node "$DATA" --log warn
LAST=$((TAGS - 1))
PROBE="lab-a/img$((LAST / 10)):v$((LAST % 10))"
MID="lab-a/img$((TAGS / 20)):v$(((TAGS / 2) % 10))"
curl -sf -o /dev/null "$NODE_URL/api/container/$PROBE" || die "the last seeded tag $PROBE does not resolve"
heads=$(cli tags --json | python3 -c "import json, sys; print(len(json.load(sys.stdin)))")
say "the node lists $heads tags"
((heads >= TAGS)) || die "only $heads tags, want $TAGS"

# --- nginx, serving the baselines ---------------------------------------------------------
mkdir -p "$WORK/www"
MANIFEST_URL=$NODE_URL/api/container/$MID
curl -sf "$MANIFEST_URL" >"$WORK/www/manifest.json"
ln "$WORK/big.bin" "$WORK/www/big.bin"
start_nginx 1024 manifest.json "tcp_nopush on; default_type application/octet-stream; types { application/json json; }"
node_len=$(curl -sf "$MANIFEST_URL" | wc -c)
nginx_len=$(curl -sf "$NGINX_BASE/manifest.json" | wc -c)
[[ $node_len == "$nginx_len" ]] || die "manifest sizes differ: node $node_len, nginx $nginx_len"

# --- (a) the manifest endpoint under wrk ----------------------------------------------------
wrk_run() { # URL -> "requests/s p99_ms"
    wrk -t2 -c"$CONNS" -d"${WRK_SECS}s" --latency "$1" >"$WORK/wrk.out" 2>&1
    python3 - "$WORK/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if errs:
    sys.exit(f"wrk saw {errs.group(1)} error responses:\n{t}")
print(f"{rps:.0f} {p99:.2f}")
PY
}
say "wrk: ${CONNS} connections, ${WRK_SECS}s each, manifest of $MID (${node_len} bytes)"
wrk_run "$MANIFEST_URL" >/dev/null # warm-up
read -r node_rps node_p99 < <(wrk_run "$MANIFEST_URL")
read -r nginx_rps nginx_p99 < <(wrk_run "$NGINX_BASE/manifest.json")
r_rps=$(ratio "$node_rps" "$nginx_rps")

# --- (b) the 1 GiB download through /api/container -> image ---------------------------------
image_url() { curl -sf "$NODE_URL/api/container/$1" | python3 -c "import json, sys; print(json.load(sys.stdin)['image'])"; }
BIG_URL=$(image_url lab-a/big:v1)
BIG_SIZE=$((SIZE_MIB * 1024 * 1024))
speed "$BIG_URL" "$BIG_SIZE" >/dev/null          # first read hashes every leaf; untimed
speed "$NGINX_BASE/big.bin" "$BIG_SIZE" >/dev/null # warm-up
node_s=() nginx_s=()
for i in $(seq "$RUNS"); do
    say "run $i/$RUNS: 1 GiB from the node's image URL, then from nginx"
    node_s+=("$(speed "$BIG_URL" "$BIG_SIZE")")
    nginx_s+=("$(speed "$NGINX_BASE/big.bin" "$BIG_SIZE")")
done
node_m=$(median 1 "${node_s[@]}")
nginx_m=$(median 1 "${nginx_s[@]}")
r_get=$(ratio "$node_m" "$nginx_m")

# --- (c) concurrent pulls of one image, memory sampled ---------------------------------------
# pull_round REF SIZE: PULLS simultaneous curl downloads of REF's image URL while VmRSS is sampled;
# sets ok (exact 200s), growth (peak sampled RSS minus RSS before, MiB), rss_before (KiB),
# rss_peak (MiB), pulls_s and agg (MiB/s together).
pull_round() {
    local url size t0 t1 pids=() p i sampler
    url=$(image_url "$1")
    size=$2
    speed "$url" "$size" >/dev/null # first read hashes every leaf; untimed
    rm -rf "$WORK/pulls" "$WORK/pulls.done"
    mkdir -p "$WORK/pulls"
    rss_before=$(awk '/^VmRSS:/ {print $2}' "/proc/$NODE_PID/status")
    echo 0 >"$WORK/rss.max"
    (
        max=0
        while kill -0 "$NODE_PID" 2>/dev/null && [[ ! -e $WORK/pulls.done ]]; do
            kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$NODE_PID/status" 2>/dev/null || echo 0)
            ((kb > max)) && max=$kb && echo "$max" >"$WORK/rss.max"
            sleep 0.1
        done
    ) &
    sampler=$!
    say "$PULLS concurrent pulls of $1 ($size bytes)"
    t0=$(date +%s.%N)
    for i in $(seq "$PULLS"); do
        curl -sS -o /dev/null -w '%{http_code} %{size_download}\n' "$url" >"$WORK/pulls/$i" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    t1=$(date +%s.%N)
    touch "$WORK/pulls.done"
    wait "$sampler" 2>/dev/null || true
    ok=$(cat "$WORK"/pulls/* | grep -c "^200 $size$" || true)
    rss_peak=$(python3 -c "print(f'{max(int(open(\"$WORK/rss.max\").read()), 0) / 1024:.1f}')")
    growth=$(python3 -c "print(f'{float(\"$rss_peak\") - $rss_before / 1024:.1f}')")
    pulls_s=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
    agg=$(python3 -c "print(f'{$PULLS * $size / ($t1 - $t0) / 1048576:.0f}')")
}
# The same round on an image a fifth the size first: if the node buffered images, its memory
# would grow with the image; streaming keeps it the same.
pull_round lab-a/small:v1 "$SMALL_SIZE"
small_ok=$ok small_growth=$growth small_s=$pulls_s
PULL_SIZE=$((PULL_MIB * 1000 * 1000))
pull_round lab-a/pull:v1 "$PULL_SIZE"
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$NODE_PID/status")

# --- report ----------------------------------------------------------------------------------
echo "bench/gateway.sh: $heads tags in the registry; binary $BIN"
echo "info: $seeded"
echo "info: manifest ${node_len} B: node $node_rps req/s, p99 ${node_p99} ms; nginx $nginx_rps req/s, p99 ${nginx_p99} ms"
echo "info: 1 GiB GET via image URL: node $(mibps "$node_m") MiB/s; nginx $(mibps "$nginx_m") MiB/s (medians of $RUNS)"
echo "info: $PULLS pulls of ${PULL_MIB} MB in ${pulls_s}s (${agg} MiB/s together); node RSS before $((rss_before / 1024)) MiB, peak sampled ${rss_peak} MiB, VmHWM $((hwm / 1024)) MiB (process lifetime)"
echo "info: $PULLS pulls of a $((SMALL_SIZE / 1000000)) MB image in ${small_s}s: $small_ok exact, RSS growth ${small_growth} MiB"
v_rps=$(verdict "$r_rps" '>=' 0.3)
v_get=$(verdict "$r_get" '>=' 0.8)
v_ok=$(verdict "$((ok + small_ok))" '>=' "$((2 * PULLS))")
# Flat: five times the image, at most 1.5 times the growth (or 64 MiB more: sampling noise).
flat_limit=$(python3 -c "print(f'{max(1.5 * float(\"$small_growth\"), float(\"$small_growth\") + 64):.1f}')")
v_flat=$(verdict "$growth" '<=' "$flat_limit")
per_pull=$(python3 -c "print(f'{float(\"$growth\") / $PULLS:.2f}')")
v_rss=$(verdict "$growth" '<=' "$((PULLS * 4))")
echo "manifest_rps_vs_nginx: $r_rps (p99 node ${node_p99} ms, nginx ${nginx_p99} ms) (target >= 0.3) $v_rps"
echo "download_vs_nginx: $r_get (target >= 0.8) $v_get"
echo "concurrent_pulls_ok: $((ok + small_ok))/$((2 * PULLS)) (target all) $v_ok"
echo "pull_rss_flat_in_image_size: ${growth} MiB for ${PULL_MIB} MB vs ${small_growth} MiB for $((SMALL_SIZE / 1000000)) MB (target <= $flat_limit) $v_flat"
echo "pull_rss_growth_mib: $growth (${per_pull} per stream) for a ${PULL_MIB} MB image x $PULLS pulls (target <= $((PULLS * 4))) $v_rss"
if [[ $STRICT == 1 && "$v_rps$v_get$v_ok$v_rss$v_flat" == *MISSED* ]]; then
    exit 1
fi
