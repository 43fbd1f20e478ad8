#!/usr/bin/env bash
# Builds the stand-ins for the official redis, postgres, haproxy and
# prom/prometheus images from Debian's packages, for an engine that can pull
# nothing, and the Swarm node image of the multi-node Swarm test (./node:
# Debian's docker.io):
#
#   1. ./base.sh: debootstrap a minimal bookworm root filesystem with
#      redis-server, postgresql-15 and haproxy (Debian's mirror is the only
#      network used), and `docker import` it as surge-standin/base:<its hash>,
#      unless that image exists;
#   2. build one image per role on top of it (./<role>/Dockerfile: an
#      entrypoint that behaves like the official image's where the stack
#      relies on it; the node installs docker.io, and prometheus Debian's
#      prometheus, from Debian's mirror), the five at once.
#
# <hash> is a content hash of this directory and the package list, so a second
# run reuses the images (a few hundred milliseconds), and any change to the
# scripts rebuilds them; the base's own hash covers only base.sh and the
# packages, so a change to a role keeps it. On a fresh machine everything is
# built from scratch.
#
# Prints, on stdout, the variables that make docker-stack.yml use them:
#   REDIS_IMAGE=surge-standin/redis:<hash> POSTGRES_IMAGE=… HAPROXY_IMAGE=…
#   PROMETHEUS_IMAGE=… and NODE_IMAGE=surge-standin/node:<hash>.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=redis-server,postgresql-15,haproxy
roles=(redis postgres haproxy prometheus node)
log() { echo "standins: $*" >&2; }

hash=$({
  echo "$suite $packages"
  cd "$here" && find . -type f | LC_ALL=C sort | xargs sha256sum
} | sha256sum | cut -c1-12)

emit() {
  for role in "${roles[@]}"; do
    echo "$(echo "$role" | tr a-z A-Z)_IMAGE=surge-standin/$role:$hash"
  done
}

missing=0
for role in "${roles[@]}"; do
  docker image inspect "surge-standin/$role:$hash" >/dev/null 2>&1 || missing=1
done
if [ $missing -eq 0 ]; then
  log "cached: surge-standin/{${roles[*]// /,}}:$hash"
  emit
  exit 0
fi

base=$("$here/base.sh" "$suite" "$mirror" "$packages")

# The builds share the base and wait mostly on the engine's disk and the
# mirror: in parallel they take about as long as the longest (the node).
pids=()
for role in "${roles[@]}"; do
  log "building surge-standin/$role:$hash"
  docker build -q --pull=false --build-arg BASE="$base" --label "surge.standin.hash=$hash" \
    -t "surge-standin/$role:$hash" "$here/$role" >/dev/null &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { log "building surge-standin/${roles[$i]}:$hash failed"; failed=1; }
done
[ $failed -eq 0 ] || exit 1
log "built in $SECONDS s"
emit
