#!/bin/bash
# Starts the node's dockerd. Without --privileged (refused on these
# machines), /sys and the cgroup hierarchies come read-only: remount them
# read-write, as dockerd and runc need (the container has the capabilities
# for it; see internal/dind). The daemon also listens on a socket in
# /run/dind, a folder the host mounts, so the tests reach it without TCP.
set -euo pipefail
mount -o remount,rw /sys
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
  [ -d "$d" ] && mount -o remount,bind,rw "$d" 2>/dev/null || true
done
mkdir -p /run/dind
rm -f /run/dind/docker.sock
exec dockerd --storage-driver=overlay2 --host=unix:///var/run/docker.sock --host=unix:///run/dind/docker.sock "$@"
