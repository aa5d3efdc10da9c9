//! The mailbox of one scheduled entity ([`crate::entity`]): its queue, its
//! state, and who may run it.
//!
//! A scheduled entity has no task of its own. A sender pushes onto the queue,
//! and if nobody holds the entity's *turn*, the push takes it and the sender
//! spawns a drainer. The turn is taken and given back under the same lock that
//! pushes and pops, which gives the two rules everything else rests on:
//!
//! - **One writer.** Only the turn's holder has the state (it is moved out of
//!   the mailbox while a drainer runs), and there is one turn.
//! - **No message left behind.** A drainer gives the turn back only when it
//!   finds the queue empty under the lock; any later push sees the turn free
//!   and takes it.
//!
//! A new mailbox starts with the turn held by its activation, so messages sent
//! while the state is still being recovered wait in the queue and
//! [`Mailbox::resume`] hands them to a drainer. A retired mailbox refuses every
//! push and drops its queue and state. This protocol has a loom model
//! (`actors/tests/loom_gate.rs`, with the [`crate::gate`] it works with).

use std::collections::VecDeque;

use crate::sync::Mutex;

/// What [`Mailbox::push`] made of a message.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Pushed<M> {
    /// Queued; a drainer is running (or the activation is) and will get to it.
    Queued,
    /// Queued, and the push took the turn: the caller must start a drainer.
    Drain,
    /// The mailbox is retired; the message comes back.
    Retired(M),
}

struct Inner<M, S> {
    queue: VecDeque<M>,
    /// The state while nobody holds the turn; `None` while someone does.
    state: Option<S>,
    turn: bool,
    retired: bool,
}

/// One entity's queue and state. See the module docs.
pub struct Mailbox<M, S> {
    inner: Mutex<Inner<M, S>>,
}

impl<M, S> std::fmt::Debug for Mailbox<M, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

impl<M, S> Mailbox<M, S> {
    /// A mailbox whose turn its activation holds until [`Mailbox::resume`].
    pub fn activating() -> Self {
        Mailbox { inner: Mutex::new(Inner { queue: VecDeque::new(), state: None, turn: true, retired: false }) }
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, Inner<M, S>> {
        // Nothing panics while holding the lock (handlers run outside it).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `msg`, taking the turn if it is free. See [`Pushed`].
    pub fn push(&self, msg: M) -> Pushed<M> {
        let mut inner = self.lock();
        if inner.retired {
            return Pushed::Retired(msg);
        }
        inner.queue.push_back(msg);
        if inner.turn {
            Pushed::Queued
        } else {
            inner.turn = true;
            Pushed::Drain
        }
    }

    /// Ends the activation's turn with the recovered `state`. Returns true if
    /// messages arrived meanwhile: the caller must start a drainer, which
    /// inherits the turn.
    pub fn resume(&self, state: S) -> bool {
        let mut inner = self.lock();
        if inner.retired {
            return false;
        }
        inner.state = Some(state);
        inner.turn = !inner.queue.is_empty();
        inner.turn
    }

    /// A drainer's start: the state, moved out for the turn's holder. `None` if
    /// the mailbox was retired meanwhile.
    pub fn begin(&self) -> Option<S> {
        let mut inner = self.lock();
        debug_assert!(inner.turn, "a drainer runs only with the turn");
        inner.state.take()
    }

    /// The next message for the turn's holder, or `None` once the queue is
    /// empty: then `state` goes back into the mailbox with the turn (or is
    /// dropped if the mailbox was retired).
    pub fn next(&self, state: S) -> Option<(M, S)> {
        let mut inner = self.lock();
        if inner.retired {
            return None;
        }
        match inner.queue.pop_front() {
            Some(msg) => Some((msg, state)),
            None => {
                inner.state = Some(state);
                inner.turn = false;
                // An idle entity keeps no queue buffer.
                inner.queue = VecDeque::new();
                None
            }
        }
    }

    /// Refuses every later push. Returns what was queued (with the state if
    /// nobody held the turn) the first time, `None` if already retired.
    pub fn retire(&self) -> Option<(VecDeque<M>, Option<S>)> {
        let mut inner = self.lock();
        if inner.retired {
            return None;
        }
        inner.retired = true;
        Some((std::mem::take(&mut inner.queue), inner.state.take()))
    }

    /// True once [`Mailbox::retire`]d.
    pub fn is_retired(&self) -> bool {
        self.lock().retired
    }
}
