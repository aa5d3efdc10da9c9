//! The one lock helper of this crate's in-process state.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data of a poisoned lock as it is: every critical
/// section here leaves the data consistent at each step, so a panic in one
/// (a bug elsewhere) must not take every later caller down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
