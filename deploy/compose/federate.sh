#!/bin/sh
# Starts a node and, on first start, federates it using only the shubnet CLI:
#   founder: create the federation, publish its p2p address and id, admit each member's request;
#   member:  write a join request, wait for admission, join from the founder's gateway.
# State lives in the node's data dir, so a restart skips what is done.
#
# This script is the container's PID 1, which the kernel shields from every signal it has no
# handler for: the trap comes first, so `docker stop` ends it at once in any phase (waiting for
# the founder included), and once the node runs it gets the TERM and drains.
trap 'if [ -n "${SERVE:-}" ]; then kill -TERM "$SERVE" 2>/dev/null; wait "$SERVE"; exit $?; fi; exit 143' TERM INT
SERVE=
set -eu
DATA=${SHUBNET_DATA_DIR:-/data}
EX=/exchange
export SHUBNET_DATA_DIR="$DATA"
# Peers learn this node by a stable name, never by a container IP that changes when the compose
# network is recreated (`down` + `up`); names are resolved again on every redial.
ANNOUNCE=${ANNOUNCE:-/dns4/$INSTITUTION/tcp/4001}

wait_for() { # FILE: wait until it exists and is not empty (and the node, once started, runs)
  while [ ! -s "$1" ]; do
    if [ -n "$SERVE" ] && ! kill -0 "$SERVE" 2>/dev/null; then
      wait "$SERVE" || exit $?
      exit 1
    fi
    sleep 1
  done
}

shubnet init >/dev/null
BOOT=""
if [ "$ROLE" = member ]; then
  # Join requests need only this node's keys; the founder admits them while we start.
  if [ ! -s "$EX/$INSTITUTION.request" ]; then
    shubnet federation request --institution "$INSTITUTION" > "$EX/$INSTITUTION.request.tmp"
    mv -f "$EX/$INSTITUTION.request.tmp" "$EX/$INSTITUTION.request"
  fi
  echo "federate.sh: $INSTITUTION waits for $FOUNDER's p2p address"
  wait_for "$EX/$FOUNDER.p2p"
  BOOT="--bootstrap $(cat "$EX/$FOUNDER.p2p")"
fi

# A node killed without its shutdown leaves these behind; they must name this run's node.
rm -f "$DATA/api.url" "$DATA/p2p.addrs"
# shellcheck disable=SC2086
shubnet serve --p2p /ip4/0.0.0.0/tcp/4001 --p2p /ip4/0.0.0.0/udp/4001/quic-v1 \
  --announce "$ANNOUNCE" $BOOT &
SERVE=$!
wait_for "$DATA/api.url"
wait_for "$DATA/p2p.addrs"

if [ "$ROLE" = founder ]; then
  PEER=$(sed -n 's|.*/p2p/||p' "$DATA/p2p.addrs" | head -n1)
  echo "$ANNOUNCE/p2p/$PEER" > "$EX/$INSTITUTION.p2p.tmp"
  mv -f "$EX/$INSTITUTION.p2p.tmp" "$EX/$INSTITUTION.p2p"
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
# `wait` returns early when a trapped signal arrives; the trap then waits for the node itself.
wait "$SERVE"
