//! The entity registry: id -> actor, with get-or-activate, bounded admission,
//! passivation without message loss, and the restarts and quarantines its
//! [`crate::supervisor`] decides.
//!
//! Activation goes through one place: a `OnceCell` per id in a `DashMap`. Every
//! caller that misses races to the same cell, and exactly one runs the activator
//! while the others wait for it, so two actors for one id cannot exist. A dead or
//! passivated actor's slot is *retired*: removed from the map only if it is still
//! the same slot (pointer-equal), so a stale retirement can never remove a
//! successor. See [`crate::gate`] for why passivation cannot drop a message.

use std::fmt::Display;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use ractor::{Actor, ActorCell, ActorId, ActorRef, Message};
use serde::Serialize;
use tokio::sync::{OnceCell, watch};

use crate::gate::{Gate, Refusal, Ticket};
use crate::metrics as m;
use crate::reply::{AskError, Reply, ask};

/// Where an activated entity's state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Whatever the stores hold for the id: every first use and every restart.
    Recover,
    /// Nothing: the caller just minted the id, so nothing can be stored under it
    /// and the actor starts empty without reading the stores.
    New,
}

/// Starts the actor for one id, linked to `supervisor`.
#[async_trait]
pub trait Activator<K, M: Message>: Send + Sync + 'static {
    /// Spawns the actor for `key`, its state found as `activation` says. An `Err`
    /// is reported to the caller as "unavailable" and the next call tries again.
    async fn activate(&self, key: &K, activation: Activation, supervisor: ActorCell) -> Result<ActorRef<M>, String>;
}

/// The activator of any actor kind: spawns `actor` linked to the supervisor,
/// with the arguments `arguments` builds from the key and the [`Activation`].
pub struct Spawner<A, F> {
    actor: A,
    arguments: F,
}

impl<A, F> Spawner<A, F> {
    /// An activator of `actor`s started with what `arguments` returns.
    pub fn new(actor: A, arguments: F) -> Self {
        Spawner { actor, arguments }
    }
}

impl<A: std::fmt::Debug, F> std::fmt::Debug for Spawner<A, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawner").field("actor", &self.actor).finish_non_exhaustive()
    }
}

#[async_trait]
impl<K, A, F> Activator<K, A::Msg> for Spawner<A, F>
where
    K: Sync,
    A: Actor + Clone,
    F: Fn(&K, Activation) -> A::Arguments + Send + Sync + 'static,
{
    async fn activate(
        &self,
        key: &K,
        activation: Activation,
        supervisor: ActorCell,
    ) -> Result<ActorRef<A::Msg>, String> {
        let arguments = (self.arguments)(key, activation);
        let (actor, _) =
            Actor::spawn_linked(None, self.actor.clone(), arguments, supervisor).await.map_err(|e| e.to_string())?;
        Ok(actor)
    }
}

/// Limits of one registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Metric label: `sku` or `cart`.
    pub kind: &'static str,
    /// Messages in flight per actor before callers are turned away (503).
    pub max_inflight: u64,
    /// How long a caller waits for a reply.
    pub call_timeout: Duration,
}

/// Why a message could not be delivered or answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The actor's mailbox is over its bound.
    #[error("entity is overloaded ({depth} messages in flight)")]
    Busy {
        /// Messages already in flight to the actor when this one was refused.
        depth: u64,
    },
    /// The entity failed too often and is resting.
    #[error("entity is quarantined after repeated failures")]
    Quarantined {
        /// When to try again.
        retry_after: Duration,
    },
    /// Recovery failed (e.g. the store is unreachable).
    #[error("entity could not be activated: {0}")]
    ActivationFailed(String),
    /// The actor died before answering; its supervisor is restarting it.
    #[error("entity failed while handling the request")]
    ActorFailed,
    /// No answer in time.
    #[error("entity did not answer in time")]
    Timeout,
    /// The registry is not wired up yet (start-up) or shutting down.
    #[error("registry is not running")]
    NotRunning,
}

