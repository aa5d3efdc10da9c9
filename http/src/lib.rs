//! flashcore's HTTP layer (the edge) and the `flashcore` binary.
//!
//! - [`startup::Application`] — the composition root shared by the binary and
//!   the tests: picks the adapters, builds the router, binds, runs the node.
//! - [`pipeline`] — the one middleware every request passes through; it alone
//!   owns the order of the steps: credentials ([`principal`], [`api_keys`],
//!   [`cart_tokens`]), rate limits ([`rate_limit`]), idempotency keys
//!   ([`idempotency`]), the deadline ([`deadline`]), request ids
//!   ([`request_id`]), response headers ([`headers`]) and request metrics
//!   ([`http_metrics`]). Each step is a leaf.
//! - [`routes`] — one module per resource, each with its `router()`. Handlers
//!   turn a request into one [`flashcore_actors::Engine`] call and its result
//!   into a response ([`dto`] for wire formats, [`extract`] for parsing,
//!   [`error::ApiError`] for RFC 9457 problems); state stays in the actors.
//! - [`hot`] — the routes a flash sale is made of (a cart's read, setting and
//!   removing its lines), matched before the router and run through the same
//!   pipeline steps and handler bodies.
//! - [`openapi`] — the OpenAPI document and `/docs`.

pub mod api_keys;
pub mod cart_tokens;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod dto;
pub mod error;
pub mod extract;
pub mod frontend;
pub mod headers;
pub mod hot;
pub mod http_metrics;
pub mod idempotency;
pub mod openapi;
pub mod pipeline;
pub mod principal;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use startup::Application;
