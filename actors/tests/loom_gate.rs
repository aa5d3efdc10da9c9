//! Loom models of the registries' activation / passivation protocols: the
//! actor registry's (models 1–3) and the scheduled entities' mailbox turn
//! (models 4–5, on the real [`flashcore_actors::mailbox::Mailbox`]).
//!
//! The admission gate is the real [`flashcore_actors::gate`] (its atomics are
//! loom's under `cfg(loom)`); the registry, mailboxes and actors around it are
//! modelled with loom mutexes and threads. Counters that an actor bumps while
//! handling a message are `Relaxed` on purpose: only the gate's own orderings may
//! make them visible to the passivator, so a too-weak ordering in the gate shows
//! up as a lost update here.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p flashcore-actors --test loom_gate --release`
#![cfg(loom)]

use flashcore_actors::gate::{Gate, Refusal, Ticket};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
use loom::thread;

/// What [`Gate::new`] returns. The gate's `Arc` is std's even under loom (its
/// reference count is not part of the protocol, and `try_enter` takes
/// `self: &Arc<Self>`, which only std's `Arc` allows on stable Rust).
type GateRef = std::sync::Arc<Gate>;

/// Generous bound: only model 3 is about `Busy`.
const LIMIT: u64 = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().expect("mutex poisoned")
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// One incarnation of an entity: its gate, its mailbox and what it has handled.
struct Slot {
    gate: GateRef,
    mailbox: Mutex<Vec<(u32, Ticket)>>,
    /// State recovered from the snapshot at activation.
    base: usize,
    /// Messages handled by this incarnation. Relaxed: see the module docs.
    handled: AtomicUsize,
    /// Which messages, to check exactly-once.
    log: Mutex<Vec<u32>>,
    /// Set once passivated (the actor has saved its state and stopped).
    stopped: AtomicBool,
}

impl Slot {
    fn new(base: usize) -> Arc<Slot> {
        Arc::new(Slot {
            gate: Gate::new(),
            mailbox: Mutex::new(Vec::new()),
            base,
            handled: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        })
    }

    /// Enqueues an admitted message. A message with a ticket in a mailbox means the
    /// gate is open: `try_close` cannot succeed until the ticket drops.
    fn deliver(&self, id: u32, ticket: Ticket) {
        let mut mb = lock(&self.mailbox);
        assert!(!self.gate.is_closed(), "message enqueued behind a closed gate");
        mb.push((id, ticket));
    }

    /// Handles one message if there is one: the actor's `handle`, then the ticket
    /// drops (as it does at the end of a real handler). Never blocks.
    fn step(&self) -> bool {
        let msg = {
            let mut mb = lock(&self.mailbox);
            if mb.is_empty() { None } else { Some(mb.remove(0)) }
        };
        let Some((id, ticket)) = msg else { return false };
        assert!(!self.stopped.load(Ordering::Acquire), "message handled by a passivated actor");
        assert!(!self.gate.is_closed(), "message in the mailbox of a closed gate");
        lock(&self.log).push(id);
        self.handled.fetch_add(1, Ordering::Relaxed);
        drop(ticket);
        true
    }

    /// The entity's state as this incarnation sees it.
    fn state(&self) -> usize {
        self.base + self.handled.load(Ordering::Relaxed)
    }
}

/// The registry's map entry for one id.
struct Dir {
    current: Arc<Slot>,
    retired: bool,
    /// Written by passivation before the slot is retired; read by activation.
    snapshot: usize,
    /// Every incarnation, oldest first.
    history: Vec<Arc<Slot>>,
}

/// The registry for one id: the entry, and the wake-up that the real registry's
/// per-slot phase channel gives callers waiting on a closed gate.
struct Registry {
    dir: Mutex<Dir>,
    settled: Condvar,
}

impl Registry {
    fn new() -> Arc<Registry> {
        let first = Slot::new(0);
        let dir = Dir { current: Arc::clone(&first), retired: false, snapshot: 0, history: vec![first] };
        Arc::new(Registry { dir: Mutex::new(dir), settled: Condvar::new() })
    }

