#!/usr/bin/env bash
# Runs every test flashcore has: formatting, lints, unit, property, black-box and
# loom model tests. Exits non-zero on the first failure. `make test` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "dependencies point inward (domain has no runtime, database or web crates)"
if cargo tree -p flashcore-domain -e normal --prefix none --locked | grep -E '^(tokio|sqlx|redis|axum|ractor) '; then
  echo "flashcore-domain must not depend on the crates above" >&2; exit 1
fi

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit, property and black-box tests)"
cargo test --workspace --locked

step "loom model of the registry gate (cfg(loom))"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
  cargo test -p flashcore-actors --test loom_gate --release --locked

step "all tests passed"
