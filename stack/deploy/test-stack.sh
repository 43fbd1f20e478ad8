#!/usr/bin/env bash
# make test-stack:
#  1. the Vagrant cluster's offline checks (ruby -c, vagrant validate, its
#     structure), with ruby and vagrant installed from Debian's packages when
#     missing;
#  2. docker-stack.yml deployed on a real single-node Swarm of this machine's
#     Docker engine (internal/swarmtest), after the surge image and the
#     stand-ins for redis, postgres and haproxy are built. Without a reachable
#     engine it prints a SKIP line for this part and succeeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}

need=()
command -v ruby >/dev/null 2>&1 || need+=(ruby)
command -v vagrant >/dev/null 2>&1 || need+=(vagrant)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "test-stack: installing from Debian's packages: ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
SURGE_REQUIRE_VAGRANT_TOOLS=1 $GO test -count=1 ./vagrant/

if ! command -v docker >/dev/null 2>&1; then
  echo "SKIP test-stack: no docker CLI on this machine"
  exit 0
fi
if ! err=$(docker info --format '{{.ServerVersion}}' 2>&1); then
  echo "SKIP test-stack: no Docker engine reachable ($(echo "$err" | tail -n 1))"
  exit 0
fi
echo "test-stack: Docker engine $err"

start=$SECONDS
tag=swarmtest
make --no-print-directory image IMAGE=surge TAG=$tag GO="$GO"
echo "test-stack: image surge:$tag built in $((SECONDS - start))s"

t=$SECONDS
vars=$(stack/deploy/standins/build.sh)
echo "$vars" | sed 's/^/test-stack: /'
echo "test-stack: stand-in images ready in $((SECONDS - t))s"
# shellcheck disable=SC2046
export $(echo "$vars" | xargs)

SURGE_SWARM_TEST=1 SURGE_IMAGE=surge SURGE_TAG=$tag \
  $GO test -count=1 -v -timeout 40m -run 'TestSwarmStack' ./internal/swarmtest/
echo "test-stack: passed in $((SECONDS - start))s"
