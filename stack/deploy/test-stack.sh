#!/usr/bin/env bash
# make test-stack:
#  1. the Vagrant cluster's offline checks (ruby -c, vagrant validate, its
#     structure), with ruby and vagrant installed from Debian's packages when
#     missing;
#  2. docker-stack.yml deployed on a real Swarm of three Docker-in-Docker
#     nodes run by this machine's Docker engine (internal/swarmtest, on
#     internal/dind), after the surge image, the stand-ins for redis,
#     postgres, haproxy and prometheus, and the node image are built. Without a
#     reachable engine it prints a SKIP line for this part and succeeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}

# Is there an engine to deploy on? Asked first, so that everything missing
# (debootstrap only with an engine) comes from one apt-get run.
engine=""
if ! command -v docker >/dev/null 2>&1; then
  skip="no docker CLI on this machine"
elif ! engine=$(docker info --format '{{.ServerVersion}}' 2>&1); then
  skip="no Docker engine reachable ($(echo "$engine" | tail -n 1))"
  engine=""
fi

t=$SECONDS
need=()
command -v ruby >/dev/null 2>&1 || need+=(ruby)
command -v vagrant >/dev/null 2>&1 || need+=(vagrant)
if [ -n "$engine" ] && ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
  need+=(debootstrap)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "test-stack: installing from Debian's packages: ${need[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
SURGE_REQUIRE_VAGRANT_TOOLS=1 $GO test -count=1 ./vagrant/
echo "test-stack: Vagrant checks in $((SECONDS - t))s"

if [ -z "$engine" ]; then
  echo "SKIP test-stack: $skip"
  exit 0
fi
echo "test-stack: Docker engine $engine"

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

# The nodes alone first (formed, killed, restarted, replaced), then the
# stack on them; one package at a time.
t=$SECONDS
SURGE_SWARM_TEST=1 SURGE_IMAGE=surge SURGE_TAG=$tag \
  $GO test -count=1 -p 1 -v -timeout 45m -run 'TestClusterKillRestartReplace|TestSwarmStack' ./internal/dind/ ./internal/swarmtest/
echo "test-stack: Swarm test in $((SECONDS - t))s"
echo "test-stack: passed in $((SECONDS - start))s"
