//! Atomics that `loom` can model: the gate protocol is checked under `cfg(loom)`.
//! Only the gate's state word is modelled; its reference count (`Arc`) is not part
//! of the protocol and stays `std`.

pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
