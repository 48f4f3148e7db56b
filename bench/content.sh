#!/usr/bin/env bash
# bench/content.sh — content store and gateway speed, each against a baseline measured in the
# same run on the same machine, on one random file (1 GiB unless SIZE_MIB says otherwise).
#
# What it measures (each timing is run RUNS=3 times; the median is reported):
#   add_vs_cp_plus_sha256        wall time of `shubnet add FILE` into a fresh release-build node
#                                (chunking, hashing every leaf, whole-file sha256, HTTP upload,
#                                temp file, fsync, rename, index), divided by the time of
#                                `cp FILE COPY` plus the time of `openssl dgst -sha256 FILE`: the
#                                least work a store that copies and hashes must do.
#                                Target <= 1.5. Lower is better.
#   node_peak_rss_mib            the node's VmHWM (peak resident memory, /proc/PID/status) read
#                                right after the add; the largest of the runs. Import must be
#                                streaming, so this must not grow with the file.
#                                Target <= 100 MiB. Lower is better.
#   gateway_vs_nginx_throughput  `curl -o /dev/null` of http://NODE/ipfs/<cid>, divided by
#                                `curl -o /dev/null` of the same file served by nginx (Debian's,
#                                sendfile on, as Debian ships it) on 127.0.0.1; bytes per second
#                                as curl reports them, both warm in the page cache.
#                                Target >= 0.8. Higher is better.
# Extra lines marked "info" show the raw medians and a stricter baseline (cp followed by fsync,
# since the node fsyncs and plain cp does not).
#
# How to read the output: each result line is `name: value (target ...) ok|MISSED`. The numbers
# are ratios of two things measured seconds apart on this machine, so they compare across
# machines better than the raw times do; on a 2-core VM expect +-10% between runs.
#
# Usage: bash bench/content.sh            (as root: installs nginx with apt if it is missing)
# Env:   SIZE_MIB=1024 RUNS=3 BENCH_DIR=/var/tmp BENCH_STRICT=1 (exit 1 if a target is missed)
#        CARGO_TARGET_DIR as for cargo; SHUBNET_BIN to use an existing release binary.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
STRICT=${BENCH_STRICT:-0}
# shellcheck disable=SC2034 # wait_for in lib.sh reads it
WAIT_SECS=30

need_tools curl openssl python3
install_missing " for the baseline" nginx
build_shubnet
make_work shubnet-bench

elapsed() { py "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.4f}')" "$1" "$2"; }
maxof() { py "import sys; print(f'{max(map(float, sys.argv[1:])):.1f}')" "$@"; }

# --- the file --------------------------------------------------------------------------------
FILE=$WORK/image.bin
say "writing $SIZE_MIB MiB of random data"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$FILE"
sync
# Read it once so every contender starts with it in the page cache.
cat "$FILE" >/dev/null

# --- (a) add vs cp + sha256, (b) peak RSS ------------------------------------------------------
add_t=() cp_t=() cpsync_t=() sha_t=() hwm=()
CID=""
for i in $(seq "$RUNS"); do
    say "run $i/$RUNS: cp, openssl dgst, shubnet add"
    sync
    t0=$(now); cp "$FILE" "$WORK/copy"; t1=$(now)
    cp_t+=("$(elapsed "$t0" "$t1")")
    sync "$WORK/copy"; t2=$(now)
    cpsync_t+=("$(elapsed "$t0" "$t2")")
    rm -f "$WORK/copy"; sync

    t0=$(now); openssl dgst -sha256 "$FILE" >/dev/null; t1=$(now)
    sha_t+=("$(elapsed "$t0" "$t1")")

    rm -rf "$WORK/node"
    start_node "$WORK/node"
    sync
    t0=$(now)
    cid=$("$BIN" add "$FILE" --node "$NODE_URL" --data-dir "$WORK/node")
    t1=$(now)
    add_t+=("$(elapsed "$t0" "$t1")")
    [[ -z $CID || $CID == "$cid" ]] || die "add gave $cid, earlier $CID"
    CID=$cid
    kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$NODE_PID/status")
    hwm+=("$(python3 -c "print(f'{$kb / 1024:.1f}')")")
    if ((i < RUNS)); then stop_node; fi
done
# The last node stays up, holding the file, for (c).

add_m=$(median 4 "${add_t[@]}")
cp_m=$(median 4 "${cp_t[@]}")
cpsync_m=$(median 4 "${cpsync_t[@]}")
sha_m=$(median 4 "${sha_t[@]}")
base=$(python3 -c "print($cp_m + $sha_m)")
base_sync=$(python3 -c "print($cpsync_m + $sha_m)")
r_add=$(ratio "$add_m" "$base")
rss_max=$(maxof "${hwm[@]}")

# --- (c) gateway vs nginx ----------------------------------------------------------------------
mkdir -p "$WORK/www"
ln "$FILE" "$WORK/www/image.bin" 2>/dev/null || cp "$FILE" "$WORK/www/image.bin"
start_nginx 256 image.bin "tcp_nopush on; default_type application/octet-stream;"
NGINX_URL=$NGINX_BASE/image.bin
NODE_FILE_URL=$NODE_URL/ipfs/$CID

SIZE=$((SIZE_MIB * 1024 * 1024))
# The node hashes every leaf the first time its process reads it (see node/src/store/read.rs),
# so the first download is reported separately as "cold"; the timed runs are warm for both.
node_cold=$(speed "$NODE_FILE_URL" "$SIZE")
speed "$NGINX_URL" "$SIZE" >/dev/null # warm-up, untimed
node_s=() nginx_s=()
for i in $(seq "$RUNS"); do
    say "run $i/$RUNS: curl from the node, curl from nginx"
    node_s+=("$(speed "$NODE_FILE_URL" "$SIZE")")
    nginx_s+=("$(speed "$NGINX_URL" "$SIZE")")
done
node_m=$(median 4 "${node_s[@]}")
nginx_m=$(median 4 "${nginx_s[@]}")
r_get=$(ratio "$node_m" "$nginx_m")

# --- report ------------------------------------------------------------------------------------
echo "bench/content.sh: ${SIZE_MIB} MiB random file, $RUNS runs, medians; binary $BIN"
echo "info: add ${add_m}s; cp ${cp_m}s; cp+fsync ${cpsync_m}s; openssl dgst -sha256 ${sha_m}s"
echo "info: add_vs_cp_fsync_plus_sha256: $(ratio "$add_m" "$base_sync")"
echo "info: node VmHWM per run (MiB): ${hwm[*]}"
echo "info: GET node $(mibps "$node_m") MiB/s; nginx $(mibps "$nginx_m") MiB/s"
echo "info: cold GET (node hashes every leaf on first read): $(mibps "$node_cold") MiB/s, vs nginx $(ratio "$node_cold" "$nginx_m")"
v_add=$(verdict "$r_add" '<=' 1.5)
v_rss=$(verdict "$rss_max" '<=' 100)
v_get=$(verdict "$r_get" '>=' 0.8)
echo "add_vs_cp_plus_sha256: $r_add (target <= 1.5) $v_add"
echo "node_peak_rss_mib: $rss_max (target <= 100) $v_rss"
echo "gateway_vs_nginx_throughput: $r_get (target >= 0.8) $v_get"
if [[ $STRICT == 1 && "$v_add $v_rss $v_get" == *MISSED* ]]; then exit 1; fi
