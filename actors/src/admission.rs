//! A node's admission count: the protocol that lets a hand-off wait for every
//! request admitted while the node served, and never for one admitted after.
//!
//! One phase word and one in-flight count. A request counts itself in *first*
//! and only then looks at the phase, counting itself back out if the node does
//! not serve; a hand-off flips the phase *first* and only then waits for the
//! count to reach zero. Each side puts a sequentially consistent fence between
//! its write and its read (Dekker's pattern), so one of them always sees the
//! other's write: either the request sees the new phase and backs out, or the
//! hand-off sees the request's count and waits for it. (Fences, not `SeqCst`
//! accesses: the two are equivalent here, and loom models only the fences fully.)
//! This protocol has a loom model (`actors/tests/loom_admission.rs`).

use crate::sync::{AtomicU8, AtomicU64, Ordering, fence};

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

    /// The current phase, as the `u8` of the ownership phase it mirrors.
    pub fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// Counts one request in if `serves(phase)`; else counts it back out and
    /// returns the phase it saw. An admitted request must [`Admissions::leave`].
    pub fn enter(&self, serves: impl FnOnce(u8) -> bool) -> Result<(), u8> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        fence(Ordering::SeqCst);
        let phase = self.phase();
        if serves(phase) {
            Ok(())
        } else {
            self.inflight.fetch_sub(1, Ordering::AcqRel);
            Err(phase)
        }
    }

    /// Counts an admitted request out.
    pub fn leave(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Moves from `from` to `to`; false (and nothing changed) if the phase was not `from`.
    pub fn transition(&self, from: u8, to: u8) -> bool {
        let moved = self.phase.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok();
        fence(Ordering::SeqCst);
        moved
    }

    /// Sets the phase whatever it was.
    pub fn set(&self, to: u8) {
        self.phase.store(to, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    /// Requests admitted and not yet counted out (after a phase change, this
    /// count includes every request that saw the old phase).
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }
}
