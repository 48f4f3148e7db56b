#!/usr/bin/env bash
# The container acceptance test: the real image and the three-institution compose federation on
# a real Docker engine. Run as root from anywhere: `bash deploy/compose/ci-test.sh` (.ci/run runs
# it after the cargo tests unless SHUBNET_SKIP_CONTAINER_TEST=1).
#
# What it does:
#   - installs (once) docker.io, docker-compose, debootstrap and binutils from Debian, and starts
#     dockerd when none answers (and stops it again at the end);
#   - builds the runtime base image locally, since Docker Hub may be out of reach: a Debian
#     bookworm minbase rootfs (debootstrap, with curl and ca-certificates) imported with
#     `docker import`, cached as a tarball in $SHUBNET_DOCKER_CACHE (/var/cache/shubnet-docker)
#     and handed to deploy/Dockerfile as RUNTIME_IMAGE (whose default is debian:bookworm-slim);
#   - strips the release binary CI already built ($SHUBNET_BIN, default
#     $CARGO_TARGET_DIR/release/shubnet), keeps its debug info beside it
#     ($SHUBNET_DEPLOY_CACHE/shubnet.debug), and builds the image through the Dockerfile's
#     runtime-prebuilt target, so CI compiles nothing twice;
#   - runs deploy/compose/docker-compose.yml under a project name of its own, with `docker compose`
#     (v2) when the engine has it, else `docker-compose` (v1); COMPOSE="docker-compose" forces one;
#   - checks, in the containers (host traffic goes only to the 127.0.0.1 ports compose publishes,
#     node-to-node traffic stays on the compose network this test creates):
#       image  the image runs as 10001:10001, /data is 0700 and /exchange exists, both owned by
#              that user, and its binary carries no debug sections;
#       a      the federation forms: 3 members, each connected to the other two;
#       b      a push on lab-a pulls through lab-c's shub API (published port), byte-identical;
#       c      with lab-a stopped, lab-b serves the image within one retry;
#       d      `down` + `up` (volumes kept, the network renumbered) keeps everything and
#              reconnects;
#       e      `docker stop` takes under 5 s: of a member waiting for its founder, of running
#              nodes;
#       f      /readyz answers 503 with a reason while a member is isolated (the other two
#              stopped), and 200 again once they are back.
#   - prints a PASS/FAIL line per check and a summary; exits non-zero when any check failed.
#     The project is removed with `down -v` at the end, whatever happened.
# Functions run through wait_until and traps look unreachable to shellcheck:
# shellcheck disable=SC2317
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
COMPOSE_FILE=$ROOT/deploy/compose/docker-compose.yml
DEPLOY_CACHE=${SHUBNET_DEPLOY_CACHE:-/var/cache/shubnet-deploy}
DOCKER_CACHE=${SHUBNET_DOCKER_CACHE:-/var/cache/shubnet-docker}
BIN=${SHUBNET_BIN:-${CARGO_TARGET_DIR:-/var/cache/shubnet-target}/release/shubnet}
export SHUBNET_IMAGE=${SHUBNET_IMAGE:-shubnet:local}
PROJECT=shubnet-ci-$$
STOP_LIMIT_MS=5000
T0=$(date +%s)

say() { printf '\n--> %s\n' "$*"; }
ms() { date +%s%3N; }
RESULTS=()
FAILED=0
pass() { RESULTS+=("PASS  $1: $2"); printf 'PASS  %s: %s\n' "$1" "$2"; }
fail() { RESULTS+=("FAIL  $1: $2"); printf 'FAIL  %s: %s\n' "$1" "$2"; FAILED=1; }

if [[ $(id -u) != 0 ]]; then
    echo "ci-test.sh: run as root (it installs packages and talks to dockerd)" >&2
    exit 2
fi
if [[ ! -x $BIN ]]; then
    echo "ci-test.sh: no release binary at $BIN (build it: cargo build --release --locked -p shubnet-node; or set SHUBNET_BIN)" >&2
    exit 2
fi

# --- packages and the engine -----------------------------------------------------------------
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v objcopy >/dev/null || need+=(binutils)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

STARTED_DOCKERD=
if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (log: /var/log/shubnet-dockerd.log)"
    dockerd >/var/log/shubnet-dockerd.log 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 30 /var/log/shubnet-dockerd.log >&2
        echo "ci-test.sh: dockerd did not answer within 60 s" >&2
        exit 1
    fi
fi