/// Whether a message is held to the in-flight bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// New work: refused past `max_inflight`.
    Bounded,
    /// Work that finishes what was admitted: only a closed gate refuses it.
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    Closing,
    Retired,
}

/// One live actor and its gate.
#[derive(Debug)]
pub struct Slot<M: Message> {
    actor: ActorRef<M>,
    gate: Arc<Gate>,
    phase: watch::Sender<Phase>,
    touched: AtomicU64,
}

impl<M: Message> Gated for Slot<M> {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn touched(&self) -> &AtomicU64 {
        &self.touched
    }
}

impl<M: Message> Slot<M> {
    /// The running actor this entity's messages go to.
    pub fn actor(&self) -> &ActorRef<M> {
        &self.actor
    }
}

/// Lifetime counters of one registry, shared with [`crate::entity`]'s.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) starts: AtomicU64,
    pub(crate) stops: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) passivations: AtomicU64,
    pub(crate) rejections: AtomicU64,
    pub(crate) quarantines: AtomicU64,
}

impl Counters {
    /// The operator view: these counters, the `(id, in flight)` of every live
    /// entity (the `top` deepest are kept) and how many are quarantined.
    pub(crate) fn stats(
        &self,
        kind: &'static str,
        mut depths: Vec<(String, u64)>,
        top: usize,
        quarantined: usize,
    ) -> RegistryStats {
        let active = depths.len();
        let mailbox_depth = depths.iter().map(|(_, d)| d).sum();
        depths.sort_by_key(|d| std::cmp::Reverse(d.1));
        depths.retain(|(_, d)| *d > 0);
        depths.truncate(top);
        RegistryStats {
            kind,
            active,
            starts: self.starts.load(Ordering::Relaxed),
            stops: self.stops.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            passivations: self.passivations.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            quarantined,
            mailbox_depth,
            hot: depths,
        }
    }
}

/// What the [`Table`] needs of a slot: its gate and when it was last used.
pub(crate) trait Gated {
    /// The slot's admission gate.
    fn gate(&self) -> &Gate;
    /// Milliseconds (registry clock) of its last admission.
    fn touched(&self) -> &AtomicU64;
}

/// The part both registries (actors here, scheduled entities in
/// [`crate::entity`]) keep alike: a `OnceCell` per id for get-or-activate, the
/// quarantine, the counters and the stopping flag, with the operator figures
/// drawn from them.
pub(crate) struct Table<K, S> {
    kind: &'static str,
    cells: DashMap<K, Arc<OnceCell<Arc<S>>>>,
    quarantine: DashMap<K, Instant>,
    pub(crate) counters: Counters,
    stopping: AtomicBool,
}

