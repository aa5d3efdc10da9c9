//! Scheduled entities: many small, mostly idle entities (carts) that are not
//! actors but state in a registry, run one message at a time by a task that
//! exists only while they have work (Orleans-style).
//!
//! An idle actor costs its task, its channels and its handler's future (kilobytes
//! each, and a cart spends nearly all its life idle); an idle scheduled entity
//! costs its state, an empty [`Mailbox`] and its map entry. Sending pushes onto
//! the entity's mailbox, and the push that finds nobody running it spawns a
//! drainer: the one task that handles the queue in order and ends when it is
//! empty. The guarantees are an actor's, kept by the same means as
//! [`crate::registry`]'s:
//!
//! - **Get-or-activate through one place**: a `OnceCell` per id, so one
//!   activation per id; the activation holds the entity's turn until its state is
//!   recovered, so nothing runs before it.
//! - **One writer**: the mailbox's turn ([`crate::mailbox`]); a handler owns the
//!   state for its message, never two at once.
//! - **Backpressure and passivation without loss**: the same [`Gate`] per entity;
//!   a passivation closes it (only with nothing in flight) and then runs as the
//!   entity's next turn, so it sees everything admitted before it.
//! - **Supervision**: a handler that fails or panics (caught, never unwinding
//!   into the runtime) ends its entity's incarnation: the queued messages drop
//!   unanswered (callers see [`RegistryError::ActorFailed`]), and the
//!   [`Supervision`] decides between a restart and a quarantine, as
//!   [`crate::supervisor::EntitySupervisor`] does for actors.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::{Notify, oneshot};

use crate::gate::{Gate, Refusal, Ticket};
use crate::mailbox::{Mailbox, Pushed};
use crate::metrics as m;
use crate::registry::{Activation, Gated, RegistryConfig, RegistryError, RegistryStats, Table};
use crate::reply::Reply;
use crate::supervisor::{Decision, Supervision};

/// A kind of scheduled entity: its state type, with how it handles a message
/// and how it saves itself before passivation.
pub trait Entity: Send + Sized + 'static {
    /// Its id.
    type Key: Clone + Eq + Hash + Display + Send + Sync + 'static;
    /// What it is sent.
    type Msg: Send + 'static;

    /// Handles one message. An `Err` (or a panic) ends this incarnation.
    fn handle(&mut self, msg: Self::Msg, me: &EntityRef<Self>) -> impl Future<Output = Result<(), String>> + Send;

    /// Saves the state before passivation: `Ok(true)` once saved (the entity is
    /// then dropped), `Ok(false)` to stay (it still has work), `Err` if it could
    /// not save (it stays too).
    fn passivate(&mut self) -> impl Future<Output = Result<bool, String>> + Send;
}

/// Recovers an entity's state.
#[async_trait]
pub trait Activate<E: Entity>: Send + Sync + 'static {
    /// The state of `key`, found as `activation` says. `me` may be kept (e.g. to
    /// register for write-behind); messages sent to it wait for the activation.
    /// An `Err` is reported to the caller as "unavailable"; the next call tries again.
    async fn activate(&self, key: &E::Key, activation: Activation, me: &EntityRef<E>) -> Result<E, String>;
}

/// What runs through a mailbox: a message, or the registry's passivation.
enum Envelope<M> {
    Msg(M),
    Passivate(oneshot::Sender<bool>),
}

/// One incarnation of an entity.
struct Slot<E: Entity> {
    gate: Arc<Gate>,
    touched: AtomicU64,
    mailbox: Mailbox<Envelope<E::Msg>, E>,
}

impl<E: Entity> Gated for Slot<E> {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn touched(&self) -> &AtomicU64 {
        &self.touched
    }
}

/// A handle on one incarnation of an entity, for sending it messages outside
/// the in-flight bound (a write-behind snapshot request). Cheap to clone.
pub struct EntityRef<E: Entity> {
    registry: Arc<EntityRegistry<E>>,
    key: E::Key,
    slot: Arc<Slot<E>>,
}

impl<E: Entity> Clone for EntityRef<E> {
    fn clone(&self) -> Self {
        EntityRef { registry: Arc::clone(&self.registry), key: self.key.clone(), slot: Arc::clone(&self.slot) }
    }
}

