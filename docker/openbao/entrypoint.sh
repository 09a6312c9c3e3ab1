#!/bin/sh
# As the official image's entrypoint: `server` runs `bao server` on
# /openbao/config, after writing BAO_LOCAL_CONFIG (JSON) there; the server
# runs as the `openbao` user, which owns /openbao/file (the raft data).
set -eu
if [ "${1:-}" = server ]; then
  shift
  if [ -n "${BAO_LOCAL_CONFIG:-}" ]; then
    printf '%s' "$BAO_LOCAL_CONFIG" > /openbao/config/local.json
  fi
  set -- bao server -config=/openbao/config "$@"
fi
if [ "$(id -u)" = 0 ]; then
  chown -R openbao:openbao /openbao/config /openbao/file
  exec setpriv --reuid=openbao --regid=openbao --init-groups "$@"
fi
exec "$@"