if [[ -n ${COMPOSE:-} ]]; then
    read -r -a COMPOSE_CMD <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
    COMPOSE_CMD=(docker compose)
else
    COMPOSE_CMD=(docker-compose)
fi
dc() { "${COMPOSE_CMD[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }

# Three free loopback ports for the gateways, held together while chosen so they differ.
read -r LAB_A_PORT LAB_B_PORT LAB_C_PORT < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
export LAB_A_PORT LAB_B_PORT LAB_C_PORT
declare -A PORT=([lab-a]=$LAB_A_PORT [lab-b]=$LAB_B_PORT [lab-c]=$LAB_C_PORT)

WORK=$(mktemp -d)
SPACER=
# Every container's log, kept after the project is gone (the last run's only): before `down`
# removes the containers, and at the end.
LOGS=$DEPLOY_CACHE/ci-test-last.log
mkdir -p "$DEPLOY_CACHE"
: >"$LOGS"
save_logs() { # WHEN
    { echo "===== container logs $1"; dc logs --no-color -t 2>&1; } >>"$LOGS"
}
cleanup() {
    local rc=$?
    set +e
    save_logs "at the end"
    if ((FAILED)) || ((rc)); then
        say "logs of the failed run (last 60 lines per service; all of them in $LOGS)"
        for s in lab-a lab-b lab-c; do
            echo "----- $s"
            dc logs --no-color --tail=60 "$s" 2>&1
        done
    fi
    say "removing the project $PROJECT (down -v)"
    dc down -v --remove-orphans >/dev/null 2>&1
    [[ -n $SPACER ]] && docker network rm "$SPACER" >/dev/null 2>&1
    rm -rf "$WORK"
    if [[ -n $STARTED_DOCKERD ]]; then
        kill "$STARTED_DOCKERD" 2>/dev/null
        wait "$STARTED_DOCKERD" 2>/dev/null
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- the base image: a Debian bookworm rootfs from Debian's packages ----------------------------
BASE_PKGS=ca-certificates,curl
KEY=$(printf '%s\n' bookworm minbase "$BASE_PKGS" v1 | sha256sum | cut -c1-12)
BASE_IMAGE=${SHUBNET_BASE_IMAGE:-shubnet-ci/debian:bookworm-$KEY}
TARBALL=$DOCKER_CACHE/debian-bookworm-minbase-$KEY.tar.gz
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "base image $BASE_IMAGE present"
elif [[ -n ${SHUBNET_BASE_IMAGE:-} ]]; then
    echo "ci-test.sh: SHUBNET_BASE_IMAGE=$BASE_IMAGE is not in the engine" >&2
    exit 2
else
    if [[ ! -s $TARBALL ]]; then
        say "debootstrap bookworm (minbase + $BASE_PKGS) for $TARBALL"
        mkdir -p "$DOCKER_CACHE"
        rootfs=$DOCKER_CACHE/rootfs.$$
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include="$BASE_PKGS" bookworm "$rootfs" \
            http://deb.debian.org/debian >"$DOCKER_CACHE/debootstrap.log" 2>&1 ||
            { tail -n 30 "$DOCKER_CACHE/debootstrap.log" >&2; rm -rf "$rootfs"; exit 1; }
        # What debian:bookworm-slim leaves out too: package caches, lists, docs, locales.
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
            "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*.log
        tar --numeric-owner -C "$rootfs" -czf "$TARBALL.tmp" .
        mv -f "$TARBALL.tmp" "$TARBALL"
        rm -rf "$rootfs"
    fi
    say "docker import $TARBALL as $BASE_IMAGE"
    docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' "$TARBALL" "$BASE_IMAGE" >/dev/null
fi

# --- the runtime image from the release binary ---------------------------------------------------
say "stripping $BIN (debug info kept in $DEPLOY_CACHE/shubnet.debug)"
CTX=$DEPLOY_CACHE/context
rm -rf "$CTX"
mkdir -p "$CTX"
objcopy --only-keep-debug "$BIN" "$DEPLOY_CACHE/shubnet.debug"
objcopy --strip-debug --strip-unneeded --add-gnu-debuglink="$DEPLOY_CACHE/shubnet.debug" \
    "$BIN" "$CTX/shubnet"
printf '    %s: %s bytes -> stripped %s bytes\n' "$BIN" "$(stat -c %s "$BIN")" "$(stat -c %s "$CTX/shubnet")"

say "docker build --target runtime-prebuilt -t $SHUBNET_IMAGE (base $BASE_IMAGE)"
old_image=$(docker image inspect -f '{{.Id}}' "$SHUBNET_IMAGE" 2>/dev/null || true)
# The legacy builder: Debian's engine has no buildx, and it skips the stages after the target.
DOCKER_BUILDKIT=0 docker build -q -f "$ROOT/deploy/Dockerfile" --target runtime-prebuilt \
    --build-arg RUNTIME_IMAGE="$BASE_IMAGE" --build-arg SHUBNET_BINARY=shubnet \
    -t "$SHUBNET_IMAGE" "$CTX"
# The image this tag named before is left untagged: remove it unless something still uses it.
if [[ -n $old_image && $old_image != "$(docker image inspect -f '{{.Id}}' "$SHUBNET_IMAGE")" ]]; then
    docker rmi "$old_image" >/dev/null 2>&1 || true
fi

say "check image: user, directories, stripped binary"
ids=$(docker run --rm --entrypoint id "$SHUBNET_IMAGE")
dirs=$(docker run --rm --entrypoint stat "$SHUBNET_IMAGE" -c '%n %u:%g %a' /data /exchange | tr '\n' ' ')
probe=$(docker create "$SHUBNET_IMAGE")
docker cp "$probe:/usr/local/bin/shubnet" "$WORK/image-shubnet" >/dev/null
docker rm -v "$probe" >/dev/null
# Debug info sections (.debug_gdb_scripts is not debug info: a few loaded bytes naming rustc's
# pretty-printers, which strip keeps); the debuglink names the split-off file.
debug_sections=$(readelf -S -W "$WORK/image-shubnet" | grep '\.debug_' | grep -vc '\.debug_gdb_scripts' || true)
debuglink=$(readelf -S -W "$WORK/image-shubnet" | grep -c '\.gnu_debuglink' || true)
size=$(stat -c %s "$WORK/image-shubnet")
detail="id: $ids; $dirs; binary $size bytes, $debug_sections debug info sections, debuglink $debuglink"
if [[ $ids == "uid=10001(shubnet) gid=10001(shubnet) groups=10001(shubnet)" &&
    $dirs == "/data 10001:10001 700 /exchange 10001:10001 755 " && $debug_sections == 0 &&
    $debuglink == 1 ]]; then
    pass image "$detail"
else
    fail image "$detail"
fi

# --- helpers on the running project ------------------------------------------------------------
cid() { dc ps -q "$1"; }
# `shubnet status --json` of a lab: "PEER_ID CONNECTED_PEER…" on one line.
peers_line() {
    docker exec "$(cid "$1")" shubnet status --json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
ps = []
for p in v.get("connected_peers") or []:
    ps.append(p if isinstance(p, str) else (p.get("peer_id") or p.get("id") or ""))
print(v.get("peer_id", "?"), *ps)' 2>/dev/null || echo "?"
}
# Whether every lab is connected to both others; leaves a one-line description in MESH.
MESH=
mesh_ok() {
    local l ok=0 ids=() line
    declare -A peers=()
    MESH=
    for l in lab-a lab-b lab-c; do
        line=$(peers_line "$l")
        ids+=("${line%% *}")
        peers[$l]=" ${line#* } "
    done
    local i j labs=(lab-a lab-b lab-c)
    for i in 0 1 2; do
        local n=0
        for j in 0 1 2; do
            [[ $i == "$j" ]] && continue
            [[ ${peers[${labs[$i]}]} == *" ${ids[$j]} "* ]] && n=$((n + 1))
        done
        MESH+="${labs[$i]} sees $n/2 members; "
        ((n == 2)) || ok=1
    done
    MESH=${MESH%; }
    return "$ok"
}
# readyz LAB: prints "HTTP_CODE BODY".
readyz() {
    local code
    code=$(curl -s -o "$WORK/readyz" -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:${PORT[$1]}/readyz" || true)
    printf '%s %s' "$code" "$(tr '\n' ' ' <"$WORK/readyz" 2>/dev/null)"
}
# pull_shub LAB OUT: the shub API of LAB (published port) for lab-a/ci:v1, then its image URL.
pull_shub() {
    local json url
    json=$(curl -fsS --max-time 10 "http://127.0.0.1:${PORT[$1]}/api/container/lab-a/ci:v1" 2>/dev/null) ||
        return 1
    url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["image"])' "$json") || return 1
    # Only the published loopback port is a place this test may send traffic to.
    [[ $url == "http://127.0.0.1:${PORT[$1]}/"* ]] || { echo "    unexpected image URL $url"; return 1; }
    curl -fsS --max-time 60 -o "$2" "$url"
}
# timed_stop CONTAINER: docker stop, printing the milliseconds and the exit code.
timed_stop() {
    local t c
    t=$(ms)
    docker stop "$1" >/dev/null
    t=$(($(ms) - t))
    c=$(docker inspect -f '{{.State.ExitCode}}' "$1")
    echo "$t $c"
}
STOPS=()
record_stop() { # WHAT "MS EXIT"
    local t=${2% *} c=${2#* }
    STOPS+=("$1 ${t} ms (exit $c)")
    ((t < STOP_LIMIT_MS && c != 137)) || STOP_BAD=1
}
STOP_BAD=0
wait_until() { # SECONDS COMMAND…: poll every second; true once COMMAND is
    local end=$(($(date +%s) + $1))
    shift
    until "$@"; do
        (($(date +%s) >= end)) && return 1
        sleep 1
    done
}
logs_say() { dc logs --no-color "$1" 2>/dev/null | grep -q "$2"; }

# --- e (first half): a member waiting for its founder stops at once ------------------------------
say "compose: $("${COMPOSE_CMD[@]}" version --short 2>/dev/null || true) (${COMPOSE_CMD[*]}), project $PROJECT, ports lab-a ${PORT[lab-a]} lab-b ${PORT[lab-b]} lab-c ${PORT[lab-c]}"
say "e: docker stop of lab-b while it waits for lab-a"
dc up -d --no-build --no-deps lab-b >/dev/null 2>&1
if wait_until 30 logs_say lab-b "waits for lab-a"; then
    record_stop "member waiting for its founder" "$(timed_stop "$(cid lab-b)")"
else
    STOPS+=("member waiting for its founder: never reached the wait")
    STOP_BAD=1
fi

# --- a: the federation forms ---------------------------------------------------------------------
say "a: up; wait for 3 federated members, each connected to the other two"
dc up -d --no-build >/dev/null 2>&1
t=$(ms)
federated() { logs_say lab-a "lab-a is federated" && logs_say lab-b "lab-b is federated" &&
    logs_say lab-c "lab-c is federated"; }
# How many members lab-c's roster lists.
roster_members() {
    docker exec "$(cid lab-c)" shubnet federation show --json 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))' 2>/dev/null ||
        echo "?"
}
if ! wait_until 120 federated; then
    fail a "not every lab logged 'is federated' within 120 s"
elif wait_until 150 mesh_ok; then
    # Members meet each other through lab-a (Kademlia) after they join; the margin is for a
    # loaded machine (seen: 7 to 9 s on a quiet one).
    pass a "federated and fully connected after $(($(ms) - t)) ms: $MESH"
else
    fail a "federated, but not connected to one another 150 s after up: $MESH"
fi
members=$(roster_members)
echo "    roster members seen by lab-c: $members; readyz: lab-a $(readyz lab-a)| lab-b $(readyz lab-b)| lab-c $(readyz lab-c)"

# --- b: push on lab-a, pull through lab-c --------------------------------------------------------
say "b: push lab-a/ci:v1 on lab-a, pull it through lab-c's shub API"
head -c $((3 * 1024 * 1024 + 12345)) /dev/urandom >"$WORK/ci.sif"
want=$(sha256sum "$WORK/ci.sif" | cut -d' ' -f1)
docker cp "$WORK/ci.sif" "$(cid lab-a):/tmp/ci.sif" >/dev/null
if manifest=$(docker exec "$(cid lab-a)" shubnet push /tmp/ci.sif lab-a/ci:v1 2>&1); then
    echo "    pushed, manifest $manifest"
    t=$(ms)
    if wait_until 60 pull_shub lab-c "$WORK/c.sif" && cmp -s "$WORK/ci.sif" "$WORK/c.sif"; then
        pass b "lab-c served lab-a/ci:v1 after $(($(ms) - t)) ms, sha256 $want, byte-identical"
    else
        fail b "lab-c did not serve lab-a/ci:v1 byte-identically within 60 s"
    fi
else
    fail b "push failed: $manifest"
fi

# --- c: lab-a stopped, lab-b serves ----------------------------------------------------------
say "c: wait until lab-a/ci:v1 has its replicas, stop lab-a, pull through lab-b"
replicated() {
    docker exec "$(cid lab-a)" shubnet status --json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)
imgs = [i for i in v.get("images") or [] if "lab-a/ci:v1" in (i.get("tags") or [])]
sys.exit(0 if imgs and imgs[0].get("under_replicated") is False else 1)'
}
if wait_until 60 replicated; then
    echo "    replicated: $(docker exec "$(cid lab-a)" shubnet status | grep 'lab-a/ci:v1' || true)"