    /// Get-or-activate: the live slot, or a successor recovered from the snapshot.
    fn lookup(&self) -> Arc<Slot> {
        let mut d = lock(&self.dir);
        if d.retired {
            let next = Slot::new(d.snapshot);
            d.current = Arc::clone(&next);
            d.history.push(next);
            d.retired = false;
        }
        Arc::clone(&d.current)
    }

    /// The registry's `enter` + send: admit through the gate and enqueue; on
    /// `Closed`, wait until the slot is retired or reopened, then look up again.
    fn send(&self, id: u32) {
        loop {
            let slot = self.lookup();
            match slot.gate.try_enter(LIMIT) {
                Ok(ticket) => return slot.deliver(id, ticket),
                Err(Refusal::Closed) => {
                    let mut d = lock(&self.dir);
                    while Arc::ptr_eq(&d.current, &slot) && !d.retired && slot.gate.is_closed() {
                        d = self.settled.wait(d).expect("mutex poisoned");
                    }
                }
                Err(busy) => panic!("unexpected refusal {busy:?}"),
            }
        }
    }

    /// Passivation: close (only with nothing in flight), snapshot, stop, retire.
    /// With `save_fails`, the snapshot cannot be written and the gate reopens.
    /// Returns whether the slot was passivated.
    fn passivate(&self, slot: &Arc<Slot>, save_fails: bool) -> bool {
        if !slot.gate.try_close() {
            return false;
        }
        // (`depth()` may read 1 here: a refused sender's increment is transient.)
        assert!(lock(&slot.mailbox).is_empty(), "gate closed with a message in the mailbox");
        if save_fails {
            let _d = lock(&self.dir);
            slot.gate.reopen();
            self.settled.notify_all();
            return false;
        }
        let snapshot = slot.state();
        slot.stopped.store(true, Ordering::Release);
        let mut d = lock(&self.dir);
        if Arc::ptr_eq(&d.current, slot) {
            d.snapshot = snapshot;
            d.retired = true;
        }
        self.settled.notify_all();
        true
    }
}

/// Sender, actor and passivator race; afterwards every message is reflected
/// exactly once in the latest incarnation's state. The actor makes one attempt
/// per message at arbitrary points (loom explores them all); whatever is left is
/// handled after the joins, as the live actor would.
fn no_message_lost(messages: u32, save_fails: bool) {
    model(move || {
        let reg = Registry::new();
        let first = reg.lookup();

        let sender = {
            let reg = Arc::clone(&reg);
            thread::spawn(move || {
                for id in 0..messages {
                    reg.send(id);
                }
            })
        };
        let actor = {
            let slot = Arc::clone(&first);
            thread::spawn(move || {
                for _ in 0..messages {
                    slot.step();
                }
            })
        };
        let passivator = {
            let (reg, slot) = (Arc::clone(&reg), Arc::clone(&first));
            thread::spawn(move || reg.passivate(&slot, save_fails))
        };
        sender.join().expect("sender");
        actor.join().expect("actor");
        let passivated = passivator.join().expect("passivator");

        let d = lock(&reg.dir);
        // A successor exists only after a passivation (and only if someone came back).
        assert!(d.history.len() <= 1 + usize::from(passivated), "an entity was activated twice");
        if passivated {
            // Its mailbox was empty when it closed and stayed so.
            assert!(first.stopped.load(Ordering::Acquire));
            assert!(first.gate.is_closed());
            assert!(lock(&first.mailbox).is_empty(), "message left behind in a passivated actor");
            // The snapshot saw everything the incarnation handled (the gate's orderings
            // alone make the Relaxed counter visible to the passivator).
            assert_eq!(d.snapshot, first.state(), "snapshot missed a handled message");
        } else {
            assert!(!first.gate.is_closed());
            assert_eq!(d.history.len(), 1);
        }
        let live = Arc::clone(&d.current);
        while live.step() {}
        assert_eq!(live.state(), messages as usize, "the entity's state lost or repeated a message");
        assert_eq!(live.gate.depth(), 0);
        let mut seen: Vec<u32> = d.history.iter().flat_map(|s| lock(&s.log).clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..messages).collect::<Vec<_>>(), "each message handled exactly once");
    });
}

