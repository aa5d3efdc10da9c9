//! Adapters for the ports defined in `flashcore-actors`.
//!
//! Today: in-process adapters ([`memory`]), the `FLASHCORE_STORE=memory` mode and
//! the fallbacks used when no Redis is configured. Every adapter of a port must
//! behave the same; the conformance tests in [`memory`] state that behaviour.

pub mod memory;
