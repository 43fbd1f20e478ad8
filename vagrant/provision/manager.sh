#!/usr/bin/env bash
# The manager: initialise the swarm on the private network and leave the
# worker join token in the synced folder for the workers.
# usage: manager.sh <manager-ip>
set -euo pipefail
ip=$1
dir=/surge/vagrant/.swarm

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr "$ip" --listen-addr "$ip:2377"
fi
mkdir -p "$dir"
umask 077
docker swarm join-token -q worker >"$dir/worker-token.tmp"
mv "$dir/worker-token.tmp" "$dir/worker-token"
echo "$ip" >"$dir/manager"
echo "swarm manager at $ip:2377; worker token in vagrant/.swarm/worker-token"