else
    echo "    not replicated within 60 s: $(docker exec "$(cid lab-a)" shubnet status | grep 'lab-a/ci:v1' || true)"
fi
record_stop "running founder lab-a" "$(timed_stop "$(cid lab-a)")"
t=$(ms)
attempt=0
served=no
for attempt in 1 2; do
    if pull_shub lab-b "$WORK/b.sif" && cmp -s "$WORK/ci.sif" "$WORK/b.sif"; then
        served=yes
        break
    fi
    sleep 2
done
if [[ $served == yes ]]; then
    pass c "lab-b served lab-a/ci:v1 byte-identically on attempt $attempt, $(($(ms) - t)) ms after lab-a stopped"
else
    fail c "lab-b did not serve lab-a/ci:v1 in 2 attempts (first and one retry after 2 s)"
fi
dc start lab-a >/dev/null 2>&1

# --- d: down + up keeps everything and reconnects --------------------------------------------
say "d: down (volumes kept), up on a renumbered network"
net=${PROJECT}_default
old_subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net" 2>/dev/null || echo "?")
save_logs "before down"
t=$(ms)
dc down >/dev/null 2>&1
echo "    down took $(($(ms) - t)) ms"
# Occupy the freed subnet, so the new network (and every container address) differs.
SPACER=$PROJECT-spacer
docker network create "$SPACER" >/dev/null
dc up -d --no-build >/dev/null 2>&1
new_subnet=$(docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' "$net" 2>/dev/null || echo "?")
echo "    network $old_subnet -> $new_subnet"
t=$(ms)
if wait_until 90 mesh_ok; then
    mesh="reconnected after $(($(ms) - t)) ms: $MESH"
    if wait_until 30 pull_shub lab-c "$WORK/d.sif" && cmp -s "$WORK/ci.sif" "$WORK/d.sif"; then
        pass d "$mesh; lab-c still serves lab-a/ci:v1 byte-identically"
    else
        fail d "$mesh; but lab-c does not serve lab-a/ci:v1 byte-identically"
    fi
else
    fail d "not reconnected 90 s after up: $MESH (network $old_subnet -> $new_subnet)"
fi
members=$(roster_members)
echo "    roster members seen by lab-c after up: $members"

# --- f: readiness while isolated -------------------------------------------------------------
say "f: stop lab-a and lab-b; lab-c's /readyz must fail, then recover"
record_stop "running member lab-b" "$(timed_stop "$(cid lab-b)")"
record_stop "running founder lab-a (after up)" "$(timed_stop "$(cid lab-a)")"
t=$(ms)
not_ready() { [[ $(readyz lab-c) == 503* ]]; }
if wait_until 45 not_ready; then
    isolated="503 $(($(ms) - t)) ms after the others stopped: '$(readyz lab-c)'"
    dc start lab-a lab-b >/dev/null 2>&1
    t=$(ms)
    ready() { [[ $(readyz lab-c) == 200* ]]; }
    if wait_until 60 ready; then
        pass f "$isolated; 200 again $(($(ms) - t)) ms after they restarted"
    else
        fail f "$isolated; but not ready 60 s after they restarted: '$(readyz lab-c)'"
    fi
else
    fail f "lab-c stayed '$(readyz lab-c)' for 45 s with both other members stopped"
    dc start lab-a lab-b >/dev/null 2>&1
fi

# --- e: the stop timings -----------------------------------------------------------------------
stops=$(printf '%s; ' "${STOPS[@]}")
if ((STOP_BAD)); then
    fail e "a docker stop took ${STOP_LIMIT_MS} ms or more, or was killed: $stops"
else
    pass e "every docker stop under ${STOP_LIMIT_MS} ms: $stops"
fi

# --- summary -----------------------------------------------------------------------------------
npass=0
nfail=0
for r in "${RESULTS[@]}"; do
    [[ $r == PASS* ]] && npass=$((npass + 1)) || nfail=$((nfail + 1))
done
say "container acceptance test summary ($(($(date +%s) - T0)) s, image $SHUBNET_IMAGE, ${COMPOSE_CMD[*]})"
printf '%s\n' "${RESULTS[@]}"
echo "container-test: $npass passed, $nfail failed"
exit $((nfail > 0))
