#!/usr/bin/env bash
# bench/transfer.sh — /shubnet/fetch/1 speed between real nodes on loopback, against a baseline
# measured in the same run on the same machine. Not part of the test run.
#
# What it measures:
#   fetch_vs_nginx_throughput  `shubnet fetch CID` of a SIZE_MIB (default 1024) image from one
#                              member to another, both nodes' data dirs on tmpfs (SHM_DIR,
#                              default /dev/shm), wall time including the final fsync, rename
#                              and index, as bytes/s, divided by `curl -o /dev/null` of the same
#                              file from nginx on 127.0.0.1 (sendfile), warm in the page cache:
#                              like for like, no disk on either side. Target >= 0.5.
#   cpu_s_per_gib              CPU seconds (user+sys, /proc/PID/stat) that the two nodes spent
#                              during that fetch, per GiB moved. Lower is better (info); less
#                              sensitive than wall time to other load on the machine.
#   info lines                 the same fetch with the data dirs on disk (its ratio, its CPU),
#                              the disk's durable write rate (`dd conv=fdatasync` of the same
#                              size, same run; a fetch ends with its copy durable, so that rate
#                              bounds the disk run), curl writing to a file on the same tmpfs,
#                              and each fetch's own phases from its `fetch report`.
#   swarm_median_vs_ideal      one seeder (--upload-limit 20000000) and 8 members (each
#                              --download-limit 20000000) all fetch a SWARM_MIB (default 256;
#                              0 skips it) image at once; the median finish time divided by
#                              size / 20 MB/s. Target <= 1.5 (nodes must serve each other).
#
# Usage: bash bench/transfer.sh   Env: SIZE_MIB SWARM_MIB BENCH_DIR SHM_DIR SHUBNET_BIN CARGO_TARGET_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE_MIB=${SIZE_MIB:-1024}
SWARM_MIB=${SWARM_MIB:-256}
LIMIT=20000000

need_tools curl python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx is missing (apt-get install -y nginx)"
build_shubnet
make_work shubnet-transfer

