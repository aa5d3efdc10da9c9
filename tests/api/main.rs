//! Black-box tests of flashcore over HTTP: one binary, a module per concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod backup;
mod bad_input;
mod cluster;
mod cluster_port;
mod crash;
mod flows;
mod frontend;
mod hardening;
mod hot_routes;
mod idempotency;
mod least_privilege;
mod openapi;
mod outage;
mod oversell;
mod ownership;
mod process;
mod proxies;
mod recovery;
mod request_ids;
mod resilience;
mod shared_state;
mod supervision;
mod tls;
mod traces;
mod waiting_room;
