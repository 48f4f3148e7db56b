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
#   gateway_{ipfs,shub}_rtt40_vs_fetch
#                              a client (curl) reading another image of SIZE_MIB through the
#                              gateway of the fetcher, which does not hold it and fetches it on
#                              demand from the holder 40 ms away, on /ipfs/CID and on the shub
#                              `image` URL of its tag (bytes compared), divided by the fetch at
#                              40 ms. Target >= 0.8.
#   swarm_vs_{near,far}_alone  a third image held by two members, one 10 ms and one 80 ms from
#                              the fetcher: the fetch from both divided by the fetch from each
#                              alone (> 1: the swarm is faster); swarm_near_share is the share
#                              of its bytes that came from the near one.
#
# TRANSPORT=quic runs the members over QUIC (`/udp/0/quic-v1`, TLS 1.3) instead of TCP with
# noise and yamux, to compare the crypto's CPU per GiB; the delay proxy is TCP-only, so RTTS is
# ignored and only the direct fetch (and the scp baselines) run.
#
# Usage: bash bench/wan.sh   Env: SIZE_MIB RTTS ("0 40 100") TRANSPORT (tcp|quic) GATEWAY (1)
#                                  SWARM (1) BENCH_DIR SHM_DIR SHUBNET_BIN DELAY_PROXY_BIN
#                                  CARGO_TARGET_DIR
#                                  SHM_DIR SHUBNET_BIN DELAY_PROXY_BIN CARGO_TARGET_DIR
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE_MIB=${SIZE_MIB:-256}
RTTS=${RTTS:-0 40 100}
GATEWAY=${GATEWAY:-1}
SWARM=${SWARM:-1}
TRANSPORT=${TRANSPORT:-tcp}
case $TRANSPORT in
    tcp) LISTEN=/ip4/127.0.0.1/tcp/0 ;;
    quic) LISTEN=/ip4/127.0.0.1/udp/0/quic-v1 RTTS="" GATEWAY=0 SWARM=0 ;;
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

# proxy RTT_MS UPSTREAM_HOST:PORT -> PROXY_PID, PROXY_ADDR (also appended to PROXY_PIDS)
PROXIES=0
PROXY_PIDS=()
proxy() {
    local out=$WORK/proxy.$((++PROXIES)).out
    rm -f "$out"
    "$PROXY" --upstream "$2" --delay-ms $(($1 / 2)) >"$out" 2>>"$WORK/proxy.log" &
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    PROXY_PIDS+=("$PROXY_PID")
    wait_for grep -q : "$out" || die "the delay proxy did not start"
    PROXY_ADDR=$(head -1 "$out")
}
stop_proxies() {
    local p
    for p in "${PROXY_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    PROXY_PIDS=()
}

# --- members: holder, fetcher, and (SWARM) a second holder, far ----------------------------------
start holder
start fetcher
FED=$(cli holder federation create --name Wan --institution holder)
cli holder federation admit "$(cli fetcher federation request --institution fetcher)" >/dev/null
cli fetcher federation join "$FED" --from "$(tr -d '[:space:]' <"$SHM/holder/api.url")" >/dev/null
# The far holder joins last, so its roster names the fetcher.
if ((SWARM)); then
    start far
    cli holder federation admit "$(cli far federation request --institution far)" >/dev/null
    cli far federation join "$FED" --from "$(tr -d '[:space:]' <"$SHM/holder/api.url")" >/dev/null