impl<E: Entity> std::fmt::Debug for EntityRef<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityRef").field("key", &self.key.to_string()).finish_non_exhaustive()
    }
}

impl<E: Entity> EntityRef<E> {
    /// The entity's id.
    pub fn key(&self) -> &E::Key {
        &self.key
    }

    /// Sends the request `build` makes and waits (at most `timeout`) for the
    /// answer; `None` if this incarnation is gone or does not answer.
    pub async fn ask<R: Send + 'static>(&self, build: impl FnOnce(Reply<R>) -> E::Msg, timeout: Duration) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        self.registry.push(&self.key, &self.slot, Envelope::Msg(build(tx))).ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }
}

/// Whether a message is held to the in-flight bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Bounded,
    Forced,
}

/// The registry of one kind of scheduled entity. See the module docs.
pub struct EntityRegistry<E: Entity> {
    cfg: RegistryConfig,
    table: Table<E::Key, Slot<E>>,
    activator: OnceLock<Arc<dyn Activate<E>>>,
    supervision: Supervision<E::Key>,
    /// Woken whenever a closed gate is retired or reopened: callers waiting on
    /// one look again. One for all entities; a per-entity channel costs more
    /// than the rare spurious wake-up.
    settled: Notify,
    epoch: Instant,
}

impl<E: Entity> std::fmt::Debug for EntityRegistry<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityRegistry").field("kind", &self.cfg.kind).finish_non_exhaustive()
    }
}

impl<E: Entity> EntityRegistry<E> {
    /// An empty registry whose failures `supervision` decides; call
    /// [`EntityRegistry::wire`] before use.
    pub fn new(cfg: RegistryConfig, supervision: Supervision<E::Key>) -> Arc<Self> {
        Arc::new(EntityRegistry {
            table: Table::new(cfg.kind),
            cfg,
            activator: OnceLock::new(),
            supervision,
            settled: Notify::new(),
            epoch: Instant::now(),
        })
    }

    /// Connects the activator.
    pub fn wire(&self, activator: Arc<dyn Activate<E>>) {
        let _ = self.activator.set(activator);
    }

    /// Its kind label, in-flight bound and call timeout.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The live incarnation of `key`, activated as `activation` says if needed.
    async fn slot(self: &Arc<Self>, key: &E::Key, activation: Activation) -> Result<Arc<Slot<E>>, RegistryError> {
        self.table.get_or_activate(key, || self.activate(key, activation)).await
    }

