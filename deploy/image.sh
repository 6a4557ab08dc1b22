#!/usr/bin/env bash
# `make image`: build the container image pynats-broker:<version> without a Docker engine, and
# smoke-test it the way the StatefulSet runs it.
#
#   1. mmdebstrap: a Debian bookworm root filesystem with python3 and python3-venv, from
#      Debian's packages; imported as a local base image.
#   2. the wheels: ours, and every dependency's for CPython 3.11 on manylinux x86_64 (the
#      base's Python), from PyPI, into the build context.
#   3. buildah bud --isolation chroot on deploy/Dockerfile, under `unshare -n`: no network at all,
#      so the build can only use the base and the wheels.
#   4. podman (runc) runs it as the pod does (read-only root, uid 10001, POD_NAME, the config
#      mounted read-only, volumes at /data, /var/run/nats and /tmp, no network) and checks
#      /healthz from inside the container, `broker --version`, that pip is gone, and that lame
#      duck (the preStop hook) ends the server by itself.
#
# Keeps the image (localhost/pynats-broker:<version>) and writes it as an OCI archive to
# build/image/; removes the base image, the test container and the temporary files on exit.
# Root only (mmdebstrap, buildah and podman as root); installs them with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
SUITE=bookworm
TARGET_PYTHON=3.11          # bookworm's python3
WORK=build/image
RUN_ID=$$
BASE_IMAGE=localhost/pynats-base:$SUITE-$RUN_ID
CONTAINER=pynats-broker-smoke-$RUN_ID
STARTED=$(date +%s)

