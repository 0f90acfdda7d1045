#!/usr/bin/env bash
# Prepares a Docker engine with Tessera's test images, offline (no registry is
# reachable): installs docker.io and debootstrap if missing, starts a dockerd
# whose data root is a persistent cache dir, builds the base image
# tessera-test/python:bookworm by debootstrap (once; the root filesystem tarball
# is cached too), tags it tessera/base-python:bookworm (the base of extension images) and tessera-test/kaapana-operator:1 from tests/images/.
#
# Idempotent; run as root. Progress goes to stderr; the last stdout line is
#   export DOCKER_HOST=unix://<cache dir>/docker.sock
# so that callers can:  eval "$(scripts/docker-test-env.sh | tail -1)"
#
# Environment: TESSERA_DOCKER_DIR (default /var/cache/tessera-ci/docker),
# TESSERA_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

DIR=${TESSERA_DOCKER_DIR:-/var/cache/tessera-ci/docker}
MIRROR=${TESSERA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOCK=$DIR/docker.sock
# The docker first on PATH may be an unrelated client: always use Debian's.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
BASE_IMAGE=tessera-test/python:bookworm
BASE_TAR=$DIR/rootfs-python-bookworm.tar
OPERATOR_IMAGE=tessera-test/kaapana-operator:1
# The base image Tessera's extensions build FROM (like Kaapana's local-only/base-python-cpu):
# the same root filesystem under the name extensions use.
EXT_BASE_IMAGE=tessera/base-python:bookworm

log() { echo "docker-test-env: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts dockerd)"

missing=()
[ -x "$DOCKERD" ] && [ -x "$DOCKER" ] || missing+=(docker.io)
[ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
command -v flock >/dev/null && command -v setsid >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p "$DIR"
# Two concurrent callers (e.g. parallel CI jobs) would race on dockerd and the builds.
exec 9>"$DIR/.lock"
flock 9

export DOCKER_HOST=unix://$SOCK
engine_up() { timeout 5 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if ! engine_up; then
  if [ -f "$DIR/dockerd.pid" ]; then
    old_pid=$(cat "$DIR/dockerd.pid")
    # A dockerd of ours that is still starting or just dying gets a few seconds to decide;
    # a pid file whose process is gone, or is not dockerd (pid reused), is stale.
    for _ in $(seq 1 50); do
      grep -qs dockerd "/proc/$old_pid/cmdline" || break
      engine_up && break
      sleep 0.2
    done
    if ! engine_up && grep -qs dockerd "/proc/$old_pid/cmdline"; then
      die "dockerd (pid $old_pid) holds $DIR but does not answer on $SOCK; see $DIR/dockerd.log"
    fi
  fi
fi
if engine_up; then
  log "dockerd answers on $SOCK"
else
  start_dockerd() {
    # A dockerd killed hard (the end of a session) leaves its containerd and runtime
    # state behind; both belong to no running daemon now and would block a new one.
    pkill -9 -f "containerd --config $DIR/exec/" 2>/dev/null || true
    sleep 0.2
    rm -rf "$DIR/exec" "$SOCK" "$DIR/dockerd.pid"
    log "starting dockerd (data root $DIR/root, log $DIR/dockerd.log)"
    # setsid + closed fds: dockerd must outlive this script and must not hold the
    # caller's $(...) pipe or our lock open.
    setsid "$DOCKERD" --data-root "$DIR/root" --exec-root "$DIR/exec" -H "unix://$SOCK" \
      --pidfile "$DIR/dockerd.pid" </dev/null >>"$DIR/dockerd.log" 2>&1 9>&- &
    local pid=$!
    for _ in $(seq 1 150); do
      engine_up && return 0
      kill -0 "$pid" 2>/dev/null || { tail -5 "$DIR/dockerd.log" >&2; log "dockerd exited during startup"; return 1; }
      sleep 0.2
    done
    tail -5 "$DIR/dockerd.log" >&2
    log "dockerd did not answer within 30 s"
    kill -9 "$pid" 2>/dev/null || true
    return 1
  }
  start_dockerd || { log "trying once more"; start_dockerd; } || die "could not start dockerd; see $DIR/dockerd.log"
  log "dockerd $("$DOCKER" version --format '{{.Server.Version}}') is up"
fi

has_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

if has_image "$BASE_IMAGE"; then
  log "$BASE_IMAGE is present"
else
  if [ ! -s "$BASE_TAR" ]; then
    log "debootstrap of Debian bookworm (minbase + python3) from $MIRROR; about a minute"
    rootfs=$(mktemp -d "$DIR/rootfs.XXXXXX")
    trap 'rm -rf "$rootfs"' EXIT
    /usr/sbin/debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$MIRROR" >&2 \
      || die "debootstrap failed (is $MIRROR reachable?)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    # Write then rename, so that an interrupted run never leaves a truncated cache.
    tar -C "$rootfs" --numeric-owner -cf "$BASE_TAR.tmp" .
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    rm -rf "$rootfs"
    trap - EXIT
  fi
  log "importing $BASE_IMAGE from $BASE_TAR"
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/sh"]' \
    "$BASE_TAR" "$BASE_IMAGE" >&2
fi

has_image "$EXT_BASE_IMAGE" || "$DOCKER" tag "$BASE_IMAGE" "$EXT_BASE_IMAGE"

log "building $OPERATOR_IMAGE (cached by the engine)"
# The classic builder resolves FROM against local images only, which is what an offline machine needs.
DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$OPERATOR_IMAGE" "$REPO/tests/images/kaapana-operator" >&2

log "ready: $BASE_IMAGE, $EXT_BASE_IMAGE, $OPERATOR_IMAGE"
echo "export DOCKER_HOST=unix://$SOCK"
