#!/bin/bash
# The official haproxy image's entrypoint: master-worker mode, in the
# foreground, config at /usr/local/etc/haproxy/haproxy.cfg.
set -euo pipefail
if [ "${1#-}" != "$1" ]; then
  set -- haproxy "$@"
fi
if [ "$1" = haproxy ]; then
  shift
  set -- haproxy -W -db "$@"
fi
exec "$@"
