#!/usr/bin/env bash
# bench/wan.sh — /shubnet/fetch/1 between two members over an emulated long, fat link, against
# the same fetch with no added delay and against scp through the same link, all measured in
# this run. Not part of the test run.
#
# The link is `shubnet-delay-proxy` (tests/src/delay.rs): a TCP proxy on 127.0.0.1 that holds
# each direction for RTT/2 without limiting throughput. The fetcher dials the holder only
# through it (both announce a dead address, so nobody dials around it).
#
# What it measures (SIZE_MIB, default 256, random data; both data dirs on tmpfs, SHM_DIR):
#   fetch_rtt<R>_vs_direct     `shubnet fetch` at R ms RTT divided by the same fetch with no
#                              proxy. Targets: >= 0.8 at 40 ms, >= 0.6 at 100 ms.
#   fetch_rtt40_vs_scp         fetch at 40 ms RTT divided by `scp -c aes128-gcm@openssh.com`
#                              pulling the same file through the same 40 ms proxy from a local
#                              sshd (started here, throwaway keys) to the same tmpfs. Target >= 3.
#   fetch_direct_vs_scp        the direct fetch divided by that scp on loopback, no proxy.
#                              Target >= 1.0.
#   cpu_s_per_gib              CPU seconds (user+sys) of both nodes during each fetch, per GiB
#                              moved (the proxy's own CPU is not counted). Target <= 3.0.
#
# TRANSPORT=quic runs the members over QUIC (`/udp/0/quic-v1`, TLS 1.3) instead of TCP with
# noise and yamux, to compare the crypto's CPU per GiB; the delay proxy is TCP-only, so RTTS is
# ignored and only the direct fetch (and the scp baselines) run.
#
# Usage: bash bench/wan.sh   Env: SIZE_MIB RTTS ("0 40 100") TRANSPORT (tcp|quic) BENCH_DIR
#                                  SHM_DIR SHUBNET_BIN DELAY_PROXY_BIN CARGO_TARGET_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE_MIB=${SIZE_MIB:-256}
RTTS=${RTTS:-0 40 100}
TRANSPORT=${TRANSPORT:-tcp}
case $TRANSPORT in
    tcp) LISTEN=/ip4/127.0.0.1/tcp/0 ;;
    quic) LISTEN=/ip4/127.0.0.1/udp/0/quic-v1 RTTS="" ;;
    *) echo "TRANSPORT is tcp or quic" >&2; exit 2 ;;
esac

need_tools curl python3 ssh-keygen
command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || install_missing " for the scp baseline" openssh-server
install_missing " for the scp baseline" scp
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
build_shubnet
if [[ -n ${DELAY_PROXY_BIN:-} ]]; then
    PROXY=$DELAY_PROXY_BIN
else
    say "building shubnet-delay-proxy"
    cargo build -p shubnet-tests --bin shubnet-delay-proxy >&2
    PROXY=$TARGET/debug/shubnet-delay-proxy
fi
[[ -x $PROXY ]] || die "no delay proxy at $PROXY"
make_work shubnet-wan
SHM=$(mktemp -d "${SHM_DIR:-/dev/shm}/shubnet-wan.XXXXXX")
CLEANUP_DIRS+=("$SHM")
HZ=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# start NAME [serve args...] -> PID_<NAME>, ADDR_<NAME> (data dir SHM/NAME)
start() {
    local name=$1; shift
    local data=$SHM/$name
    mkdir -p "$data"
    rm -f "$data/api.url" "$data/p2p.addrs"
    "$BIN" serve --data-dir "$data" --http 127.0.0.1:0 --p2p "$LISTEN" "$@" \
        >>"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    wait_for test -s "$data/api.url" || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
    wait_for grep -q /p2p/ "$data/p2p.addrs" || die "$name has no p2p address"
    printf -v "PID_$name" '%s' "$pid"
    printf -v "ADDR_$name" '%s' "$(grep -m1 "^${LISTEN%/0*}/" "$data/p2p.addrs")"
}
stop() {
    local v="PID_$1"
    kill "${!v}" 2>/dev/null || true
    wait "${!v}" 2>/dev/null || true
}
cli() {
    local name=$1; shift
    SHUBNET_DATA_DIR=$SHM/$name SHUBNET_NODE=$(tr -d '[:space:]' <"$SHM/$name/api.url") "$BIN" "$@"
}
dead_addr() { echo "/ip4/127.0.0.1/tcp/$(free_port)"; }

# proxy RTT_MS UPSTREAM_HOST:PORT -> PROXY_PID, PROXY_ADDR
PROXIES=0
proxy() {
    local out=$WORK/proxy.$((++PROXIES)).out
    "$PROXY" --upstream "$2" --delay-ms $(($1 / 2)) >"$out" 2>>"$WORK/proxy.log" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_for grep -q : "$out" || die "the delay proxy did not start"
    PROXY_ADDR=$(head -1 "$out")
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }

# --- two members -----------------------------------------------------------------------------
start holder
start fetcher
FED=$(cli holder federation create --name Wan --institution holder)
cli holder federation admit "$(cli fetcher federation request --institution fetcher)" >/dev/null
cli fetcher federation join "$FED" --from "$(tr -d '[:space:]' <"$SHM/holder/api.url")" >/dev/null
stop fetcher
cp -a "$SHM/fetcher" "$WORK/fetcher.pristine"
stop holder

