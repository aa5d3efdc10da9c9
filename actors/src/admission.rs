//! A node's admission count: the protocol that lets a hand-off wait for every
//! request admitted while the node served, and never for one admitted after.
//!
//! One phase word and one in-flight count. A request counts itself in *first*
//! and only then looks at the phase, counting itself back out if the node does
//! not serve; a hand-off flips the phase *first* and only then waits for the
//! count to reach zero. Both sides use sequentially consistent operations, so
//! one of them always sees the other's write: either the request sees the new
//! phase and backs out, or the hand-off sees the request's count and waits for it.
//! This protocol has a loom model (`actors/tests/loom_admission.rs`).

use crate::sync::{AtomicU8, AtomicU64, Ordering};

/// The phase word and the in-flight count. See the module docs.
#[derive(Debug)]
pub struct Admissions {
    phase: AtomicU8,
    inflight: AtomicU64,
}

impl Admissions {
    /// Starts in `phase` with nothing in flight.
    pub fn new(phase: u8) -> Self {
        Admissions { phase: AtomicU8::new(phase), inflight: AtomicU64::new(0) }
    }

    /// The current phase.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::SeqCst)
    }

    /// Counts one request in if `serves(phase)`; else counts it back out and
    /// returns the phase it saw. An admitted request must [`Admissions::leave`].
    pub fn enter(&self, serves: impl FnOnce(u8) -> bool) -> Result<(), u8> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let phase = self.phase();
        if serves(phase) {
            Ok(())
        } else {
            self.inflight.fetch_sub(1, Ordering::SeqCst);
            Err(phase)
        }
    }

    /// Counts an admitted request out.
    pub fn leave(&self) {
        self.inflight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Moves from `from` to `to`; false (and nothing changed) if the phase was not `from`.
    pub fn transition(&self, from: u8, to: u8) -> bool {
        self.phase.compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Sets the phase whatever it was.
    pub fn set(&self, to: u8) {
        self.phase.store(to, Ordering::SeqCst);
    }

    /// Requests admitted and not yet counted out.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::SeqCst)
    }
}
