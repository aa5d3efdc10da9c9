//! Adapters for the engine's ports (defined in `flashcore-actors`) and the HTTP
//! layer's (defined in `flashcore-http-ports`): in-process ([`memory`],
//! `FLASHCORE_STORE=memory`), SQLite ([`sqlite`], the embedded default) and
//! Postgres ([`postgres`], production) for the journal, snapshots, catalog,
//! leases and API keys; Redis ([`redis`]) for the state the nodes share
//! (idempotency keys, rate limits, the availability fan-out), with in-process
//! fallbacks ([`local`], [`memory::LocalFeed`]) when no Redis is configured. Every adapter of a port passes the same conformance suite
//! (`persistence/tests/conformance.rs`, `persistence/tests/edge_conformance.rs`).

mod leases;
pub mod local;
pub mod memory;
pub mod postgres;
pub mod redis;
mod rows;
pub mod sqlite;
mod sync;
