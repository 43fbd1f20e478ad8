#!/usr/bin/env bash
# A worker: wait for the manager's join token in the synced folder, then join.
# usage: worker.sh <manager-ip> <this-node-ip>
set -euo pipefail
manager=$1
ip=$2
token=/surge/vagrant/.swarm/worker-token

if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = active ]; then
  echo "already in the swarm"
  exit 0
fi
for _ in $(seq 1 600); do
  [ -s "$token" ] && break
  sleep 1
done
if [ ! -s "$token" ]; then
  echo "no join token in $token after 10 minutes: is the manager up, and is the synced folder two-way?" >&2
  exit 1
fi
docker swarm join --token "$(cat "$token")" --advertise-addr "$ip" --listen-addr "$ip:2377" "$manager:2377"
