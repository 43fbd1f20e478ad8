#!/usr/bin/env bash
# On the manager, once every worker has joined: label the nodes, create the
# secrets, deploy docker-stack.yml, wait for it.
#   shard k          -> worker k (surge.shard.k=true), round robin if there
#                       are more shards than workers
#   postgres         -> the next worker, or the manager if there is none
# usage: deploy.sh <workers>
set -euo pipefail
workers=$1
cd /surge
stack=docker-stack.yml
secrets=/surge/vagrant/.swarm

for _ in $(seq 1 300); do
  ready=$(docker node ls --filter role=worker --format '{{.Hostname}} {{.Status}}' | grep -c ' Ready$' || true)
  [ "$ready" -ge "$workers" ] && break
  sleep 2
done
if [ "$ready" -lt "$workers" ]; then
  echo "only $ready of $workers workers are ready" >&2
  docker node ls >&2
  exit 1
fi

shards=$(grep -cE '^  web-[0-9]+:$' "$stack")
mapfile -t nodes < <(docker node ls --filter role=worker --format '{{.Hostname}}' | sort -V)
for k in $(seq 1 "$shards"); do
  node=${nodes[$(((k - 1) % ${#nodes[@]}))]}
  docker node update --label-add "surge.shard.$k=true" "$node" >/dev/null
  echo "shard $k -> $node"
done
if [ "${#nodes[@]}" -gt "$shards" ]; then pg=${nodes[$shards]}; else pg=$(hostname); fi
docker node update --label-add surge.postgres=true "$pg" >/dev/null
echo "postgres -> $pg"

umask 077
mkdir -p "$secrets"
for s in surge_postgres_password:24 surge_cookie_keys:32 surge_admin_password:16; do
  name=${s%%:*}
  if ! docker secret inspect "$name" >/dev/null 2>&1; then
    value=$(openssl rand -hex "${s##*:}")
    printf '%s' "$value" | docker secret create "$name" - >/dev/null
    if [ "$name" = surge_admin_password ]; then printf '%s\n' "$value" >"$secrets/admin-password"; fi
  fi
done

docker stack deploy -c "$stack" surge
echo "waiting for every service..."
for _ in $(seq 1 180); do
  pending=$(docker service ls --filter label=com.docker.stack.namespace=surge --format '{{.Replicas}}' |
    awk -F'[/ ]' '$1 != $2 || $2 == 0' | wc -l)
  [ "$pending" -eq 0 ] && break
  sleep 5
done
docker service ls --filter label=com.docker.stack.namespace=surge
if [ "$pending" -ne 0 ]; then
  echo "the stack has not converged; see docker service ps surge_<service>" >&2
  exit 1
fi
echo "surge is up: http://$(cat "$secrets/manager")/ (admin: user admin, password in vagrant/.swarm/admin-password)"