impl<K, S> Table<K, S>
where
    K: Clone + Eq + Hash + Display,
    S: Gated,
{
    /// An empty table of `kind` (the metric label).
    pub(crate) fn new(kind: &'static str) -> Self {
        Table {
            kind,
            cells: DashMap::new(),
            quarantine: DashMap::new(),
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// The live slot of `key`, if activated.
    pub(crate) fn live(&self, key: &K) -> Option<Arc<S>> {
        self.cells.get(key).and_then(|c| c.get().cloned())
    }

    /// The live slot of `key`, or the one `activate` makes: exactly one
    /// activation runs per id while the others wait for it. A quarantined id is
    /// refused until its quarantine ends; a failed activation leaves no cell.
    pub(crate) async fn get_or_activate<F, Fut>(&self, key: &K, activate: F) -> Result<Arc<S>, RegistryError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<S>, RegistryError>>,
    {
        if let Some(slot) = self.live(key) {
            return Ok(slot);
        }
        if let Some(until) = self.quarantine.get(key).map(|u| *u) {
            let now = Instant::now();
            if now < until {
                self.reject("quarantined");
                return Err(RegistryError::Quarantined { retry_after: until - now });
            }
            self.quarantine.remove(key);
        }
        let cell = Arc::clone(&*self.cells.entry(key.clone()).or_default());
        let result = cell.get_or_try_init(activate).await.map(Arc::clone);
        if result.is_err() {
            // Leave no empty cell behind for a key that may never be used again.
            self.cells.remove_if(key, |_, c| Arc::ptr_eq(c, &cell) && c.get().is_none());
        }
        result
    }

    /// Removes `slot` from the table if it is still the one of `key`; true if it was.
    pub(crate) fn remove(&self, key: &K, slot: &Arc<S>) -> bool {
        self.cells.remove_if(key, |_, c| c.get().is_some_and(|s| Arc::ptr_eq(s, slot))).is_some()
    }

    /// Every live slot.
    pub(crate) fn live_slots(&self) -> Vec<(K, Arc<S>)> {
        self.cells.iter().filter_map(|e| e.value().get().map(|s| (e.key().clone(), Arc::clone(s)))).collect()
    }

    /// Live slots idle since `cutoff` (registry ms) with nothing in flight.
    pub(crate) fn idle_since(&self, cutoff: u64) -> Vec<(K, Arc<S>)> {
        let mut idle = self.live_slots();
        idle.retain(|(_, s)| s.touched().load(Ordering::Relaxed) <= cutoff && s.gate().depth() == 0);
        idle
    }

    /// Counts a message turned away.
    pub(crate) fn reject(&self, reason: &'static str) {
        self.counters.rejections.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_REJECTIONS, "kind" => self.kind, "reason" => reason).increment(1);
    }

    /// Refuses `key` (503 + Retry-After) until `until`; the next call after it
    /// activates the entity again.
    pub(crate) fn quarantine(&self, key: K, until: Instant) {
        self.quarantine.insert(key, until);
        self.counters.quarantines.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_QUARANTINES, "kind" => self.kind).increment(1);
    }

    /// True once shutdown began.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Admits nothing new from now on.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Stops and closes every gate so nothing new is admitted (shutdown); what
    /// is already admitted still runs.
    pub(crate) fn close_all(&self) {
        self.stop();
        for e in self.cells.iter() {
            if let Some(s) = e.value().get() {
                s.gate().force_close();
            }
        }
    }

    /// How many ids have a live slot right now.
    pub(crate) fn active(&self) -> usize {
        self.cells.iter().filter(|e| e.value().get().is_some()).count()
    }

    /// Operator figures, with the `top` deepest mailboxes.
    pub(crate) fn stats(&self, top: usize) -> RegistryStats {
        let depths: Vec<(String, u64)> = self
            .cells
            .iter()
            .filter_map(|e| e.value().get().map(|s| (e.key().to_string(), s.gate().depth())))
            .collect();
        let now = Instant::now();
        let quarantined = self.quarantine.iter().filter(|e| *e.value() > now).count();
        self.counters.stats(self.kind, depths, top, quarantined)
    }
}

/// Operator view of one registry (`GET /v1/admin/actors`).
#[derive(Debug, Clone, Serialize)]
pub struct RegistryStats {
    /// `sku` or `cart`.
    pub kind: &'static str,
    /// Entities with a running actor right now.
    pub active: usize,
    /// Actors spawned since start: first activations, reactivations and restarts.
    pub starts: u64,
    /// Actors that stopped without failing (passivation, shutdown).
    pub stops: u64,
    /// Failures (panics, handler errors).
    pub failures: u64,
    /// Failed entities the supervisor reactivated instead of quarantining.
    pub restarts: u64,
    /// Idle actors saved and stopped; each reactivates on its next message.
    pub passivations: u64,
    /// Messages turned away (busy, quarantined).
    pub rejections: u64,
    /// Entities refused right now until their quarantine ends.
    pub quarantined: usize,
    /// Messages in flight, summed over all actors.
    pub mailbox_depth: u64,
    /// The busiest entities: (id, messages in flight), deepest first.
    pub hot: Vec<(String, u64)>,
}

/// The registry of one entity kind. See the module docs.
pub struct Registry<K, M: Message> {
    cfg: RegistryConfig,
    table: Table<K, Slot<M>>,
    owners: DashMap<ActorId, K>,
    activator: OnceLock<(Arc<dyn Activator<K, M>>, ActorCell)>,
    epoch: Instant,
}

