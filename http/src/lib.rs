//! flashcore's HTTP edge.
//!
//! Handlers turn a request into one [`flashcore_actors::Engine`] call and its
//! result into a response; parsing and wire formats stay here, state stays in the
//! actors. [`startup::Application`] is the composition root shared by the binary
//! and the tests.

pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dto;
pub mod edge;
pub mod error;
pub mod extract;
pub mod hardening;
pub mod openapi;
pub mod routes;
pub mod security;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use config::Config;
pub use startup::Application;
