#!/usr/bin/env bash
# Installs the servers surge runs locally, from Debian's packages, when
# missing, and any other commands named as arguments (deps.sh chromium ruby):
# one apt-get update and one install for all of them.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have redis-server || need+=(redis-server)
have haproxy || need+=(haproxy)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
id postgres >/dev/null 2>&1 || need+=(postgresql)
for pkg in "$@"; do
  case "$pkg" in
    chromium) have chromium || need+=(chromium) ;;
    prometheus) have promtool || need+=(prometheus) ;; # promtool checks the alert rules
    etcd-server) have etcd || need+=(etcd-server) ;;     # Patroni's store in the failover tests
    *) have "$pkg" || need+=("$pkg") ;;
  esac
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing from Debian's packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed in ${SECONDS}s"
# The packages start system-wide services; surge runs private instances
# instead (etcd and Patroni too), and needs only promtool from prometheus.
for svc in redis-server haproxy postgresql prometheus etcd patroni; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
  else
    $sudo service "$svc" stop >/dev/null 2>&1 || true
  fi
done