/// Model 1: a message is never lost when passivation races a send.
#[test]
fn passivation_loses_no_message() {
    no_message_lost(2, false);
}

/// Model 1, one message: smaller, explores deeper under the same bound.
#[test]
fn passivation_loses_no_message_single() {
    no_message_lost(1, false);
}

/// Model 1 variant: passivation abandoned after closing (snapshot save failed);
/// the gate reopens and the sender gets through to the same incarnation.
#[test]
fn abandoned_passivation_reopens() {
    no_message_lost(2, true);
}

/// Model 2: two callers racing get-or-activate on one id start one actor.
///
/// The map is `Mutex<Option<cell>>` (the `DashMap` entry), the cell is
/// `Mutex<Option<slot>>` held while initializing (the `OnceCell`'s permit).
#[test]
fn get_or_activate_activates_once() {
    type Cell = Arc<Mutex<Option<GateRef>>>;
    model(|| {
        let map: Arc<Mutex<Option<Cell>>> = Arc::new(Mutex::new(None));
        let activations = Arc::new(AtomicUsize::new(0));
        let caller = || {
            let (map, activations) = (Arc::clone(&map), Arc::clone(&activations));
            thread::spawn(move || {
                let cell = Arc::clone(lock(&map).get_or_insert_with(|| Arc::new(Mutex::new(None))));
                let mut slot = lock(&cell);
                let gate = slot.get_or_insert_with(|| {
                    activations.fetch_add(1, Ordering::Relaxed);
                    Gate::new()
                });
                GateRef::clone(gate)
            })
        };
        let (a, b) = (caller(), caller());
        let (a, b) = (a.join().expect("caller a"), b.join().expect("caller b"));
        assert_eq!(activations.load(Ordering::Relaxed), 1);
        assert!(GateRef::ptr_eq(&a, &b), "both callers see the same actor");
    });
}

/// Model 2 variant: a stale retirement (pointer-compared) never removes the
/// successor that a concurrent get-or-activate put in its place. The old actor has
/// closed its gate (passivated) and is retired twice: by the passivation and by
/// the supervisor's stop notice, racing a caller that needs the entity.
#[test]
fn stale_retirement_keeps_successor() {
    type Cell = Arc<Mutex<Option<GateRef>>>;
    model(|| {
        let old = Gate::new();
        assert!(old.try_close());
        let first: Cell = Arc::new(Mutex::new(Some(GateRef::clone(&old))));
        let map: Arc<Mutex<Option<Cell>>> = Arc::new(Mutex::new(Some(first)));
        let activations = Arc::new(AtomicUsize::new(0));
        let retire = || {
            let (map, old) = (Arc::clone(&map), GateRef::clone(&old));
            thread::spawn(move || {
                old.force_close();
                let mut m = lock(&map);
                let same = m.as_ref().is_some_and(|c| lock(c).as_ref().is_some_and(|g| GateRef::ptr_eq(g, &old)));
                if same {
                    *m = None;
                }
            })
        };
        let (r1, r2) = (retire(), retire());
        let user = {
            let (map, activations) = (Arc::clone(&map), Arc::clone(&activations));
            thread::spawn(move || {
                loop {
                    let cell = Arc::clone(lock(&map).get_or_insert_with(|| Arc::new(Mutex::new(None))));
                    let gate = GateRef::clone(lock(&cell).get_or_insert_with(|| {
                        activations.fetch_add(1, Ordering::Relaxed);
                        Gate::new()
                    }));
                    match gate.try_enter(LIMIT) {
                        Ok(ticket) => return (gate, ticket),
                        Err(_) => thread::yield_now(),
                    }
                }
            })
        };
        r1.join().expect("retire 1");
        r2.join().expect("retire 2");
        let (gate, ticket) = user.join().expect("user");
        assert!(!GateRef::ptr_eq(&gate, &old), "admitted into a retired actor");
        assert_eq!(activations.load(Ordering::Relaxed), 1);
        let m = lock(&map);
        let current = m.as_ref().and_then(|c| lock(c).clone());
        assert!(current.is_some_and(|g| GateRef::ptr_eq(&g, &gate)), "the successor was removed by a stale retirement");
        drop(ticket);
        assert_eq!(gate.depth(), 0);
    });
}

