#!/usr/bin/env bash
# Fuzzes what fourleg reads from people and from targets nobody trusts, for a
# bounded time each: scenario TOML, profile TOML, JWT decoding and the
# evidence redactor (targets in fuzz/fuzz_targets/). Seeds are the committed
# suites and profiles. A crash fails the run and leaves the input under
# fuzz/artifacts/<target>/: turn it into a regression test in the crate.
#
#   scripts/fuzz.sh              # 60 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh jwt_decode
#
# Needs the nightly toolchain (rustup) and cargo-fuzz, which is installed
# into $FOURLEG_CACHE/tools when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(scenario_toml profile_toml jwt_decode evidence_redactor)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi
tools="${FOURLEG_CACHE:-$HOME/.cache/fourleg}/tools"
export PATH="$tools/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz into $tools (once)"
  cargo install --locked --quiet --root "$tools" cargo-fuzz@0.13.2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{scenario_toml,profile_toml,jwt_decode,evidence_redactor}
i=0; for f in suites/*/*.toml; do cp "$f" "$work/scenario_toml/$i"; i=$((i+1)); done
i=0; for f in fixtures/targets/*.toml crates/fourleg-testbed/testbed.toml; do cp "$f" "$work/profile_toml/$i"; i=$((i+1)); done
printf '%s' 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3' > "$work/jwt_decode/0"
printf '%s' '{"error":"invalid_request","error_description":"bad eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3."}' > "$work/evidence_redactor/0"
printf '%s' '{"access_token":"opaque-0123456789","refresh_token":"eyJhbGciOiJSUzI1NiJ9.e30.MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}' > "$work/evidence_redactor/1"
# A token that is also the tail of a longer one (a crash found in CI).
printf '%s' '{"note":"eyJhbGciOiJSUzI1NiJ9.e30.MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3 eyJhbGciOiJFUzI1NiJ9.e30.QUFBQUFBQUFBQUFBQUFBQUFBeyJhbGciOiJSUzI1NiJ9.e30.MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"}' > "$work/evidence_redactor/2"

# The fuzz crate has a lock file of its own: it must be current, or the run
# would rewrite it (and the tree would no longer be the one committed).
if ! cargo metadata --locked --offline --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null 2>&1 \
   && ! cargo metadata --locked --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null; then
  echo "fuzz/Cargo.lock is out of date: run 'cargo metadata --manifest-path fuzz/Cargo.toml' and commit it" >&2
  exit 1
fi

for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  log="$work/$t.log"
  # No sanitizer: the crates forbid unsafe code, and an uninstrumented
  # build is several times faster to build and to run on two cores.
  status=0
  cargo +nightly fuzz run --sanitizer none --fuzz-dir fuzz "$t" "$work/$t" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_runs|peak_rss_mb)|^Done|panicked|SUMMARY" "$log" | tail -6 || true
  if [ "$status" != 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $t failed (exit $status); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
