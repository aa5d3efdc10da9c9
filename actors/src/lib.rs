//! flashcore's actors: the engine behind the HTTP layer.
//!
//! Reading order, top down (each module imports only those below it):
//!
//! - [`engine::Engine`] — the facade: one method per use case, each a message
//!   to one actor through its registry; [`error::EngineError`] is what they fail with.
//! - [`cart::CartState`] — one per cart: lines, holds, and checkout (Prepare on
//!   every SKU, authorize the payment, append to the journal, Commit). A
//!   scheduled entity, not an actor: carts are many and mostly idle.
//! - [`sku::SkuActor`] — one per SKU: the [`flashcore_domain::Inventory`] that
//!   never oversells, with one expiry timer for its holds.
//! - [`registry::Registry`] — get-or-activate (one actor per id, ever), the
//!   in-flight bound ([`registry::Registry::call`] refuses past it,
//!   [`registry::Registry::force_call`] must get through), passivation that
//!   cannot drop a message ([`gate`]); its [`supervisor::EntitySupervisor`]
//!   decides restarts and quarantine.
//! - [`entity::EntityRegistry`] — the same guarantees for scheduled entities
//!   (carts): state plus a [`mailbox::Mailbox`] whose push starts the one
//!   drainer; [`supervisor::Supervision`] decides their restarts.
//! - [`journal::JournalWriter`] group-commits orders and stock facts;
//!   [`flusher::Flusher`] writes dirty state behind as snapshots.
//! - [`node::Node`] and [`ownership::Ownership`] — this process's lease on the
//!   store: standby, take-over, fencing, hand-off ([`admission`] counts the
//!   requests in flight under a lease term).
//!
//! This crate defines the ports it needs in [`ports`] (journal, snapshots,
//! catalog, leases, payments, availability feed); adapters live in
//! `flashcore-persistence`, and only the binary picks them.

pub mod admission;
pub mod alarms;
pub mod breaker;
pub mod budget;
pub mod cart;
pub mod catalog;
pub mod clock;
pub mod engine;
pub mod entity;
pub mod error;
pub mod flusher;
pub mod gate;
pub mod gateway;
pub mod journal;
pub mod mailbox;
pub mod metrics;
pub mod node;
pub mod ownership;
pub mod parked;
pub mod payments;
pub mod peers;
pub mod ports;
pub mod recovery;
pub mod registry;
pub mod reply;
pub mod sku;
pub mod sku_link;
pub mod supervisor;
pub(crate) mod sync;
pub mod ticket_relay;
pub mod trace;
pub mod waiting_room;

pub use engine::{Engine, EngineConfig, Ports, ProductView};
pub use error::EngineError;
pub use flashcore_domain::CheckoutRequest;