impl<K, M: Message> std::fmt::Debug for Registry<K, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("kind", &self.cfg.kind).finish_non_exhaustive()
    }
}

impl<K, M> Registry<K, M>
where
    K: Clone + Eq + Hash + Display + Send + Sync + 'static,
    M: Message,
{
    /// An empty registry; call [`Registry::wire`] before use.
    pub fn new(cfg: RegistryConfig) -> Arc<Self> {
        Arc::new(Registry {
            table: Table::new(cfg.kind),
            cfg,
            owners: DashMap::new(),
            activator: OnceLock::new(),
            epoch: Instant::now(),
        })
    }

    /// Connects the activator and the supervisor its actors are linked to.
    pub fn wire(&self, activator: Arc<dyn Activator<K, M>>, supervisor: ActorCell) {
        let _ = self.activator.set((activator, supervisor));
    }

    /// Its kind label, in-flight bound and call timeout.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The live slot for `key`, activating (and recovering) the entity if needed.
    pub async fn slot(&self, key: &K) -> Result<Arc<Slot<M>>, RegistryError> {
        self.slot_or_activate(key, Activation::Recover).await
    }

    /// The live slot for `key`, or a new one activated as `activation` says.
    async fn slot_or_activate(&self, key: &K, activation: Activation) -> Result<Arc<Slot<M>>, RegistryError> {
        self.table.get_or_activate(key, || self.activate(key, activation)).await
    }

    async fn activate(&self, key: &K, activation: Activation) -> Result<Arc<Slot<M>>, RegistryError> {
        if self.table.stopping() {
            return Err(RegistryError::NotRunning);
        }
        let (activator, supervisor) = self.activator.get().ok_or(RegistryError::NotRunning)?;
        let actor = activator.activate(key, activation, supervisor.clone()).await.map_err(|e| {
            tracing::warn!(kind = self.cfg.kind, entity.id = %key, error = %e, "activation failed");
            RegistryError::ActivationFailed(e)
        })?;
        self.owners.insert(actor.get_id(), key.clone());
        self.table.counters.starts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_STARTS, "kind" => self.cfg.kind).increment(1);
        metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).increment(1.0);
        let (phase, _) = watch::channel(Phase::Open);
        Ok(Arc::new(Slot { actor, gate: Gate::new(), phase, touched: AtomicU64::new(self.now_ms()) }))
    }

    /// Admits one message for `key`: the actor to send it to and the ticket the
    /// message must carry.
    async fn enter(
        &self,
        key: &K,
        admission: Admission,
        activation: Activation,
    ) -> Result<(ActorRef<M>, Ticket), RegistryError> {
        loop {
            let slot = self.slot_or_activate(key, activation).await?;
            let entered = match admission {
                Admission::Bounded => slot.gate.try_enter(self.cfg.max_inflight),
                Admission::Forced => slot.gate.force_enter(),
            };
            match entered {
                Ok(ticket) => {
                    slot.touched.store(self.now_ms(), Ordering::Relaxed);
                    return Ok((slot.actor.clone(), ticket));
                }
                Err(Refusal::Busy { depth }) => {
                    self.table.reject("busy");
                    return Err(RegistryError::Busy { depth });
                }
                Err(Refusal::Closed) => {
                    if self.table.stopping() {
                        return Err(RegistryError::NotRunning);
                    }
                    // Passivating or dead: wait until the slot is retired or reopened.
                    let mut rx = slot.phase.subscribe();
                    let gate = Arc::clone(&slot.gate);
                    let settled = rx.wait_for(|p| *p == Phase::Retired || (*p == Phase::Open && !gate.is_closed()));
                    if tokio::time::timeout(self.cfg.call_timeout, settled).await.is_err() {
                        return Err(RegistryError::Timeout);
                    }
                }
            }
        }
    }

    /// Sends a request that adds work and waits for the answer; refused with
    /// [`RegistryError::Busy`] once `max_inflight` messages are in flight.
    pub async fn call<R, F>(&self, key: &K, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> M,
    {
        self.request(key, Admission::Bounded, Activation::Recover, build).await
    }

    /// Sends a request that finishes admitted work (a release) past the
    /// in-flight bound, and waits for the answer.
    pub async fn force_call<R, F>(&self, key: &K, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> M,
    {
        self.request(key, Admission::Forced, Activation::Recover, build).await
    }

    /// Like [`Registry::call`], for an id the caller just minted: the entity is
    /// activated as [`Activation::New`], without reading the stores.
    pub async fn call_new<R, F>(&self, key: &K, build: F) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> M,
    {
        self.request(key, Admission::Bounded, Activation::New, build).await
    }

    async fn request<R, F>(
        &self,
        key: &K,
        admission: Admission,
        activation: Activation,
        build: F,
    ) -> Result<R, RegistryError>
    where
        R: Send + 'static,
        F: FnOnce(Ticket, Reply<R>) -> M,
    {
        let (actor, ticket) = self.enter(key, admission, activation).await?;
        match ask(&actor, |reply| build(ticket, reply), Some(self.cfg.call_timeout)).await {
            Ok(r) => Ok(r),
            Err(AskError::Timeout) => Err(RegistryError::Timeout),
            Err(AskError::NoAnswer) => Err(RegistryError::ActorFailed),
            Err(AskError::NotRunning) => {
                self.retire_actor(key, actor.get_id());
                Err(RegistryError::ActorFailed)
            }
        }
    }

    /// Sends a message that adds work without waiting for an answer; refused with
    /// [`RegistryError::Busy`] once `max_inflight` messages are in flight.
    pub async fn cast<F>(&self, key: &K, build: F) -> Result<(), RegistryError>
    where
        F: FnOnce(Ticket) -> M,
    {
        self.deliver(key, Admission::Bounded, build).await
    }

    /// Sends a message that must get through (a commit, an abort) past the
    /// in-flight bound, without waiting for an answer.
    pub async fn force_cast<F>(&self, key: &K, build: F) -> Result<(), RegistryError>
    where
        F: FnOnce(Ticket) -> M,
    {
        self.deliver(key, Admission::Forced, build).await
    }

    async fn deliver<F>(&self, key: &K, admission: Admission, build: F) -> Result<(), RegistryError>
    where
        F: FnOnce(Ticket) -> M,
    {
        let (actor, ticket) = self.enter(key, admission, Activation::Recover).await?;
        actor.cast(build(ticket)).map_err(|_| {
            self.retire_actor(key, actor.get_id());
            RegistryError::ActorFailed
        })
    }

    /// Removes `slot` from the map if it is still the one registered for `key`,
    /// closes it, and wakes anyone waiting on it.
    fn retire(&self, key: &K, slot: &Arc<Slot<M>>) {
        slot.gate.force_close();
        self.table.remove(key, slot);
        slot.phase.send_replace(Phase::Retired);
    }

    fn retire_actor(&self, key: &K, actor: ActorId) {
        let current = self.table.live(key);
        if let Some(slot) = current.filter(|s| s.actor.get_id() == actor) {
            self.retire(key, &slot);
        }
    }

    /// Passivates every actor idle for at least `idle` with nothing in flight.
    ///
    /// For each: close its gate (only succeeds with nothing in flight), ask it to
    /// save its state and stop (`make` builds that request), then retire the slot.
    /// If the actor declines (`Ok(false)`: it still has work, such as holds to
    /// expire) or cannot save, its gate reopens and it stays. Returns how many
    /// were passivated.
    pub async fn passivate_idle<F>(&self, idle: Duration, make: F) -> usize
    where
        F: Fn(Reply<Result<bool, String>>) -> M,
    {
        let cutoff = self.now_ms().saturating_sub(idle.as_millis() as u64);
        let candidates = self.table.idle_since(cutoff);
        let mut n = 0;
        for (key, slot) in candidates {
            if !slot.gate.try_close() {
                continue;
            }
            slot.phase.send_replace(Phase::Closing);
            match ask(&slot.actor, &make, Some(self.cfg.call_timeout)).await {
                Ok(Ok(true)) => {
                    self.retire(&key, &slot);
                    n += 1;
                    self.table.counters.passivations.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(m::ACTOR_PASSIVATIONS, "kind" => self.cfg.kind).increment(1);
                }
                Ok(Ok(false)) => {
                    slot.gate.reopen();
                    slot.phase.send_replace(Phase::Open);
                }
                Ok(Err(e)) => {
                    tracing::warn!(kind = self.cfg.kind, entity.id = %key, error = %e, "passivation failed; staying active");
                    slot.gate.reopen();
                    slot.phase.send_replace(Phase::Open);
                }
                _ => self.retire(&key, &slot),
            }
        }
        n
    }

    /// Called by the supervisor when a child stopped cleanly.
    pub(crate) fn child_stopped(&self, actor: ActorId) {
        if let Some((_, key)) = self.owners.remove(&actor) {
            self.retire_actor(&key, actor);
            self.table.counters.stops.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::ACTOR_STOPS, "kind" => self.cfg.kind).increment(1);
            metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).decrement(1.0);
        }
    }

    /// Called by the supervisor when a child failed: retires it and returns its
    /// key, so the supervisor can decide between [`Registry::restart`] and
    /// [`Registry::quarantine`]. `None` if the actor was not one of ours.
    pub(crate) fn child_failed(&self, actor: ActorId, reason: String) -> Option<K> {
        let (_, key) = self.owners.remove(&actor)?;
        self.retire_actor(&key, actor);
        self.table.counters.failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::ACTOR_FAILURES, "kind" => self.cfg.kind).increment(1);
        metrics::gauge!(m::ACTORS_ACTIVE, "kind" => self.cfg.kind).decrement(1.0);
        tracing::error!(kind = self.cfg.kind, entity.id = %key, reason = %reason, "actor failed");
        Some(key)
    }

    /// Reactivates a failed entity now, through the one activation path.
    pub(crate) fn restart(self: &Arc<Self>, key: K) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            match this.slot(&key).await {
                Ok(_) => {
                    this.table.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(m::ACTOR_RESTARTS, "kind" => this.cfg.kind).increment(1);
                    tracing::info!(kind = this.cfg.kind, entity.id = %key, "actor restarted");
                }
                Err(e) => tracing::error!(kind = this.cfg.kind, entity.id = %key, error = %e, "restart failed"),
            }
        });
    }

    /// Refuses `key` (503 + Retry-After) until `until`; the next call after it
    /// activates the entity again.
    pub(crate) fn quarantine(&self, key: K, until: Instant) {
        self.table.quarantine(key, until);
    }

    /// Every live actor, for shutdown and snapshots.
    pub fn actors(&self) -> Vec<(K, ActorRef<M>)> {
        self.table.live_slots().into_iter().map(|(k, s)| (k, s.actor.clone())).collect()
    }

    /// Closes every gate so nothing new is admitted (shutdown).
    pub fn close_all(&self) {
        self.table.close_all();
    }

    /// Takes the live actors whose key `pred` picks out of the table (their
    /// gates closed; the next call for one activates it afresh) and returns
    /// them for the caller to stop: their shard moved to another node.
    pub fn take_where(&self, pred: impl Fn(&K) -> bool) -> Vec<(K, ActorRef<M>)> {
        let mut taken = Vec::new();
        for (key, slot) in self.table.live_slots() {
            if pred(&key) {
                self.retire(&key, &slot);
                taken.push((key, slot.actor.clone()));
            }
        }
        taken
    }

    /// How many entities have a running actor right now.
    pub fn active(&self) -> usize {
        self.table.active()
    }

    /// Operator figures, with the `top` deepest mailboxes.
    pub fn stats(&self, top: usize) -> RegistryStats {
        self.table.stats(top)
    }
}