fi
stop fetcher
cp -a "$SHM/fetcher" "$WORK/fetcher.pristine"
say "writing the ${SIZE_MIB} MiB images"
head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$SHM/image.bin"
((GATEWAY)) && head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$SHM/gateway.bin"
((SWARM)) && head -c $((SIZE_MIB * 1048576)) /dev/urandom >"$SHM/swarm.bin"
if ((SWARM)); then
    SWARM_CID=$(cli far add "$SHM/swarm.bin")
    FAR_PEER=${ADDR_far##*/p2p/}
fi
stop holder

start holder --announce "$(dead_addr)"
CID=$(cli holder add "$SHM/image.bin")
if ((GATEWAY)); then
    cli holder push "$SHM/gateway.bin" holder/wan:latest >/dev/null
    gw_cid=$(cli holder add "$SHM/gateway.bin")
fi
((SWARM)) && { [[ $(cli holder add "$SHM/swarm.bin") == "$SWARM_CID" ]] || die "the holders disagree on the swarm image"; }
HOLDER_TCP=$(sed -E 's#^/ip4/([^/]+)/tcp/([0-9]+)/.*#\1:\2#' <<<"$ADDR_holder")
HOLDER_PEER=${ADDR_holder##*/p2p/}

# fresh_fetcher VIA... : the fetcher, holding nothing, dialling only the VIA multiaddrs
fresh_fetcher() {
    local args=() v
    rm -rf "$SHM/fetcher"
    cp -a "$WORK/fetcher.pristine" "$SHM/fetcher"
    for v in "$@"; do args+=(--bootstrap "$v"); done
    start fetcher "${args[@]}" --announce "$(dead_addr)"
    sleep 2
}
# via RTT_MS HOST:PORT PEER -> VIA, a multiaddr of PEER through a new proxy ("direct": none)
via() {
    if [[ $1 == direct ]]; then
        VIA="/ip4/${2%:*}/tcp/${2##*:}/p2p/$3"
    else
        proxy "$1" "$2"
        VIA="/ip4/${PROXY_ADDR%:*}/tcp/${PROXY_ADDR##*:}/p2p/$3"
    fi
}

# fetch_cid CID -> FETCH_BPS CPU_PER_GIB (the fetcher running)
fetch_cid() {
    local c0 c1 t0 t1 others=0 name v
    for name in holder far; do
        v="PID_$name"
        [[ -n ${!v:-} ]] && kill -0 "${!v}" 2>/dev/null && others=$((others + $(cpu_ticks "${!v}")))
    done
    c0=$((others + $(cpu_ticks "$PID_fetcher")))
    t0=$(now)
    cli fetcher fetch "$1" >/dev/null
    t1=$(now)
    others=0
    for name in holder far; do
        v="PID_$name"
        [[ -n ${!v:-} ]] && kill -0 "${!v}" 2>/dev/null && others=$((others + $(cpu_ticks "${!v}")))
    done
    c1=$((others + $(cpu_ticks "$PID_fetcher")))
    FETCH_BPS=$(py "print($SIZE_MIB * 1048576 / ($t1 - $t0))")
    say "fetch of $1: $(py "print(f'{$t1 - $t0:.2f}')") s; $(grep 'fetch report: ' "$WORK/fetcher.log" | tail -1 | grep -o '"transfer_ms":[0-9]*\|"store_ms":[0-9]*' | tr '\n' ' ')"
    CPU_PER_GIB=$(py "print(f'{($c1 - $c0) / $HZ / ($SIZE_MIB / 1024):.2f}')")
}

# fetch_at RTT_MS -> FETCH_BPS CPU_PER_GIB (RTT_MS "direct": no proxy)
fetch_at() {
    via "$1" "$HOLDER_TCP" "$HOLDER_PEER"
    fresh_fetcher "$VIA"
    fetch_cid "$CID"
    if [[ -n ${gw_cid:-} ]]; then
        # A second image on the same connection, whose kept sessions have grown windows.
        local first=$FETCH_BPS cpu=$CPU_PER_GIB
        fetch_cid "$gw_cid"
        WARM_BPS=$FETCH_BPS FETCH_BPS=$first CPU_PER_GIB=$cpu
    fi
    stop fetcher
    stop_proxies
}

# timed_curl URL FILE -> bytes/s of reading URL, whose bytes must be FILE's
timed_curl() {
    local t0 t1
    t0=$(now)
    curl -fsS -o "$SHM/curl.out" "$1" || die "curl $1 failed"
    t1=$(now)
    cmp -s "$SHM/curl.out" "$2" || die "$1 returned different bytes"
    rm -f "$SHM/curl.out"
    py "print($SIZE_MIB * 1048576 / ($t1 - $t0))"
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
((SWARM)) && stop far
fetch_at direct
direct_bps=$FETCH_BPS direct_cpu=$CPU_PER_GIB direct_warm=${WARM_BPS:-}
echo "info fetch_direct: $(mibps "$direct_bps") MiB/s, cpu_s_per_gib $direct_cpu"
declare -A BPS CPU WARM
for r in $RTTS; do
    fetch_at "$r"
    BPS[$r]=$FETCH_BPS CPU[$r]=$CPU_PER_GIB
    echo "info fetch_rtt${r}: $(mibps "$FETCH_BPS") MiB/s, cpu_s_per_gib ${CPU[$r]}"
    [[ -n ${WARM_BPS:-} ]] && WARM[$r]=$WARM_BPS &&
        echo "info fetch_rtt${r}_warm: $(mibps "$WARM_BPS") MiB/s (another image right after, same connection)"
done
if ((GATEWAY)); then
    via 40 "$HOLDER_TCP" "$HOLDER_PEER"
    fresh_fetcher "$VIA"
    fetch_cid "$CID"
    gw_fetch=$FETCH_BPS
    api=$(tr -d '[:space:]' <"$SHM/fetcher/api.url")
    wait_for curl -fsS -o /dev/null "$api/api/container/holder/wan:latest" || die "the tag did not reach the fetcher"
    image=$(curl -fsS "$api/api/container/holder/wan:latest" | py "import json, sys; print(json.load(sys.stdin)['image'])")
    gw_shub=$(timed_curl "$image" "$SHM/gateway.bin")
    echo "info gateway_shub_rtt40: $(mibps "$gw_shub") MiB/s (fetch at 40 ms in the same session: $(mibps "$gw_fetch") MiB/s)"
    stop fetcher
    stop_proxies
    # /ipfs/CID of the same image, on a fetcher that again holds nothing
    via 40 "$HOLDER_TCP" "$HOLDER_PEER"
    fresh_fetcher "$VIA"
    api=$(tr -d '[:space:]' <"$SHM/fetcher/api.url")
    gw_ipfs=$(timed_curl "$api/ipfs/$gw_cid" "$SHM/gateway.bin")
    echo "info gateway_ipfs_rtt40: $(mibps "$gw_ipfs") MiB/s"
    stop fetcher
    stop_proxies
fi
if ((SWARM)); then
    start far --announce "$(dead_addr)"
    FAR_TCP=$(sed -E 's#^/ip4/([^/]+)/tcp/([0-9]+)/.*#\1:\2#' <<<"$ADDR_far")
    via 10 "$HOLDER_TCP" "$HOLDER_PEER"
    fresh_fetcher "$VIA"
    fetch_cid "$SWARM_CID"; near_alone=$FETCH_BPS
    stop fetcher; stop_proxies
    via 80 "$FAR_TCP" "$FAR_PEER"
    fresh_fetcher "$VIA"
    fetch_cid "$SWARM_CID"; far_alone=$FETCH_BPS
    stop fetcher; stop_proxies
    via 10 "$HOLDER_TCP" "$HOLDER_PEER"
    near_via=$VIA
    via 80 "$FAR_TCP" "$FAR_PEER"
    fresh_fetcher "$near_via" "$VIA"
    fetch_cid "$SWARM_CID"; swarm=$FETCH_BPS
    near_share=$(grep 'fetch report: ' "$WORK/fetcher.log" | tail -1 | sed 's/.*fetch report: //' | py "import json, sys
r = json.JSONDecoder().raw_decode(sys.stdin.read().strip())[0]
near = sum(h['bytes'] for h in r['holders'] if h['peer'] == '$HOLDER_PEER')
print(f\"{near / max(1, r['bytes_received']):.2f}\")")
    stop fetcher; stop_proxies
    echo "info swarm: near (10 ms) alone $(mibps "$near_alone") MiB/s, far (80 ms) alone $(mibps "$far_alone") MiB/s, both $(mibps "$swarm") MiB/s"
fi
scp_lo=$(scp_bps "127.0.0.1:$SSH_PORT")
echo "info scp_loopback: $(mibps "$scp_lo") MiB/s"
proxy 40 "127.0.0.1:$SSH_PORT"
scp_40=$(scp_bps "$PROXY_ADDR")
stop_proxies
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
    [[ -n ${WARM[$r]:-} && -n $direct_warm ]] &&
        echo "fetch_rtt${r}_warm_vs_direct_warm: $(ratio "${WARM[$r]}" "$direct_warm") (a second image on the same connection)"
done
if [[ -n ${BPS[40]:-} ]]; then
    v=$(ratio "${BPS[40]}" "$scp_40")
    echo "fetch_rtt40_vs_scp: $v (target >= 3: $(verdict "$v" '>=' 3))"
fi
v=$(ratio "$direct_bps" "$scp_lo")
echo "fetch_direct_vs_scp: $v (target >= 1.0: $(verdict "$v" '>=' 1.0))"
if ((GATEWAY)); then
    for k in ipfs shub; do
        v=gw_$k
        r=$(ratio "${!v}" "$gw_fetch")
        echo "gateway_${k}_rtt40_vs_fetch: $r (target >= 0.8: $(verdict "$r" '>=' 0.8))"
    done
fi
if ((SWARM)); then
    echo "swarm_vs_near_alone: $(ratio "$swarm" "$near_alone")"
    echo "swarm_vs_far_alone: $(ratio "$swarm" "$far_alone")"
    echo "swarm_near_share: $near_share"
fi
worst=$direct_cpu
for r in $RTTS; do worst=$(py "print(max($worst, ${CPU[$r]}))"); done
echo "cpu_s_per_gib: $direct_cpu direct, worst $worst (both nodes; target <= 3.0: $(verdict "$worst" '<=' 3.0))"
