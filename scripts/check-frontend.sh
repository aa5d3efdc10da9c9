#!/usr/bin/env bash
# Every check of the frontend, from the repository root: install (npm ci), the
# generated client against its snapshot and against the server's live document,
# type-check, lint, unit tests with their coverage (stores and composables: at
# least 80 % of lines, vitest.config.ts), build with the bundle budget, browser tests in
# Debian's Chromium against a real flashcore binary.
#
#   FLASHCORE_BIN  the binary the browser tests start (default target/release/flashcore,
#                  built here if missing)
#   CHROMIUM_BIN   the browser (default /usr/bin/chromium; `apt-get install -y chromium`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export FLASHCORE_BIN="${FLASHCORE_BIN:-$root/target/release/flashcore}"
case "$FLASHCORE_BIN" in /*) ;; *) FLASHCORE_BIN="$root/$FLASHCORE_BIN" ;; esac
chromium="${CHROMIUM_BIN:-/usr/bin/chromium}"

step() { printf '\n== %s\n' "$*"; }

if [ ! -x "$chromium" ]; then
  echo "check-frontend: $chromium is missing; install Debian's Chromium: apt-get install -y chromium" >&2
  exit 1
fi
if [ ! -x "$FLASHCORE_BIN" ]; then
  step "building flashcore (release), as make run does"
  cargo build --release --locked -p flashcore-http --bin flashcore
fi

cd frontend
step "npm ci";            npm ci --no-audit --no-fund
step "check:api";         npm run --silent check:api
step "check:api:live";    npm run --silent check:api:live
step "type-check";        npm run --silent type-check
step "lint";              npm run --silent lint
step "unit tests + coverage (stores, composables >= 80 % of lines)"
npm run --silent test -- --coverage
step "build + budget";    npm run --silent build
step "browser tests";     npm run --silent test:browser
step "frontend checks passed"