step() { printf '\n==> [%4ss] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "make image needs root (mmdebstrap, buildah and podman run as root here)"

cleanup() {
    status=$?
    podman rm --force --ignore "$CONTAINER" >/dev/null 2>&1 || true
    podman rmi --force "$BASE_IMAGE" >/dev/null 2>&1 || true
    rm -rf "$WORK/rootfs.tar" "$WORK/context" "$WORK/smoke"
    exit $status
}
trap cleanup EXIT

missing=()
for tool in mmdebstrap buildah podman runc; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && \
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

rm -rf "$WORK/context" "$WORK/smoke"
mkdir -p "$WORK/context/wheels"

step "wheel of this checkout"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/context/wheels" .
wheel=$(ls "$WORK"/context/wheels/pynats_broker-*.whl)
VERSION=$(basename "$wheel" | cut -d- -f2)
IMAGE=localhost/pynats-broker:$VERSION
echo "    $(basename "$wheel") -> image $IMAGE"

step "dependency wheels for CPython $TARGET_PYTHON, manylinux x86_64 (PyPI)"
"$PYTHON" -m pip download --quiet --dest "$WORK/context/wheels" --only-binary=:all: \
    --python-version "$TARGET_PYTHON" --implementation cp --abi "cp${TARGET_PYTHON/./}" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 "$wheel"
ls "$WORK/context/wheels" | sed 's/^/    /'

step "mmdebstrap: $SUITE root filesystem with python3, python3-venv"
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    "$SUITE" "$WORK/rootfs.tar"
podman import --quiet "$WORK/rootfs.tar" "$BASE_IMAGE" >/dev/null
rm -f "$WORK/rootfs.tar"
echo "    base image $BASE_IMAGE"

step "buildah bud (chroot isolation, no network: unshare -n)"
podman rmi --force "$IMAGE" >/dev/null 2>&1 || true
unshare -n -- buildah bud --quiet --isolation chroot --pull=never \
    --build-arg "BASE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" \
    --label "org.opencontainers.image.title=pynats-broker" \
    --label "org.opencontainers.image.version=$VERSION" \
    -f deploy/Dockerfile -t "$IMAGE" "$WORK/context" >/dev/null
build_seconds=$(($(date +%s) - STARTED))
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "    built $IMAGE: $((size / 1000000)) MB"

step "smoke test: run it as the pod does"
# The ConfigMap's file, and the volumes the pod gets (the data PVC, two emptyDirs).
mkdir -p "$WORK/smoke/etc-nats" "$WORK/smoke/data" "$WORK/smoke/run"
cp deploy/nats.conf "$WORK/smoke/etc-nats/nats.conf"
chown 10001:10001 "$WORK/smoke/data" "$WORK/smoke/run"
podman --runtime runc run --detach --name "$CONTAINER" --network none --read-only \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    --user 10001:10001 --env POD_NAME=nats-0 \
    --volume "$PWD/$WORK/smoke/etc-nats:/etc/nats:ro" \
    --volume "$PWD/$WORK/smoke/data:/data" \
    --volume "$PWD/$WORK/smoke/run:/var/run/nats" \
    --tmpfs /tmp \
    "$IMAGE" >/dev/null

# GET a path on the monitor port from inside the container; prints "<status> <body>" on one
# line (status 0: no answer).
probe() {
    podman exec "$CONTAINER" python3 -c '
import sys, urllib.error, urllib.request
def show(status, body):
    print(status, " ".join(body.split())[:160])
try:
    with urllib.request.urlopen("http://127.0.0.1:8222" + sys.argv[1], timeout=5) as r:
        show(r.status, r.read(400).decode())
except urllib.error.HTTPError as e:
    show(e.code, e.read(400).decode())
except OSError as e:
    show(0, str(e))
' "$1"
}

# Poll (bounded) until the server answers: the startup probe's question.
deadline=$(($(date +%s) + 60))
until [ "$(probe '/healthz?js-enabled-only=true' | cut -d' ' -f1)" = 200 ]; do
    if [ "$(date +%s)" -ge "$deadline" ] || \
       [ "$(podman inspect --format '{{.State.Running}}' "$CONTAINER")" != true ]; then
        podman logs "$CONTAINER" 2>&1 | tail -20
        fail "/healthz?js-enabled-only=true never answered 200"
    fi
    sleep 1  # polling interval of a bounded wait, not a synchronisation guess
done
for path in '/healthz?js-enabled-only=true' '/healthz?js-enabled=true' \
            '/healthz?js-server-only=true' '/healthz'; do
    echo "    GET $path -> $(probe "$path")"
done
# Alone, with its peers unreachable, the pod is up but has no meta leader: the full /healthz
# must say so, while liveness and startup pass (what the probes rely on).
[ "$(probe '/healthz?js-server-only=true' | cut -d' ' -f1)" = 200 ] || fail "liveness check"
[ "$(probe '/healthz' | cut -d' ' -f1)" = 503 ] || fail "full /healthz should be 503 without peers"
metrics=$(probe /metrics | cut -d' ' -f1)
echo "    GET /metrics -> $metrics"
[ "$metrics" = 200 ] || fail "/metrics"

version_output=$(podman exec "$CONTAINER" broker --version)
echo "    broker --version -> $version_output"
uid=$(podman exec "$CONTAINER" id -u)
echo "    runs as uid $uid"
[ "$uid" = 10001 ] || fail "not running as uid 10001"
if podman exec "$CONTAINER" python3 -m pip --version >/dev/null 2>&1; then
    fail "pip is still in the image's environment"
fi
echo "    no pip in the image's environment"

step "smoke test: preStop (lame duck), then the kubelet's SIGTERM, with a client connected"
# A client for lame duck to move: with none the server exits at once, and SIGTERM would have
# nothing to cut short.
podman exec --detach "$CONTAINER" python3 -c '
import socket, time
s = socket.create_connection(("127.0.0.1", 4222))
s.sendall(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
time.sleep(120)  # hold the connection; the server closes it in lame duck
' >/dev/null
deadline=$(($(date +%s) + 30))
connections() {
    podman exec "$CONTAINER" python3 -c '
import json, urllib.request
print(json.load(urllib.request.urlopen("http://127.0.0.1:8222/connz", timeout=5))["num_connections"])'
}
until [ "$(connections)" = 1 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the test client never connected"
    sleep 0.5  # polling interval of a bounded wait
done
ldm_started=$(date +%s)
podman exec "$CONTAINER" broker --signal ldm=/var/run/nats/nats.pid
podman kill --signal TERM "$CONTAINER" >/dev/null
exit_code=$(timeout 60 podman wait "$CONTAINER") || fail "still running 60 s after lame duck"
took=$(($(date +%s) - ldm_started))
echo "    exited with $exit_code after $took s (lame duck grace 10 s, duration 30 s; pod grace 60 s)"
[ "$exit_code" = 0 ] || { podman logs "$CONTAINER" 2>&1 | tail -20; fail "exit code $exit_code"; }
# Lame duck waits its grace period (10 s) before closing clients: an exit before that means
# the SIGTERM cut it short.
[ "$took" -ge 10 ] || fail "SIGTERM ended lame duck early ($took s)"

step "OCI archive"
rm -f "$WORK/pynats-broker-$VERSION.oci.tar"
podman save --quiet --format oci-archive -o "$WORK/pynats-broker-$VERSION.oci.tar" "$IMAGE"
echo "    $WORK/pynats-broker-$VERSION.oci.tar"

step "done: $IMAGE, $((size / 1000000)) MB, built in ${build_seconds} s, $(($(date +%s) - STARTED)) s in all"
