//! Primitives that `loom` can model: the gate, mailbox and admission protocols
//! are checked under `cfg(loom)`. Only their state words and locks are
//! modelled; the gate's reference count (`Arc`) is not part of the protocol and
//! stays `std`.

pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
