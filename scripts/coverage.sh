#!/usr/bin/env bash
# Line coverage of the Rust workspace, with rustc's own instrumentation
# (-C instrument-coverage: its profiler runtime ships with the toolchain) and
# llvm-profdata / llvm-cov from Debian's llvm-<N>, where N is the LLVM major
# version rustc was built with (`rustc -vV`); installed with apt-get when missing.
# No toolchain component is downloaded.
#
#   scripts/coverage.sh           `make coverage`: builds the release binary and the
#                                 tests instrumented, runs `cargo test --workspace`, then
#                                 the report below plus an HTML report
#   scripts/coverage.sh report    the report of the profiles collected so far: the
#                                 summary table (printed, and written to
#                                 target/coverage/summary.md) and the thresholds
#                                 (scripts/coverage_report.py); exits 1 when one is missed
#
# `make test` sources this file: it builds and tests through `coverage_cargo` and
# runs every later stage against the same instrumented release binary, so the
# tests run once and the report counts all of them.
#
# Instrumented builds go to target/coverage (their flags differ, so they would
# otherwise rebuild target/release and target/debug each time). Every
# instrumented process writes its counters under target/coverage/profiles in
# LLVM's continuous mode (`%c`, with -runtime-counter-relocation): the counters
# are mapped onto the file, so a process that is killed (the tests end each
# spawned binary with SIGKILL, and the crash tests mean to) still leaves its
# profile; `%4m` merges the processes of one binary into at most four files.
set -euo pipefail

COV_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COV_TARGET="${CARGO_TARGET_DIR:-$COV_ROOT/target}"
case "$COV_TARGET" in /*) ;; *) COV_TARGET="$COV_ROOT/$COV_TARGET" ;; esac
COV_TARGET="$COV_TARGET/coverage"
COV_PROFILES="$COV_TARGET/profiles"
COV_FLAGS="-C instrument-coverage -C llvm-args=-runtime-counter-relocation"

# coverage_tools: sets COV_LLVM to the bin directory of Debian's llvm-<N> matching
# rustc's LLVM (profiles are read only by the same major version), installing it
# with apt-get when missing.
coverage_tools() {
  local major
  major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
  [ -n "$major" ] || { echo "coverage: cannot read rustc's LLVM version (rustc -vV)" >&2; return 1; }
  COV_LLVM="/usr/lib/llvm-$major/bin"
  if [ ! -x "$COV_LLVM/llvm-cov" ] || [ ! -x "$COV_LLVM/llvm-profdata" ]; then
    command -v apt-get >/dev/null ||
      { echo "coverage: llvm-$major (llvm-cov, llvm-profdata) is required and apt-get is missing" >&2; return 1; }
    echo "coverage: installing llvm-$major from Debian (llvm-cov and llvm-profdata for rustc's LLVM $major)" >&2
    if ! apt-cache show "llvm-$major" >/dev/null 2>&1; then apt-get update -qq >&2; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "llvm-$major" >&2 || {
      echo "coverage: apt-get install llvm-$major failed; rustc $(rustc -V) needs LLVM $major's llvm-cov and llvm-profdata" >&2
      return 1
    }
  fi
}

# coverage_reset: forgets the profiles of earlier runs and sets LLVM_PROFILE_FILE
# (exported) for every instrumented process from now on.
coverage_reset() {
  rm -rf "$COV_PROFILES"
  mkdir -p "$COV_PROFILES"
  export LLVM_PROFILE_FILE="$COV_PROFILES/flashcore-%4m%c.profraw"
}

# coverage_cargo ARGS…: cargo with the instrumentation flags, in target/coverage.
# Test binaries inherit the environment, so the release binary that tests/lib.rs
# (re)builds from a test is the instrumented one in target/coverage/release.
coverage_cargo() {
  CARGO_TARGET_DIR="$COV_TARGET" RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }$COV_FLAGS" cargo "$@"
}

# coverage_report [--html]: merges the profiles, exports line coverage of every
# instrumented test binary and of the release binary, prints the summary table and
# checks the thresholds (scripts/coverage_report.py).
coverage_report() {
  local html="${1:-}"
  shopt -s nullglob
  local profiles=("$COV_PROFILES"/*.profraw)
  shopt -u nullglob
  [ ${#profiles[@]} -gt 0 ] ||
    { echo "coverage: no profiles in $COV_PROFILES: run the instrumented tests first (make coverage)" >&2; return 1; }
  "$COV_LLVM/llvm-profdata" merge -sparse -o "$COV_TARGET/flashcore.profdata" "${profiles[@]}"

  # The objects: the test executables of this build (cargo names them), and the
  # release binary the black-box stages ran.
  local objects=() exe
  while IFS= read -r exe; do objects+=(-object "$exe"); done < <(
    coverage_cargo test --workspace --locked --no-run --message-format=json 2>/dev/null |
      python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["executable"])'
  )
  [ -x "$COV_TARGET/release/flashcore" ] && objects+=(-object "$COV_TARGET/release/flashcore")
  [ ${#objects[@]} -gt 0 ] || { echo "coverage: no instrumented binaries in $COV_TARGET" >&2; return 1; }

  # Our sources only: dependencies, the standard library and the test crates' own
  # files are not what the figures are about.
  local ignore='(/\.cargo/|/rustc/|^/usr/|/tests/|/benches/|/examples/)'
  # (llvm-cov warns of "mismatched data" for generic functions some binary left
  # unused: their counters live in the binary that used them.)
  "$COV_LLVM/llvm-cov" export -format=lcov -instr-profile="$COV_TARGET/flashcore.profdata" \
    -ignore-filename-regex="$ignore" "${objects[@]}" >"$COV_TARGET/lcov.info" \
    2> >(grep -v 'functions have mismatched data' >&2)
  if [ "$html" = --html ]; then
    "$COV_LLVM/llvm-cov" show -format=html -output-dir="$COV_TARGET/html" -show-line-counts-or-regions \
      -instr-profile="$COV_TARGET/flashcore.profdata" -ignore-filename-regex="$ignore" "${objects[@]}" >/dev/null \
      2> >(grep -v 'functions have mismatched data' >&2)
    echo "HTML report: $COV_TARGET/html/index.html"
  fi
  python3 "$COV_ROOT/scripts/coverage_report.py" --root "$COV_ROOT" --lcov "$COV_TARGET/lcov.info" \
    --frontend "$COV_ROOT/frontend/coverage/coverage-summary.json" --out "$COV_TARGET/summary.md"
}

coverage_main() {
  cd "$COV_ROOT"
  coverage_tools
  case "${1:-}" in
    report)
      coverage_report
      ;;
    "")
      coverage_reset
      printf '\n==> %s\n' "the release binary and the tests, instrumented (target/coverage)"
      coverage_cargo build --release --locked -p flashcore-http --bin flashcore
      printf '\n==> %s\n' "cargo test --workspace, instrumented"
      coverage_cargo test --workspace --locked
      printf '\n==> %s\n' "frontend unit tests with coverage (vitest.config.ts)"
      local frontend=0
      (
        cd frontend
        [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
        npx vitest run --coverage
      ) || frontend=1
      printf '\n==> %s\n' "coverage report"
      coverage_report --html
      return "$frontend"
      ;;
    *)
      echo "usage: scripts/coverage.sh [report]" >&2
      return 2
      ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  coverage_main "$@"
fi