    async fn activate(self: &Arc<Self>, key: &E::Key, activation: Activation) -> Result<Arc<Slot<E>>, RegistryError> {
        if self.table.stopping() {
            return Err(RegistryError::NotRunning);
        }
        let activator = self.activator.get().ok_or(RegistryError::NotRunning)?;
        let slot = Arc::new(Slot {
            gate: Gate::new(),
            touched: AtomicU64::new(self.now_ms()),
            mailbox: Mailbox::activating(),
        });
        let me = EntityRef { registry: Arc::clone(self), key: key.clone(), slot: Arc::clone(&slot) };
        // Retires the slot if this activation fails or is cancelled (its caller
        // gave up), so whatever was sent to `me` meanwhile is dropped, not stuck.
        let mut guard = RetireOnDrop { mailbox: &slot.mailbox, armed: true };
        let state = activator.activate(key, activation, &me).await.map_err(|e| {
            tracing::warn!(kind = self.cfg.kind, entity.id = %key, error = %e, "activation failed");
            RegistryError::ActivationFailed(e)
        })?;
        guard.armed = false;
        drop(guard);
        self.table.counters.starts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_STARTS, "kind" => self.cfg.kind).increment(1);
        metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).increment(1.0);
        if slot.mailbox.resume(state) {
            self.spawn_drainer(key.clone(), Arc::clone(&slot));
        }
        Ok(slot)
    }

    /// Queues `envelope`, starting a drainer if the push took the turn.
    fn push(
        self: &Arc<Self>,
        key: &E::Key,
        slot: &Arc<Slot<E>>,
        envelope: Envelope<E::Msg>,
    ) -> Result<(), RegistryError> {
        match slot.mailbox.push(envelope) {
            Pushed::Queued => Ok(()),
            Pushed::Drain => {
                self.spawn_drainer(key.clone(), Arc::clone(slot));
                Ok(())
            }
            Pushed::Retired(_) => Err(RegistryError::ActorFailed),
        }
    }

    fn spawn_drainer(self: &Arc<Self>, key: E::Key, slot: Arc<Slot<E>>) {
        let me = EntityRef { registry: Arc::clone(self), key, slot };
        tokio::spawn(drain(me));
    }

    /// Admits one message for `key`: the incarnation to push it to and its ticket.
    async fn enter(
        self: &Arc<Self>,
        key: &E::Key,
        admission: Admission,
        activation: Activation,
    ) -> Result<(Arc<Slot<E>>, Ticket), RegistryError> {
        let deadline = tokio::time::Instant::now() + self.cfg.call_timeout;
        loop {
            let slot = self.slot(key, activation).await?;
            let entered = match admission {
                Admission::Bounded => slot.gate.try_enter(self.cfg.max_inflight),
                Admission::Forced => slot.gate.force_enter(),
            };
            match entered {
                Ok(ticket) => {
                    slot.touched.store(self.now_ms(), Ordering::Relaxed);
                    return Ok((slot, ticket));
                }
                Err(Refusal::Busy { depth }) => {
                    self.table.reject("busy");
                    return Err(RegistryError::Busy { depth });
                }
                Err(Refusal::Closed) => {
                    if self.table.stopping() {
                        return Err(RegistryError::NotRunning);
                    }
                    // Passivating or dead: wait until it is retired or reopened.
                    // Registered before the check, so no wake-up falls in between.
                    let settled = self.settled.notified();
                    tokio::pin!(settled);
                    settled.as_mut().enable();
                    if slot.mailbox.is_retired() || !slot.gate.is_closed() {
                        continue;
                    }
                    if tokio::time::timeout_at(deadline, settled).await.is_err() {
                        return Err(RegistryError::Timeout);
                    }
                }
            }
        }
    }

    /// Sends a request that adds work and waits for the answer; refused with
    /// [`RegistryError::Busy`] once `max_inflight` messages are in flight.
    pub async fn call<R, F>(self: &Arc<Self>, key: &E::Key, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> E::Msg,
    {
        self.request(key, Admission::Bounded, Activation::Recover, build).await
    }

    /// Sends a request that finishes admitted work past the in-flight bound.
    pub async fn force_call<R, F>(self: &Arc<Self>, key: &E::Key, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> E::Msg,
    {
        self.request(key, Admission::Forced, Activation::Recover, build).await
    }

    /// Like [`EntityRegistry::call`], for an id the caller just minted: the
    /// entity is activated as [`Activation::New`], without reading the stores.
    pub async fn call_new<R, F>(self: &Arc<Self>, key: &E::Key, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> E::Msg,
    {
        self.request(key, Admission::Bounded, Activation::New, build).await
    }

    async fn request<R, F>(
        self: &Arc<Self>,
        key: &E::Key,
        admission: Admission,
        activation: Activation,
        build: F,
    ) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> E::Msg,
    {
        let (slot, ticket) = self.enter(key, admission, activation).await?;
        let (tx, mut rx) = oneshot::channel();
        let answer = match slot.mailbox.push(Envelope::Msg(build(ticket, tx))) {
            Pushed::Queued => tokio::time::timeout(self.cfg.call_timeout, rx).await,
            Pushed::Drain => {
                // The entity was idle and this push took its turn: this caller
                // runs the turn itself rather than spawning a drainer and
                // waiting for it (a task and a wake-up less per request to an
                // idle cart). Once the answer is in, or if the caller goes away
                // (a deadline, a closed connection), whatever is left of the
                // turn goes on in a task of its own, so a handler always
                // finishes its message and the queue behind it is drained.
                let me = EntityRef { registry: Arc::clone(self), key: key.clone(), slot: Arc::clone(&slot) };
                let mut turn = Handoff(Some(Box::pin(drain(me))));
                let answer = tokio::time::timeout(
                    self.cfg.call_timeout,
                    std::future::poll_fn(|cx| {
                        if let Poll::Ready(answer) = Pin::new(&mut rx).poll(cx) {
                            return Poll::Ready(answer);
                        }
                        if let Some(rest) = turn.0.as_mut()
                            && rest.as_mut().poll(cx).is_ready()
                        {
                            // The queue ran dry: the answer was sent or dropped
                            // (or kept by the handler, which then wakes us).
                            turn.0 = None;
                            return Pin::new(&mut rx).poll(cx);
                        }
                        Poll::Pending
                    }),
                )
                .await;
                drop(turn);
                answer
            }
            Pushed::Retired(_) => return Err(RegistryError::ActorFailed),
        };
        match answer {
            Ok(Ok(r)) => Ok(r),
            // Dropped unanswered: the handler failed, and its incarnation with it.
            Ok(Err(_)) => Err(RegistryError::ActorFailed),
            Err(_) => Err(RegistryError::Timeout),
        }
    }

    /// Sends a message that adds work without waiting for an answer.
    pub async fn cast<F>(self: &Arc<Self>, key: &E::Key, build: F) -> Result<(), RegistryError>
    where
        F: FnOnce(Ticket) -> E::Msg,
    {
        let (slot, ticket) = self.enter(key, Admission::Bounded, Activation::Recover).await?;
        self.push(key, &slot, Envelope::Msg(build(ticket)))
    }

    /// Sends a message that must get through past the in-flight bound.
    pub async fn force_cast<F>(self: &Arc<Self>, key: &E::Key, build: F) -> Result<(), RegistryError>
    where
        F: FnOnce(Ticket) -> E::Msg,
    {
        let (slot, ticket) = self.enter(key, Admission::Forced, Activation::Recover).await?;
        self.push(key, &slot, Envelope::Msg(build(ticket)))
    }

    /// Ends `slot`'s incarnation: closes its gate, removes it from the map if
    /// it is still the one registered for `key`, refuses later pushes and wakes
    /// waiters. Returns false if it was already retired (count it once).
    fn retire(&self, key: &E::Key, slot: &Arc<Slot<E>>) -> bool {
        slot.gate.force_close();
        // Out of the map before it reads as retired, so a waiter that sees it
        // retired finds the map free and activates a successor.
        self.table.remove(key, slot);
        let first = slot.mailbox.retire().is_some();
        self.settled.notify_waiters();
        first
    }

    fn stopped(&self, key: &E::Key, slot: &Arc<Slot<E>>) {
        if self.retire(key, slot) {
            self.table.counters.stops.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::ACTOR_STOPS, "kind" => self.cfg.kind).increment(1);
            metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).decrement(1.0);
        }
    }

    /// A handler failed: the incarnation ends and the supervision decides.
    fn failed(self: &Arc<Self>, key: &E::Key, slot: &Arc<Slot<E>>, reason: &str) {
        if !self.retire(key, slot) {
            return;
        }
        self.table.counters.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_FAILURES, "kind" => self.cfg.kind).increment(1);
        metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).decrement(1.0);
        tracing::error!(kind = self.cfg.kind, entity.id = %key, reason = %reason, "entity failed");
        match self.supervision.failed(key) {
            Decision::Restart => self.restart(key.clone()),
            Decision::Quarantine(until) => {
                tracing::error!(kind = self.cfg.kind, entity.id = %key, "restart intensity exceeded; quarantining");
                self.table.quarantine(key.clone(), until);
            }
        }
    }

    /// Reactivates a failed entity now, through the one activation path.
    fn restart(self: &Arc<Self>, key: E::Key) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            match this.slot(&key, Activation::Recover).await {
                Ok(_) => {
                    this.table.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(m::ACTOR_RESTARTS, "kind" => this.cfg.kind).increment(1);
                    tracing::info!(kind = this.cfg.kind, entity.id = %key, "entity restarted");
                }
                Err(e) => tracing::error!(kind = this.cfg.kind, entity.id = %key, error = %e, "restart failed"),
            }
        });
    }

    /// Passivates every entity idle for at least `idle` with nothing in flight.
    ///
    /// For each: close its gate (only succeeds with nothing in flight), then
    /// queue the passivation, which runs as the entity's next turn: it saves
    /// the state and the incarnation ends, or it declines or cannot save and
    /// the gate reopens. Returns how many were passivated within the call
    /// timeout (a slower one still completes, in its own turn).
    pub async fn passivate_idle(self: &Arc<Self>, idle: Duration) -> usize {
        let cutoff = self.now_ms().saturating_sub(idle.as_millis() as u64);
        let candidates = self.table.idle_since(cutoff);
        let mut n = 0;
        for (key, slot) in candidates {
            if !slot.gate.try_close() {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            if self.push(&key, &slot, Envelope::Passivate(tx)).is_err() {
                continue;
            }
            if let Ok(Ok(true)) = tokio::time::timeout(self.cfg.call_timeout, rx).await {
                n += 1;
            }
        }
        n
    }

    /// Ends every incarnation and admits nothing new (shutdown). A handler
    /// running now finishes its message; nothing queued behind it runs.
    pub fn stop_all(&self) {
        self.table.stop();
        for (key, slot) in self.table.live_slots() {
            self.stopped(&key, &slot);
        }
    }

    /// Ends the incarnations whose key `pred` picks, saving nothing (the caller
    /// wrote their state first: their shard moved to another node); the next
    /// call for one activates it afresh. Returns how many ended.
    pub fn stop_where(&self, pred: impl Fn(&E::Key) -> bool) -> usize {
        let mut n = 0;
        for (key, slot) in self.table.live_slots() {
            if pred(&key) {
                self.stopped(&key, &slot);
                n += 1;
            }
        }
        n
    }

    /// Closes every gate so nothing new is admitted (shutdown); what is already
    /// admitted still runs.
    pub fn close_all(&self) {
        self.table.close_all();
    }

    /// How many entities are active (activated and not retired) right now.
    pub fn active(&self) -> usize {
        self.table.active()
    }

    /// Operator figures, with the `top` deepest mailboxes.
    pub fn stats(&self, top: usize) -> RegistryStats {
        self.table.stats(top)
    }
}

