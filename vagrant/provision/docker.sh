#!/usr/bin/env bash
# Every node: Docker from Debian's packages. The Docker API stays on its Unix
# socket; provisioning fails if anything would expose it over TCP.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! command -v docker >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io ca-certificates openssl >/dev/null
fi

mkdir -p /etc/docker
if [ ! -s /etc/docker/daemon.json ]; then
  cat >/etc/docker/daemon.json <<'JSON'
{
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
JSON
fi
if grep -q '"hosts"' /etc/docker/daemon.json ||
  grep -Eqs -- '(-H|--host)[ =]*tcp://' /lib/systemd/system/docker.service /etc/systemd/system/docker.service.d/*.conf /etc/default/docker; then
  echo "refusing to go on: the Docker API is configured to listen on TCP" >&2
  exit 1
fi

# Redis forks for AOF rewrites: let it (redis warns otherwise).
echo 'vm.overcommit_memory = 1' >/etc/sysctl.d/60-surge-redis.conf
sysctl -q -p /etc/sysctl.d/60-surge-redis.conf

systemctl enable --now docker >/dev/null 2>&1
usermod -aG docker vagrant 2>/dev/null || true
for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done

if ss -Hltn | awk '{print $4}' | grep -Eq ':(2375|2376)$'; then
  echo "refusing to go on: something listens on the Docker API's TCP ports" >&2
  exit 1
fi

# The surge image built on the host (see the Vagrantfile), when there is one;
# otherwise the stack pulls SURGE_IMAGE from its registry.
if [ -f /surge/.surge/surge-image.tar ]; then
  docker load -q -i /surge/.surge/surge-image.tar
fi
