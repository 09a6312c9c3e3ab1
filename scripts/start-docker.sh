#!/usr/bin/env bash
# Makes a Docker engine answer, for the containers runtime and its live test:
# installs Debian's docker.io (a real engine), debootstrap (the base of the
# lab's images) and docker-compose (docker/compose.yaml) when missing, and starts dockerd when no engine answers.
# Prints the DOCKER_HOST to use on stdout (progress goes to stderr).
#
# An engine this script starts listens on its own socket,
# /run/fourleg-docker/docker.sock, not the default one, so that only what is
# pointed at it (DOCKER_HOST) uses it: `--runtime auto` elsewhere on the
# machine keeps choosing as before. Stop it with
#   kill "$(cat /run/fourleg-docker/dockerd.pid)"
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
say() { echo "start-docker: $*" >&2; }

answers=no
if command -v docker >/dev/null && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  answers=yes
fi

missing=()
if [ $answers = no ] && ! command -v dockerd >/dev/null; then missing+=(docker.io); fi
command -v debootstrap >/dev/null || missing+=(debootstrap)
# docker/compose.yaml by hand (Debian 12 ships docker-compose 1.29).
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { say "missing ${missing[*]}; install them with your package manager"; exit 2; }
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq >&2
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if [ $answers = yes ]; then
  say "an engine answers ($(docker version --format '{{.Server.Version}}'))"
  echo "${DOCKER_HOST:-unix:///var/run/docker.sock}"
  exit 0
fi

dir=/run/fourleg-docker
sock="unix://$dir/docker.sock"
if ! DOCKER_HOST="$sock" docker version >/dev/null 2>&1; then
  $SUDO mkdir -p "$dir"
  say "starting dockerd on $sock (log: /var/log/fourleg-dockerd.log)"
  $SUDO sh -c "nohup dockerd -H '$sock' --pidfile '$dir/dockerd.pid' >/var/log/fourleg-dockerd.log 2>&1 &"
  for _ in $(seq 60); do
    DOCKER_HOST="$sock" docker version >/dev/null 2>&1 && break
    sleep 1
  done
fi
DOCKER_HOST="$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || {
  say "dockerd did not answer within 60s; see /var/log/fourleg-dockerd.log"
  tail -20 /var/log/fourleg-dockerd.log >&2 || true
  exit 2
}
echo "$sock"
