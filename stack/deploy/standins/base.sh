#!/usr/bin/env bash
# Builds the stand-ins' base image, surge-standin/base:<hash>, unless it
# exists: a minimal Debian root filesystem (debootstrap, Debian's mirror the
# only network used) with redis-server, postgresql-15 and haproxy, passed to
# `docker import`. <hash> covers only what goes into it (the suite, the
# packages and this script), so a change to the roles' files (build.sh and
# ./<role>/) does not debootstrap again.
#
# Usage: base.sh SUITE MIRROR PACKAGES; prints the image's name on stdout.
set -euo pipefail
suite=$1 mirror=$2 packages=$3
log() { echo "standins: $*" >&2; }

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

hash=$({ echo "$suite $packages"; cat "$0"; } | sha256sum | cut -c1-12)
base="surge-standin/base:$hash"
if docker image inspect "$base" >/dev/null 2>&1; then
  echo "$base"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
  log "installing debootstrap from Debian's packages"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
work=$(mktemp -d /var/tmp/surge-standin.XXXXXX)
# Removing the root filesystem takes a while on a busy disk, and nothing
# waits for it: in the background.
trap '$sudo rm -rf "$work" </dev/null >/dev/null 2>&1 &' EXIT
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
log "base $base in $((SECONDS - start))s"
echo "$base"
