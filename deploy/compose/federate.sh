#!/bin/sh
# Starts a node and, on first start, federates it using only the shubnet CLI:
#   founder: create the federation, publish its p2p address and id, admit each member's request;
#   member:  write a join request, wait for admission, join from the founder's gateway.
# State lives in the node's data dir, so a restart skips what is done.
set -eu
DATA=${SHUBNET_DATA_DIR:-/data}
EX=/exchange
export SHUBNET_DATA_DIR="$DATA"

wait_for() { # FILE: wait until it exists
  while [ ! -s "$1" ]; do sleep 1; done
}

shubnet init >/dev/null
BOOT=""
if [ "$ROLE" = member ]; then
  # Join requests need only this node's keys; the founder admits them while we start.
  if [ ! -s "$EX/$INSTITUTION.request" ]; then
    shubnet federation request --institution "$INSTITUTION" > "$EX/$INSTITUTION.request.tmp"
    mv -f "$EX/$INSTITUTION.request.tmp" "$EX/$INSTITUTION.request"
  fi
  wait_for "$EX/$FOUNDER.p2p"
  BOOT="--bootstrap $(cat "$EX/$FOUNDER.p2p")"
fi

# shellcheck disable=SC2086
shubnet serve --p2p /ip4/0.0.0.0/tcp/4001 --p2p /ip4/0.0.0.0/udp/4001/quic-v1 $BOOT &
SERVE=$!
trap 'kill -TERM $SERVE; wait $SERVE' TERM INT
wait_for "$DATA/api.url"
wait_for "$DATA/p2p.addrs"

if [ "$ROLE" = founder ]; then
  PEER=$(sed -n 's|.*/p2p/||p' "$DATA/p2p.addrs" | head -n1)
  echo "/dns4/$INSTITUTION/tcp/4001/p2p/$PEER" > "$EX/$INSTITUTION.p2p"
  if ! shubnet federation show >/dev/null 2>&1; then
    shubnet federation create --name "Compose Federation" --institution "$INSTITUTION" \
      --storage 10G --replication "${REPLICATION:-2}" > "$EX/federation.id.tmp"
    mv -f "$EX/federation.id.tmp" "$EX/federation.id"
  fi
  for m in $MEMBERS; do
    wait_for "$EX/$m.request"
    if [ ! -e "$EX/$m.admitted" ]; then
      shubnet federation admit "$(cat "$EX/$m.request")" --storage 10G
      touch "$EX/$m.admitted"
    fi
  done
else
  wait_for "$EX/federation.id"
  while [ ! -e "$EX/$INSTITUTION.admitted" ]; do sleep 1; done
  if ! shubnet federation show >/dev/null 2>&1; then
    shubnet federation join "$(cat "$EX/federation.id")" --from "http://$FOUNDER:8080"
  fi
fi
echo "federate.sh: $INSTITUTION is federated"
wait $SERVE