/// What is left of a turn its caller ran ([`EntityRegistry::call`] on an idle
/// entity): spawned when dropped unfinished, so the turn always completes.
/// Outside a runtime (nothing could run it) it is dropped with the runtime's end.
struct Handoff<F: Future<Output = ()> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output = ()> + Send + 'static> Drop for Handoff<F> {
    fn drop(&mut self) {
        if let Some(rest) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

/// Retires a mailbox while armed: an activation that failed or was dropped.
struct RetireOnDrop<'a, M, S> {
    mailbox: &'a Mailbox<M, S>,
    armed: bool,
}

impl<M, S> Drop for RetireOnDrop<'_, M, S> {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.mailbox.retire();
        }
    }
}

/// The drainer: holds the entity's turn and handles its queue in order until
/// it is empty, the entity passivates, or a handler fails.
async fn drain<E: Entity>(me: EntityRef<E>) {
    let Some(mut state) = me.slot.mailbox.begin() else { return };
    while let Some((envelope, s)) = me.slot.mailbox.next(state) {
        state = s;
        match envelope {
            Envelope::Msg(msg) => {
                let outcome = AssertUnwindSafe(state.handle(msg, &me)).catch_unwind().await;
                let failure = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e,
                    Err(panic) => panic_message(panic.as_ref()),
                };
                me.registry.failed(&me.key, &me.slot, &failure);
                return;
            }
            Envelope::Passivate(reply) => {
                let saved = AssertUnwindSafe(state.passivate()).catch_unwind().await;
                let reg = &me.registry;
                match saved {
                    Ok(Ok(true)) => {
                        reg.table.counters.passivations.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(m::ACTOR_PASSIVATIONS, "kind" => reg.cfg.kind).increment(1);
                        reg.stopped(&me.key, &me.slot);
                        let _ = reply.send(true);
                        return;
                    }
                    Ok(declined) => {
                        if let Err(e) = declined {
                            tracing::warn!(kind = reg.cfg.kind, entity.id = %me.key, error = %e, "passivation failed; staying active");
                        }
                        me.slot.gate.reopen();
                        reg.settled.notify_waiters();
                        let _ = reply.send(false);
                    }
                    Err(panic) => {
                        reg.failed(&me.key, &me.slot, &panic_message(panic.as_ref()));
                        return;
                    }
                }
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str));
    format!("panicked: {}", text.unwrap_or("(no message)"))
}

