#!/usr/bin/env bash
# End-to-end rehearsal of docs/operator-guide.md: three institutions (lab A, B, C) as separate
# `shubnet` processes on 127.0.0.1 run the guide's step blocks word for word: create, request,
# admit, join, push, pull from another member, back up and restore one node, leave.
#
# Usage: deploy/e2e.sh   (needs `shubnet` on PATH, curl and python3; WORK=DIR keeps the files)
#
# The part between the "guide" markers is generated from the guide's ```sh e2e blocks; the
# test `cargo test -p shubnet-tests --test it guide::` fails when it differs from the guide
# (run it with SHUBNET_BLESS=1 to rewrite that part) and runs this script.
set -euo pipefail

WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
cleanup() {
    # shellcheck disable=SC2046
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Switches to one institution's "machine": its own directory, data dir and environment. Ports
# are picked by the system (:0) and read back from DATA_DIR/api.url and p2p.addrs; timers are
# short so the run takes seconds. What lab A's operator would send the others (its gateway URL
# and p2p address) is read from its files.
at() {
    mkdir -p "$WORK/$1"
    cd "$WORK/$1"
    export SHUBNET_DATA_DIR=$WORK/$1/data
    export SHUBNET_HTTP=127.0.0.1:0 SHUBNET_P2P_LISTEN=/ip4/127.0.0.1/tcp/0
    export SHUBNET_SYNC_INTERVAL=2 SHUBNET_REPLICATION_INTERVAL=1
    export SHUBNET_LOG=${E2E_LOG:-warn}
    local a=$WORK/lab-a/data
    if [[ -s $a/api.url ]]; then LAB_A_URL=$(cat "$a/api.url"); fi
    if [[ -s $a/p2p.addrs ]]; then LAB_A_P2P=$(grep -m1 '^/ip4/127.0.0.1/tcp/' "$a/p2p.addrs"); fi
    echo "==> on $1" >&2
}

# The images lab A and lab C publish (any file will do; a real one is a SIF).
mkdir -p "$WORK/lab-a" "$WORK/lab-c"
head -c 3000000 /dev/urandom >"$WORK/lab-a/tools.sif"
head -c 2000000 /dev/urandom >"$WORK/lab-c/analysis.sif"

# >>> guide: generated from docs/operator-guide.md; do not edit by hand
at lab-a
shubnet init
shubnet serve &
until shubnet status >/dev/null 2>&1; do sleep 1; done
FEDERATION_ID=$(shubnet federation create --name "Genomics Federation" \
    --institution lab-a --storage 500G --replication 2)
echo "federation id: $FEDERATION_ID"
cat "$SHUBNET_DATA_DIR/p2p.addrs"

at lab-b
shubnet init
REQUEST=$(shubnet federation request --institution lab-b)
echo "$REQUEST"

at lab-a
shubnet federation admit "$REQUEST" --storage 2T

at lab-b
shubnet serve --bootstrap "$LAB_A_P2P" &
until shubnet status >/dev/null 2>&1; do sleep 1; done
shubnet federation join "$FEDERATION_ID" --from "$LAB_A_URL"
shubnet federation show

at lab-c
shubnet init
REQUEST=$(shubnet federation request --institution lab-c)

at lab-a
shubnet federation admit "$REQUEST" --storage 2T

at lab-c
shubnet serve --bootstrap "$LAB_A_P2P" &
until shubnet status >/dev/null 2>&1; do sleep 1; done
shubnet federation join "$FEDERATION_ID" --from "$LAB_A_URL"

at lab-a
shubnet push tools.sif lab-a/tools:1.0
shubnet tags lab-a

at lab-c
shubnet push analysis.sif lab-c/analysis:2

at lab-b
shubnet pull lab-a/tools:1.0 -o tools.sif --from "$LAB_A_URL"
shubnet pull lab-a/tools:1.0 -o tools-via-b.sif

at lab-b
shubnet status
curl -fsS "$(cat "$SHUBNET_DATA_DIR/api.url")/readyz"

at lab-b
shubnet backup -o lab-b.backup
shubnet stop
mv "$SHUBNET_DATA_DIR" "$SHUBNET_DATA_DIR.lost"
shubnet restore lab-b.backup
shubnet serve --bootstrap "$LAB_A_P2P" &
until shubnet status >/dev/null 2>&1; do sleep 1; done
shubnet pull lab-a/tools:1.0 -o tools-after-restore.sif

at lab-c
REMOVE=$(shubnet leave --timeout 10m)
echo "$REMOVE"

at lab-a
$REMOVE
shubnet federation show
shubnet status

# <<< guide

# Checks beyond the guide's own (every pull already verified the signature and the sha256).
echo "==> checks" >&2
for f in tools.sif tools-via-b.sif tools-after-restore.sif; do
    cmp "$WORK/lab-a/tools.sif" "$WORK/lab-b/$f"
done
at lab-a
C_PEER=${REMOVE##* }
if shubnet federation show | grep -q "$C_PEER"; then
    echo "e2e: lab C's node is still in the roster" >&2
    exit 1
fi
# Lab C is gone with its disk; every image still has 2 live holders, and B serves them.
cp "$WORK/lab-c/analysis.sif" "$WORK/analysis.sif"
rm -rf "$WORK/lab-c"
shubnet status --json | C_PEER=$C_PEER python3 -c '
import json, os, sys
s = json.load(sys.stdin)
for i in s["images"]:
    others = [h for h in i["holders"] if h != os.environ["C_PEER"]]
    if len(others) < i["target"]:
        sys.exit("e2e: %s has %d holders without lab C" % (i["tags"], len(others)))
'
at lab-b
shubnet pull lab-a/tools:1.0 -o tools-final.sif
cmp "$WORK/lab-a/tools.sif" tools-final.sif
shubnet pull lab-c/analysis:2 -o analysis-final.sif
cmp "$WORK/analysis.sif" analysis-final.sif
echo "e2e: ok"
