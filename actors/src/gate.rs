//! The admission gate in front of every registered actor.
//!
//! One atomic word per actor: the low 63 bits count messages in flight (sent
//! through the registry and not yet handled), the top bit says the actor is
//! closing. Every such message carries a [`Ticket`]; dropping the ticket (when the
//! handler is done with the message) counts it out. That gives two things:
//!
//! - **Backpressure.** ractor mailboxes are unbounded, so [`Gate::try_enter`]
//!   refuses past a bound and the edge answers 503 instead of queueing forever.
//! - **Safe passivation.** [`Gate::try_close`] succeeds only by swapping exactly
//!   `0 -> CLOSED`. If it succeeds, no ticket exists, so no message is in a
//!   mailbox or in transit, and none can enter afterwards: the actor can snapshot
//!   and stop without dropping anything. If a sender got in first, the swap fails
//!   and passivation is retried later. This protocol has a loom model
//!   (`actors/tests/loom_gate.rs`).

use crate::sync::{Arc, AtomicU64, Ordering};

const CLOSED: u64 = 1 << 63;

/// Why a message was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The actor is passivating or dead; look it up again.
    Closed,
    /// Too many messages in flight already.
    Busy {
        /// Messages in flight when refused.
        depth: u64,
    },
}

/// Admission gate of one actor. See the module docs.
#[derive(Debug, Default)]
pub struct Gate {
    state: AtomicU64,
}

/// Proof of admission, carried inside the message. Counts the message out when
/// dropped. [`Ticket::untracked`] is for messages sent outside the registry.
#[derive(Debug)]
#[must_use]
pub struct Ticket(Option<Arc<Gate>>);

impl Gate {
    /// A new, open gate with nothing in flight.
    pub fn new() -> Arc<Self> {
        Arc::new(Gate { state: AtomicU64::new(0) })
    }

    /// Admits one message unless the gate is closed or `limit` messages are
    /// already in flight.
    pub fn try_enter(self: &Arc<Self>, limit: u64) -> Result<Ticket, Refusal> {
        let prev = self.state.fetch_add(1, Ordering::AcqRel);
        if prev & CLOSED != 0 {
            self.state.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Closed);
        }
        if prev >= limit {
            self.state.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Busy { depth: prev });
        }
        Ok(Ticket(Some(Arc::clone(self))))
    }

    /// Admits one message unless the gate is closed, however many are in flight:
    /// for messages that finish admitted work rather than add to it. The message
    /// still counts in, so passivation still waits for it.
    pub fn force_enter(self: &Arc<Self>) -> Result<Ticket, Refusal> {
        // In flight stays below CLOSED while open, so no count reaches this limit.
        self.try_enter(u64::MAX)
    }

    /// Closes the gate if and only if nothing is in flight.
    pub fn try_close(&self) -> bool {
        self.state.compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Closes the gate whatever is in flight (the actor died; its mailbox is gone).
    pub fn force_close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Reopens a gate closed by [`Gate::try_close`] when passivation was abandoned.
    pub fn reopen(&self) {
        self.state.fetch_and(!CLOSED, Ordering::AcqRel);
    }

    /// True once closed (for passivation or shutdown) and not reopened.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Messages admitted and not yet finished; what `try_enter`'s limit bounds.
    pub fn depth(&self) -> u64 {
        self.state.load(Ordering::Acquire) & !CLOSED
    }
}

impl Ticket {
    /// A ticket for a message that did not pass a gate (timers, benchmarks, tests).
    pub fn untracked() -> Self {
        Ticket(None)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.state.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tickets_count_in_and_out() {
        let g = Gate::new();
        let a = g.try_enter(2).unwrap();
        let _b = g.try_enter(2).unwrap();
        assert_eq!(g.try_enter(2).unwrap_err(), Refusal::Busy { depth: 2 });
        assert_eq!(g.depth(), 2);
        drop(a);
        assert_eq!(g.depth(), 1);
    }

    #[test]
    fn forced_entries_pass_the_bound_but_not_a_closed_gate() {
        let g = Gate::new();
        let a = g.try_enter(1).unwrap();
        assert_eq!(g.try_enter(1).unwrap_err(), Refusal::Busy { depth: 1 });
        let b = g.force_enter().unwrap();
        assert_eq!(g.depth(), 2);
        assert!(!g.try_close(), "a forced entry counts in like any other");
        drop(b);
        drop(a);
        assert!(g.try_close());
        assert_eq!(g.force_enter().unwrap_err(), Refusal::Closed);
        assert_eq!(g.depth(), 0);
    }

    #[test]
    fn close_only_when_empty_and_then_refuse() {
        let g = Gate::new();
        let t = g.try_enter(10).unwrap();
        assert!(!g.try_close());
        drop(t);
        assert!(g.try_close());
        assert_eq!(g.try_enter(10).unwrap_err(), Refusal::Closed);
        assert_eq!(g.depth(), 0);
    }
}