#[cfg(all(test, not(loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::supervisor::tests::eventually;
    use std::sync::Mutex;

    use super::*;
    use crate::supervisor::RestartPolicy;

    /// Counts what it handled, parks tickets to keep them in flight, panics on
    /// demand, and saves its count to `saved` when passivated.
    struct Probe {
        activation: Activation,
        handled: u64,
        parked: Vec<Ticket>,
        saved: Arc<Mutex<Option<u64>>>,
    }

    enum ProbeMsg {
        Ask(Ticket, Reply<(Activation, u64)>),
        Park(Ticket),
        Crash(Ticket),
        /// Waits for `go`, then counts and answers.
        Slow(Ticket, Arc<tokio::sync::Notify>, Reply<u64>),
    }

    impl Entity for Probe {
        type Key = u32;
        type Msg = ProbeMsg;

        async fn handle(&mut self, msg: ProbeMsg, _: &EntityRef<Self>) -> Result<(), String> {
            self.handled += 1;
            match msg {
                ProbeMsg::Ask(_ticket, reply) => {
                    tokio::task::yield_now().await;
                    let _ = reply.send((self.activation, self.handled));
                }
                ProbeMsg::Park(ticket) => self.parked.push(ticket),
                ProbeMsg::Crash(_ticket) => panic!("probe told to fail"),
                ProbeMsg::Slow(_ticket, go, reply) => {
                    go.notified().await;
                    let _ = reply.send(self.handled);
                }
            }
            Ok(())
        }

        async fn passivate(&mut self) -> Result<bool, String> {
            if !self.parked.is_empty() {
                return Ok(false);
            }
            *self.saved.lock().unwrap() = Some(self.handled);
            Ok(true)
        }
    }

    struct ProbeActivator {
        saved: Arc<Mutex<Option<u64>>>,
        activations: AtomicU64,
    }

    #[async_trait]
    impl Activate<Probe> for ProbeActivator {
        async fn activate(&self, _: &u32, activation: Activation, _: &EntityRef<Probe>) -> Result<Probe, String> {
            self.activations.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            let handled = self.saved.lock().unwrap().unwrap_or(0);
            Ok(Probe { activation, handled, parked: Vec::new(), saved: Arc::clone(&self.saved) })
        }
    }

    fn probes(max_inflight: u64, policy: RestartPolicy) -> (Arc<EntityRegistry<Probe>>, Arc<ProbeActivator>) {
        let cfg = RegistryConfig { kind: "probe", max_inflight, call_timeout: Duration::from_secs(5) };
        let registry = EntityRegistry::new(cfg, Supervision::new(policy));
        let activator = Arc::new(ProbeActivator { saved: Arc::default(), activations: AtomicU64::new(0) });
        registry.wire(Arc::clone(&activator) as Arc<dyn Activate<Probe>>);
        (registry, activator)
    }

    const LENIENT: RestartPolicy = RestartPolicy { max_restarts: 5, period: Duration::from_secs(30) };

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_activate_once_and_are_served_in_turn() {
        let (registry, activator) = probes(1_000, LENIENT);
        let calls = (0..64).map(|_| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.call(&1, ProbeMsg::Ask).await.unwrap().1 })
        });
        let mut seen: Vec<u64> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=64).collect::<Vec<_>>(), "each call saw the one state, one after the other");
        assert_eq!(activator.activations.load(Ordering::Relaxed), 1);
        assert_eq!(registry.active(), 1);
        assert_eq!(registry.call_new(&2, ProbeMsg::Ask).await, Ok((Activation::New, 1)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_whose_caller_goes_away_finishes_in_a_task_and_serves_the_queue_behind_it() {
        let (registry, _) = probes(8, LENIENT);
        registry.call(&1, ProbeMsg::Ask).await.unwrap();
        // The entity is idle: this caller takes the turn and runs it itself,
        // then gives up (a deadline) while the handler waits.
        let go = Arc::new(tokio::sync::Notify::new());
        let slow = registry.call(&1, |t, r| ProbeMsg::Slow(t, Arc::clone(&go), r));
        assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err(), "the caller gave up");
        // A message queued behind the abandoned turn.
        let behind = tokio::spawn({
            let registry = Arc::clone(&registry);
            async move { registry.call(&1, ProbeMsg::Ask).await }
        });
        eventually("the message queued behind", || registry.stats(1).mailbox_depth == 2).await;
        go.notify_one();
        // The handler finished its message (it counted it) and the turn went on.
        assert_eq!(behind.await.unwrap().map(|r| r.1), Ok(3));
        assert_eq!(registry.call(&1, ProbeMsg::Ask).await.map(|r| r.1), Ok(4));
        assert_eq!(registry.stats(0).mailbox_depth, 0);
    }

    #[tokio::test]
    async fn forced_messages_pass_the_in_flight_bound_that_refuses_new_work() {
        let (registry, _) = probes(1, LENIENT);
        registry.cast(&1, ProbeMsg::Park).await.expect("first message admitted");
        eventually("the parked ticket", || registry.stats(1).mailbox_depth == 1).await;
        assert_eq!(registry.call(&1, ProbeMsg::Ask).await, Err(RegistryError::Busy { depth: 1 }));
        assert_eq!(registry.force_call(&1, ProbeMsg::Ask).await.map(|r| r.1), Ok(2));
        assert_eq!(registry.stats(1).rejections, 1);
    }

    #[tokio::test]
    async fn a_panicking_handler_is_restarted_within_the_intensity_and_quarantined_past_it() {
        let (registry, _) = probes(8, RestartPolicy { max_restarts: 1, period: Duration::from_secs(30) });
        assert_eq!(registry.call_new(&7, ProbeMsg::Ask).await.map(|r| r.0), Ok(Activation::New));

        registry.force_cast(&7, ProbeMsg::Crash).await.expect("crash delivered");
        eventually("the restart", || registry.stats(0).restarts == 1).await;
        assert_eq!(registry.call(&7, ProbeMsg::Ask).await.map(|r| r.0), Ok(Activation::Recover));

        registry.force_cast(&7, ProbeMsg::Crash).await.expect("crash delivered");
        eventually("the quarantine", || registry.stats(0).quarantined == 1).await;
        assert!(matches!(registry.call(&7, ProbeMsg::Ask).await, Err(RegistryError::Quarantined { .. })));
        let stats = registry.stats(0);
        assert_eq!((stats.failures, stats.restarts, stats.active), (2, 1, 0));
        assert!(registry.call(&8, ProbeMsg::Ask).await.is_ok(), "only the entity rests");
    }

    #[tokio::test]
    async fn an_idle_entity_is_passivated_with_its_state_saved_unless_it_has_work() {
        let (registry, activator) = probes(8, LENIENT);
        registry.call(&1, ProbeMsg::Ask).await.unwrap();
        registry.call(&1, ProbeMsg::Ask).await.unwrap();
        registry.cast(&2, ProbeMsg::Park).await.unwrap();
        eventually("the parked ticket", || registry.stats(0).mailbox_depth == 1).await;

        // Entity 2 has a ticket in flight, so its gate does not close.
        assert_eq!(registry.passivate_idle(Duration::ZERO).await, 1);
        let stats = registry.stats(0);
        assert_eq!((stats.passivations, stats.stops, stats.active), (1, 1, 1));
        assert_eq!(*activator.saved.lock().unwrap(), Some(2));

        // It comes back with what it saved.
        assert_eq!(registry.call(&1, ProbeMsg::Ask).await, Ok((Activation::Recover, 3)));
        assert_eq!(activator.activations.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn stopped_registries_admit_nothing() {
        let (registry, _) = probes(8, LENIENT);
        registry.call(&1, ProbeMsg::Ask).await.unwrap();
        registry.stop_all();
        assert_eq!(registry.active(), 0);
        assert_eq!(registry.call(&1, ProbeMsg::Ask).await, Err(RegistryError::NotRunning));
        assert_eq!(registry.stats(0).stops, 1);
    }
}