say "writing a ${SIZE_MIB} MiB image"
head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$SHM/image.bin"
start holder --announce "$(dead_addr)"
CID=$(cli holder add "$SHM/image.bin")
HOLDER_TCP=$(sed -E 's#^/ip4/([^/]+)/tcp/([0-9]+)/.*#\1:\2#' <<<"$ADDR_holder")
HOLDER_PEER=${ADDR_holder##*/p2p/}

# fetch_at RTT_MS -> FETCH_BPS CPU_PER_GIB (RTT_MS "direct": no proxy)
fetch_at() {
    local rtt=$1 via
    rm -rf "$SHM/fetcher"
    cp -a "$WORK/fetcher.pristine" "$SHM/fetcher"
    if [[ $rtt == direct ]]; then
        via=$ADDR_holder
    else
        proxy "$rtt" "$HOLDER_TCP"
        via=/ip4/${PROXY_ADDR%:*}/tcp/${PROXY_ADDR##*:}/p2p/$HOLDER_PEER
    fi
    start fetcher --bootstrap "$via" --announce "$(dead_addr)"
    sleep 2
    local c0 c1 t0 t1
    c0=$(( $(cpu_ticks "$PID_holder") + $(cpu_ticks "$PID_fetcher") ))
    t0=$(now)
    cli fetcher fetch "$CID" >/dev/null
    t1=$(now)
    c1=$(( $(cpu_ticks "$PID_holder") + $(cpu_ticks "$PID_fetcher") ))
    FETCH_BPS=$(py "print($SIZE_MIB * 1048576 / ($t1 - $t0))")
    CPU_PER_GIB=$(py "print(f'{($c1 - $c0) / $HZ / ($SIZE_MIB / 1024):.2f}')")
    stop fetcher
    [[ $rtt == direct ]] || stop_proxy
}

# --- the scp baseline: a throwaway sshd on a loopback port --------------------------------------
mkdir -p "$WORK/ssh" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/host" 
ssh-keygen -q -t ed25519 -N '' -f "$WORK/ssh/client"
cp "$WORK/ssh/client.pub" "$WORK/ssh/authorized_keys"
chmod 600 "$WORK/ssh/authorized_keys"
SSH_PORT=$(free_port)
cat >"$WORK/ssh/sshd_config" <<CONF
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $WORK/ssh/host
AuthorizedKeysFile $WORK/ssh/authorized_keys
PidFile $WORK/ssh/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
CONF
"$SSHD" -D -e -f "$WORK/ssh/sshd_config" 2>"$WORK/sshd.log" &
PIDS+=($!)
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || { cat "$WORK/sshd.log" >&2; die "sshd did not start"; }

# scp_bps HOST:PORT -> bytes/s of pulling the image to tmpfs through that address
scp_bps() {
    local t0 t1
    rm -f "$SHM/scp.out"
    t0=$(now)
    scp -q -c aes128-gcm@openssh.com -P "${1##*:}" -i "$WORK/ssh/client" \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        "$(id -un)@${1%:*}:$SHM/image.bin" "$SHM/scp.out"
    t1=$(now)
    cmp -s "$SHM/scp.out" "$SHM/image.bin" || die "scp copied different bytes"
    rm -f "$SHM/scp.out"
    py "print($SIZE_MIB * 1048576 / ($t1 - $t0))"
}

# --- measurements --------------------------------------------------------------------------------
fetch_at direct
direct_bps=$FETCH_BPS direct_cpu=$CPU_PER_GIB
echo "info fetch_direct: $(mibps "$direct_bps") MiB/s, cpu_s_per_gib $direct_cpu"
declare -A BPS CPU
for r in $RTTS; do
    fetch_at "$r"
    BPS[$r]=$FETCH_BPS CPU[$r]=$CPU_PER_GIB
    echo "info fetch_rtt${r}: $(mibps "$FETCH_BPS") MiB/s, cpu_s_per_gib ${CPU[$r]}"
done
scp_lo=$(scp_bps "127.0.0.1:$SSH_PORT")
echo "info scp_loopback: $(mibps "$scp_lo") MiB/s"
proxy 40 "127.0.0.1:$SSH_PORT"
scp_40=$(scp_bps "$PROXY_ADDR")
stop_proxy
echo "info scp_rtt40: $(mibps "$scp_40") MiB/s"

for r in $RTTS; do
    [[ $r == 0 ]] && continue
    v=$(ratio "${BPS[$r]}" "$direct_bps")
    case $r in 40) t=0.8 ;; 100) t=0.6 ;; *) t="" ;; esac
    if [[ -n $t ]]; then
        echo "fetch_rtt${r}_vs_direct: $v (target >= $t: $(verdict "$v" '>=' "$t"))"
    else
        echo "fetch_rtt${r}_vs_direct: $v"
    fi
done
if [[ -n ${BPS[40]:-} ]]; then
    v=$(ratio "${BPS[40]}" "$scp_40")
    echo "fetch_rtt40_vs_scp: $v (target >= 3: $(verdict "$v" '>=' 3))"
fi
v=$(ratio "$direct_bps" "$scp_lo")
echo "fetch_direct_vs_scp: $v (target >= 1.0: $(verdict "$v" '>=' 1.0))"
worst=$direct_cpu
for r in $RTTS; do worst=$(py "print(max($worst, ${CPU[$r]}))"); done
echo "cpu_s_per_gib: $direct_cpu direct, worst $worst (both nodes; target <= 3.0: $(verdict "$worst" '<=' 3.0))"
