//! Adapters for the ports defined in `flashcore-actors`: in-process ([`memory`],
//! `FLASHCORE_STORE=memory` and the fallbacks when no Redis is configured), SQLite
//! ([`sqlite`], the embedded default) and Postgres ([`postgres`], production).
//! Every adapter of a port passes the same conformance suite
//! (`persistence/tests/conformance.rs`).

pub mod memory;
pub mod postgres;
mod rows;
pub mod sqlite;