/// Model 3: with limit 1, at most one ticket is outstanding at any time, a refusal
/// reports the depth that caused it, and depth returns to 0 once tickets drop.
#[test]
fn busy_bound_holds() {
    model(|| {
        let gate = Gate::new();
        let outstanding = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let sender = || {
            let (gate, outstanding, admitted) =
                (GateRef::clone(&gate), Arc::clone(&outstanding), Arc::clone(&admitted));
            thread::spawn(move || match gate.try_enter(1) {
                Ok(ticket) => {
                    admitted.fetch_add(1, Ordering::Relaxed);
                    let before = outstanding.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(before, 0, "two tickets outstanding under limit 1");
                    assert!(gate.depth() >= 1);
                    outstanding.fetch_sub(1, Ordering::Relaxed);
                    drop(ticket);
                }
                Err(Refusal::Busy { depth }) => assert!(depth >= 1, "refused below the limit: {depth}"),
                Err(Refusal::Closed) => panic!("gate was never closed"),
            })
        };
        let (a, b) = (sender(), sender());
        a.join().expect("sender a");
        b.join().expect("sender b");
        assert!(admitted.load(Ordering::Relaxed) >= 1, "the first sender is always admitted");
        assert_eq!(gate.depth(), 0);
        assert!(gate.try_close(), "nothing in flight, so the gate closes");
    });
}

// --- Scheduled entities: the mailbox's turn ------------------------------------
//
// Carts run on [`flashcore_actors::mailbox::Mailbox`] (the real one: its lock is
// loom's under `cfg(loom)`): a push that finds the turn free takes it and starts
// a drainer; a drainer gives the turn back only when it finds the queue empty.

use flashcore_actors::mailbox::{Mailbox, Pushed};

/// What runs through a cart's mailbox: a message with its ticket, or the
/// registry's passivation.
enum Env {
    Msg(u32, Ticket),
    Passivate,
}

/// An entity's state: the messages it handled, in order.
type Handled = Vec<u32>;

struct Entity {
    mailbox: Mailbox<Env, Handled>,
    gate: GateRef,
    /// Handlers running right now; never more than one.
    running: AtomicUsize,
    /// The state saved by a passivation.
    snapshot: Mutex<Option<Handled>>,
    drainers: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Entity {
    fn new() -> Arc<Entity> {
        Arc::new(Entity {
            mailbox: Mailbox::activating(),
            gate: Gate::new(),
            running: AtomicUsize::new(0),
            snapshot: Mutex::new(None),
            drainers: Mutex::new(Vec::new()),
        })
    }

    /// What `EntityRegistry::push` does: queue, and start a drainer if the push
    /// took the turn.
    fn push(this: &Arc<Self>, env: Env) -> bool {
        match this.mailbox.push(env) {
            Pushed::Queued => true,
            Pushed::Drain => {
                Entity::spawn_drainer(this);
                true
            }
            Pushed::Retired(_) => false,
        }
    }

    fn spawn_drainer(this: &Arc<Self>) {
        let me = Arc::clone(this);
        let handle = thread::spawn(move || me.drain());
        lock(&this.drainers).push(handle);
    }

    /// The real drainer's loop (`entity::drain`), with the handler inline.
    fn drain(&self) {
        let Some(mut state) = self.mailbox.begin() else { return };
        while let Some((env, s)) = self.mailbox.next(state) {
            state = s;
            // A handler runs here, holding the state: never two at once.
            assert_eq!(self.running.fetch_add(1, Ordering::SeqCst), 0, "two handlers ran one entity at once");
            match env {
                Env::Msg(id, ticket) => {
                    state.push(id);
                    drop(ticket);
                    self.running.fetch_sub(1, Ordering::SeqCst);
                }
                Env::Passivate => {
                    *lock(&self.snapshot) = Some(state);
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    let (left, _) = self.mailbox.retire().expect("retired once");
                    assert!(left.is_empty(), "a message was queued behind a passivation");
                    return;
                }
            }
        }
    }

    fn join_drainers(&self) {
        loop {
            let next = lock(&self.drainers).pop();
            match next {
                Some(h) => h.join().expect("drainer"),
                None => return,
            }
        }
    }

    /// The state once every drainer is done and the turn is free.
    fn settled_state(&self) -> Handled {
        self.join_drainers();
        let (left, state) = self.mailbox.retire().expect("still live");
        assert!(left.is_empty(), "a message was left in the queue with no drainer");
        state.expect("the state is back in the mailbox with the turn free")
    }
}

/// Model 4: messages pushed while the entity activates and by two senders at
/// once (the activation's thread is the second) are all handled, exactly once, in each sender's order, by one drainer at
/// a time; afterwards the turn is free and nothing is left queued.
#[test]
fn the_mailbox_runs_one_drainer_and_leaves_no_message_behind() {
    model(|| {
        let entity = Entity::new();
        let sender = |ids: Vec<u32>| {
            let entity = Arc::clone(&entity);
            thread::spawn(move || {
                for id in ids {
                    let ticket = entity.gate.try_enter(LIMIT).expect("open");
                    assert!(Entity::push(&entity, Env::Msg(id, ticket)));
                }
            })
        };
        // (Loom allows five threads: the main thread is the second sender and
        // then the activation, so the drainers fit.)
        let a = sender(vec![0, 1]);
        let ticket = entity.gate.try_enter(LIMIT).expect("open");
        assert!(Entity::push(&entity, Env::Msg(10, ticket)));
        // The activation ends its turn with the recovered state; nothing is
        // pushed after it by this thread, so what it leaves queued would stay.
        if entity.mailbox.resume(Vec::new()) {
            Entity::spawn_drainer(&entity);
        }
        a.join().expect("sender a");
        let handled = entity.settled_state();
        let mut sorted = handled.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 10], "each message handled exactly once");
        let pos = |id| handled.iter().position(|h| *h == id);
        assert!(pos(0) < pos(1), "one sender's messages keep their order");
        assert_eq!(entity.gate.depth(), 0);
    });
}

