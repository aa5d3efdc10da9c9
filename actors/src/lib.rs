//! flashcore's actors.
//!
//! Per-SKU [`sku::SkuActor`]s and per-cart [`cart::CartActor`]s serialize the
//! contended work in memory. The [`registry::Registry`] activates each entity on
//! first use (never twice), bounds every actor's in-flight messages, passivates
//! idle carts without dropping a message; each kind's
//! [`supervisor::EntitySupervisor`] decides whether a failed actor restarts. The [`journal::JournalWriter`] group-commits
//! orders and stock facts; the [`flusher::Flusher`] writes dirty state behind.
//! [`engine::Engine`] is the facade the HTTP edge talks to.
//!
//! This crate defines the ports it needs in [`ports`]; adapters live in
//! `flashcore-persistence`, and only the binary picks them.

pub mod admission;
pub mod alarms;
pub mod cart;
pub mod catalog;
pub mod clock;
pub mod engine;
pub mod error;
pub mod flusher;
pub mod gate;
pub mod journal;
pub mod metrics;
pub mod node;
pub mod ownership;
pub mod payments;
pub mod ports;
pub mod registry;
pub mod reply;
pub mod sku;
pub mod supervisor;
pub(crate) mod sync;

pub use cart::CheckoutRequest;
pub use engine::{Engine, EngineConfig, Ports, ProductView};
pub use error::EngineError;
