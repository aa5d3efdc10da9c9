//! flashcore's HTTP edge.
//!
//! Handlers turn a request into one [`flashcore_actors::Engine`] call and its
//! result into a response; parsing and wire formats stay here, state stays in the
//! actors. [`startup::Application`] is the composition root shared by the binary
//! and the tests.

pub mod api_keys;
pub mod cart_tokens;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod dto;
pub mod error;
pub mod extract;
pub mod headers;
pub mod http_metrics;
pub mod idempotency;
pub mod openapi;
pub mod pipeline;
pub mod principal;
pub mod rate_limit;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
