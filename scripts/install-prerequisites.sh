#!/usr/bin/env bash
# Installs the native lab's prerequisites on Debian/Ubuntu when they are
# missing: a JDK 17+ (Keycloak), Maven (fetches Keycloak), Python 3 with venv
# (installs OpenBao's `bao`), the PostgreSQL server, Go and a C compiler
# (build the Ory Hydra and ToolHive peers; Hydra v2.3.0 needs Go 1.22+,
# ToolHive v0.48.0 Go 1.26+, newer than some distributions' golang package); and for the tests,
# Chromium with its driver (the HTML report is checked in a real browser).
# Idempotent: installs nothing that is already there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ] 2>/dev/null; then missing+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null || missing+=(maven)
command -v python3 >/dev/null || missing+=(python3)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ] && [ -z "${GO_BIN:-}" ]; then missing+=(golang); fi
command -v cc >/dev/null || missing+=(gcc)
command -v curl >/dev/null || missing+=(curl)
# Tests only: the HTML report is checked in a real headless Chromium.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)

if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "missing: ${missing[*]}; install them with your package manager (see README)" >&2
    exit 2
  fi
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's postgresql package starts a cluster of its own on 5432; the lab
# runs its own cluster and does not need it.

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup or 'apt-get install cargo'" >&2
  exit 2
fi
echo "== prerequisites present"