cpu_ticks() { # PID -> utime+stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# start NAME [serve args...] -> sets URL_<NAME>, PID_<NAME>, ADDR_<NAME>
start() {
    local name=$1; shift
    local data=$WORK/$name
    mkdir -p "$data"
    "$BIN" serve --data-dir "$data" --http 127.0.0.1:0 --p2p /ip4/127.0.0.1/tcp/0 "$@" \
        >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_for test -s "$data/api.url" || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
    wait_for grep -q /p2p/ "$data/p2p.addrs" || die "$name has no p2p address"
    printf -v "PID_$name" '%s' "$pid"
    printf -v "ADDR_$name" '%s' "$(grep -m1 '^/ip4/127.0.0.1/tcp/' "$data/p2p.addrs")"
}
stop() { # NAME
    local v="PID_$1"
    kill "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
}
cli() { # NAME args...
    local name=$1; shift
    SHUBNET_DATA_DIR=$WORK/$name SHUBNET_NODE=$(tr -d '[:space:]' <"$WORK/$name/api.url") "$BIN" "$@"
}

# --- a federation: seed founds it, the others are admitted --------------------------------
NODES=(seed n1 n2 n3 n4 n5 n6 n7 n8)
for n in "${NODES[@]}"; do start "$n"; done
FED=$(cli seed federation create --name Bench --institution seed)
for n in "${NODES[@]:1}"; do
    line=$(cli "$n" federation request --institution "$n")
    cli seed federation admit "$line" >/dev/null
done
SEED_URL=$(tr -d '[:space:]' <"$WORK/seed/api.url")
for n in "${NODES[@]:1}"; do cli "$n" federation join "$FED" --from "$SEED_URL" >/dev/null; done
for n in "${NODES[@]}"; do stop "$n"; done

# --- (a) one-to-one vs nginx -----------------------------------------------------------------
# Run twice: with both nodes' data dirs on tmpfs (like for like with curl -o /dev/null: no disk
# in either path) and on the disk (a fetch ends with its copy durable, so the disk's fdatasync
# rate bounds that run).
say "writing a ${SIZE_MIB} MiB image"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom >"$WORK/image.bin"
SHM=$(mktemp -d "${SHM_DIR:-/dev/shm}/shubnet-transfer.XXXXXX")
CLEANUP_DIRS+=("$SHM")
# The tmpfs nodes are copies of the disk ones, taken before the image is added.
for n in seed n1; do cp -a "$WORK/$n" "$SHM/$n"; done
HZ=$(getconf CLK_TCK)

# one_to_one BASE -> sets FETCH_BPS CPU_PER_GIB TRANSFER_MS STORE_MS
one_to_one() {
    local base=$1 keep=$WORK
    WORK=$base
    start seed
    local cid
    cid=$(cli seed add "$keep/image.bin")
    start n1 --bootstrap "$ADDR_seed"
    sleep 1
    local c0 c1 t0 t1
    c0=$(( $(cpu_ticks "$PID_seed") + $(cpu_ticks "$PID_n1") ))
    t0=$(now)
    cli n1 fetch "$cid" >/dev/null
    t1=$(now)
    c1=$(( $(cpu_ticks "$PID_seed") + $(cpu_ticks "$PID_n1") ))
    FETCH_BPS=$(py "print($SIZE_MIB * 1048576 / ($t1 - $t0))")
    CPU_PER_GIB=$(py "print(f'{($c1 - $c0) / $HZ / ($SIZE_MIB / 1024):.2f}')")
    local report
    report=$(grep -h "fetch report: " "$base/n1.log" | tail -1 | sed 's/.*fetch report: //')
    read -r TRANSFER_MS STORE_MS < <(printf '%s' "$report" | py "import json,sys; r=json.JSONDecoder().raw_decode(sys.stdin.read())[0]; print(r['transfer_ms'], r['store_ms'])")
    stop n1
    stop seed
    WORK=$keep
}
one_to_one "$WORK"
disk_bps=$FETCH_BPS disk_cpu=$CPU_PER_GIB disk_transfer_ms=$TRANSFER_MS disk_store_ms=$STORE_MS
one_to_one "$SHM"
shm_bps=$FETCH_BPS shm_cpu=$CPU_PER_GIB shm_transfer_ms=$TRANSFER_MS shm_store_ms=$STORE_MS
rm -rf "${SHM:?}/seed" "${SHM:?}/n1"

d0=$(now)
dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$SIZE_MIB" conv=fdatasync status=none
d1=$(now)
rm -f "$WORK/dd.bin"
dd_bps=$(py "print(int($SIZE_MIB * 1048576 / ($d1 - $d0)))")

mkdir -p "$WORK/www"
ln "$WORK/image.bin" "$WORK/www/image.bin"
start_nginx 256 image.bin "tcp_nopush on;"
NGINX_URL=$NGINX_BASE/image.bin
curl -s -o /dev/null "$NGINX_URL"
nginx_bps=$(curl -sS -o /dev/null -w '%{speed_download}' "$NGINX_URL")
nginx_shm_bps=$(curl -sS -o "$SHM/curl.bin" -w '%{speed_download}' "$NGINX_URL")
rm -f "$SHM/curl.bin"

ratio=$(py "print(f'{$shm_bps / $nginx_bps:.2f}')")
disk_ratio=$(py "print(f'{$disk_bps / $nginx_bps:.2f}')")
leaf_rate() { py "print(int($SIZE_MIB * 1048576 * 1000 / max($1, 1)))"; }
echo "info nginx_bytes_per_s: $(py "print(int(float('$nginx_bps')))") (curl -o /dev/null) $(py "print(int(float('$nginx_shm_bps')))") (curl -o a file on tmpfs)"
echo "info fetch_bytes_per_s: $(py "print(int($shm_bps))") (data dirs on tmpfs) $(py "print(int($disk_bps))") (on disk)"
echo "fetch_vs_nginx_throughput: $ratio (target >= 0.5; both nodes' data dirs on tmpfs, curl -o /dev/null)"
echo "info fetch_vs_nginx_throughput_disk: $disk_ratio (data dirs on disk; at most disk_fsync_bytes_per_s / nginx = $(py "print(f'{$dd_bps / float($nginx_bps):.2f}')"))"
echo "info fetch_phases_tmpfs: leaves moved and verified in ${shm_transfer_ms} ms ($(leaf_rate "$shm_transfer_ms") B/s), stored (fsync, what the running sha256 had not covered, index) in ${shm_store_ms} ms"
echo "info fetch_phases_disk: leaves moved and verified in ${disk_transfer_ms} ms ($(leaf_rate "$disk_transfer_ms") B/s), stored (fsync, what the running sha256 had not covered, index) in ${disk_store_ms} ms"
echo "info disk_fsync_bytes_per_s: $dd_bps (dd conv=fdatasync of ${SIZE_MIB} MiB; bounds any durable fetch on disk)"
echo "cpu_s_per_gib: $shm_cpu (seeder + fetcher, tmpfs run, info)"
echo "info cpu_s_per_gib_disk: $disk_cpu (seeder + fetcher, disk run)"

# --- (b) swarm -------------------------------------------------------------------------------
if (( SWARM_MIB == 0 )); then exit 0; fi
head -c $((SWARM_MIB * 1024 * 1024)) /dev/urandom >"$WORK/swarm.bin"
start seed --upload-limit $LIMIT
SCID=$(cli seed add "$WORK/swarm.bin")
# Each member dials the seed and the members started before it, so the swarm is a mesh.
boots=(--bootstrap "$ADDR_seed")
for n in "${NODES[@]:1}"; do
    start "$n" --download-limit $LIMIT "${boots[@]}"
    v="ADDR_$n"; boots+=(--bootstrap "${!v}")
done
sleep 2
say "8 members fetch a ${SWARM_MIB} MiB image at once"
t0=$(now)
FPIDS=()
for n in "${NODES[@]:1}"; do
    ( cli "$n" fetch "$SCID" >/dev/null && echo "$(now)" >"$WORK/$n.done" ) &
    FPIDS+=($!)
done
for p in "${FPIDS[@]}"; do wait "$p" || die "a swarm fetch failed"; done
times=()
for n in "${NODES[@]:1}"; do times+=("$(py "print($(cat "$WORK/$n.done") - $t0)")"); done
joined=$(IFS=,; echo "${times[*]}")
median=$(py "import statistics; print(f'{statistics.median([$joined]):.2f}')")
ideal=$(py "print(f'{$SWARM_MIB * 1048576 / $LIMIT:.2f}')")

swarm=$(py "print(f'{$median / $ideal:.2f}')")
echo "info swarm_finish_s: ${times[*]} ideal: $ideal"
echo "swarm_median_vs_ideal: $swarm (target <= 1.5)"