/// Model 5: passivation (close the gate, then run as the entity's next turn)
/// racing a sender: the message is handled exactly once, by the passivated
/// incarnation before its snapshot or by the successor recovered from it.
#[test]
fn a_passivated_entity_loses_no_message() {
    model(|| {
        let first = Entity::new();
        if first.mailbox.resume(Vec::new()) {
            Entity::spawn_drainer(&first);
        }
        let passivator = {
            let first = Arc::clone(&first);
            thread::spawn(move || {
                if first.gate.try_close() {
                    assert!(Entity::push(&first, Env::Passivate), "nothing retires it but its passivation");
                    true
                } else {
                    false
                }
            })
        };
        let sender = {
            let first = Arc::clone(&first);
            thread::spawn(move || {
                loop {
                    match first.gate.try_enter(LIMIT) {
                        Ok(ticket) => {
                            assert!(
                                Entity::push(&first, Env::Msg(7, ticket)),
                                "an admitted message reaches a live mailbox"
                            );
                            return None;
                        }
                        // Closed: wait for the retirement, then activate a successor
                        // from the snapshot (the registry's get-or-activate).
                        Err(Refusal::Closed) => {
                            if first.mailbox.is_retired() {
                                let snapshot = lock(&first.snapshot).clone().expect("saved before retired");
                                let next = Entity::new();
                                let ticket = next.gate.try_enter(LIMIT).expect("open");
                                assert!(Entity::push(&next, Env::Msg(7, ticket)));
                                if next.mailbox.resume(snapshot) {
                                    Entity::spawn_drainer(&next);
                                }
                                return Some(next);
                            }
                            thread::yield_now();
                        }
                        Err(busy) => panic!("unexpected refusal {busy:?}"),
                    }
                }
            })
        };
        let passivated = passivator.join().expect("passivator");
        let successor = sender.join().expect("sender");
        first.join_drainers();
        let handled = match (&successor, passivated) {
            (Some(next), true) => next.settled_state(),
            (None, true) => lock(&first.snapshot).clone().expect("passivated"),
            (None, false) => first.settled_state(),
            (Some(_), false) => panic!("a successor without a passivation"),
        };
        assert_eq!(handled, [7], "the message handled exactly once, and the last state has it");
    });
}
