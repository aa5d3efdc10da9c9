//! Black-box tests of flashcore over HTTP: one binary, a module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod crash;
mod flows;
mod idempotency;
mod outage;
mod oversell;
mod process;
mod supervision;
