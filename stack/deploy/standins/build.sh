#!/usr/bin/env bash
# Builds the stand-ins for the official redis, postgres and haproxy images
# from Debian's packages, for an engine that can pull nothing:
#
#   1. debootstrap a minimal bookworm root filesystem with redis-server,
#      postgresql-15 and haproxy (Debian's mirror is the only network used);
#   2. `docker import` it as surge-standin/base:<hash>;
#   3. build one small image per role on top of it (./<role>/Dockerfile: an
#      entrypoint that behaves like the official image's where the stack
#      relies on it).
#
# <hash> is a content hash of this directory and the package list, so a second
# run reuses the images (a few hundred milliseconds), and any change to the
# scripts rebuilds them. On a fresh machine everything is built from scratch.
#
# Prints, on stdout, the variables that make docker-stack.yml use them:
#   REDIS_IMAGE=surge-standin/redis:<hash> POSTGRES_IMAGE=… HAPROXY_IMAGE=…
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=redis-server,postgresql-15,haproxy
roles=(redis postgres haproxy)
log() { echo "standins: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

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

base="surge-standin/base:$hash"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap from Debian's packages"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  work=$(mktemp -d /var/tmp/surge-standin.XXXXXX)
  trap '$sudo rm -rf "$work"' EXIT
  root="$work/root"
  log "debootstrap $suite ($packages) from $mirror"
  start=$SECONDS
  # No service is started inside the chroot, and postgresql-common creates
  # no cluster: the postgres entrypoint initialises one at first start.
  $sudo mkdir -p "$root/usr/sbin" "$root/etc/postgresql-common/createcluster.d"
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$root/usr/sbin/policy-rc.d" >/dev/null
  $sudo chmod +x "$root/usr/sbin/policy-rc.d"
  echo 'create_main_cluster = false' | $sudo tee "$root/etc/postgresql-common/createcluster.d/surge.conf" >/dev/null
  if ! $sudo debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    log "debootstrap failed"
    exit 1
  fi
  log "debootstrap done in $((SECONDS - start))s; slimming and importing"
  $sudo rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
    "$root"/var/log/*.log "$root"/etc/postgresql/15 "$root"/var/lib/postgresql/15 "$root/usr/sbin/policy-rc.d"
  $sudo tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --message "debootstrap $suite minbase + $packages" - "$base" >/dev/null
fi

for role in "${roles[@]}"; do
  log "building surge-standin/$role:$hash"
  docker build -q --pull=false --build-arg BASE="$base" --label "surge.standin.hash=$hash" \
    -t "surge-standin/$role:$hash" "$here/$role" >/dev/null
done
log "built in $SECONDS s"
emit
