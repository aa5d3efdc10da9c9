//! Ownership of the store: a process sells only while it holds the leases.
//!
//! The leases live in the store ([`LeaseStore`]: a lease row per shard with an
//! owner, an epoch and an expiry, and a membership row per process). This module
//! keeps them and tells the rest of the process what it may do:
//!
//! - **Standby**: no lease. Polls for the leases; the API answers 503 `standby`.
//! - **Recovering**: leases taken (every epoch bumped), the engine is recovering
//!   from the store; writes are allowed, the API answers 503 `not-ready`.
//! - **Serving**: the API is admitted.
//! - **HandingOff**: graceful stop: nothing new is admitted, in-flight work and
//!   the final flush still write; then the leases are released (**Stopped**).
//! - **Lost**: the lease could not be renewed before the local deadline, was
//!   taken over, or a store refused a write as fenced. Nothing is admitted and
//!   nothing is written; the node drops its engine (its memory is no longer the
//!   truth) and goes back to standby.
//! - **Moving** (cluster mode only): the node's share of the shards changes (a
//!   node joined or left) while its engine keeps running. The free shards it
//!   is short of are taken first (epoch + 1); then nothing new is admitted for
//!   a moment (requests wait), in-flight work finishes, the shards that leave
//!   are flushed, dropped from memory and released, the ones taken are
//!   recovered, and the node serves again. The shards it keeps keep their
//!   epochs and their state in memory.
//!
//! **Shares.** By default one process holds every shard. In cluster mode
//! ([`LeaseConfig::share`]) every node takes the share that
//! [`flashcore_domain::placement::plan`] gives it from the live members and the
//! lease table: nodes race only for free leases, settled by the store's
//! all-or-none acquisition, and a node over its quota releases the excess a few
//! shards per round while someone is short (no thrash: when every node holds its
//! quota, nothing moves).
//!
//! Two clocks keep two processes from ever selling at once. The store's clock
//! decides when a lease has expired and may be taken over (`expires_at`); this
//! process's monotonic clock decides when it stops on its own: at the instant it
//! *sent* its last successful renewal plus the TTL minus a margin, which is
//! before the store's expiry whatever the network delay. And a write that
//! arrives late anyway (a process frozen mid-write) is refused by the store,
//! which checks the writer's epochs in the same transaction ([`Fence`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use flashcore_domain::placement::{self, Moves};
use flashcore_domain::{ShardId, Shards};
use serde::Serialize;
use tokio::sync::watch;

use crate::admission::Admissions;
use crate::metrics as m;
use crate::ports::{Fence, Lease, LeaseRow, LeaseStore, Member, MemberStatus, Owner, Route, StoreError};

/// The most shards a node hands off in one round of a rebalance.
const MAX_MOVES: u32 = 32;

/// How many shards there are and how leases are timed.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    /// Shards of the store (`FLASHCORE_SHARDS`); one node holds all of them.
    pub shards: Shards,
    /// How long a lease lasts unless renewed (`FLASHCORE_LEASE_TTL_MS`).
    pub ttl: Duration,
    /// How often a standby looks for free leases.
    pub poll: Duration,
    /// True for a holder known to be gone for good (a process of this host that
    /// no longer runs): its leases are released on its behalf and taken at once
    /// instead of waiting for them to lapse. Default: nobody is known gone, so a
    /// standby always waits for the TTL. Only ever a shortcut for liveness; a
    /// wrong `true` costs the live holder its lease (it is fenced), never a sale.
    pub owner_gone: fn(&Owner) -> bool,
    /// Cluster mode: take a planned share of the shards (see the module docs)
    /// instead of all of them.
    pub share: bool,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            shards: Shards::default(),
            ttl: Duration::from_secs(5),
            poll: Duration::from_millis(200),
            owner_gone: |_| false,
            share: false,
        }
    }
}

impl LeaseConfig {
    /// Renewals run at a third of the TTL, so two can fail before the deadline.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How much earlier than the store's expiry this process stops on its own:
    /// a fifth of the TTL, at least 100 ms (clock-rate drift, scheduling).
    pub fn margin(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_millis(100)).min(self.ttl / 2)
    }
}

/// What the process may do now. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Phase {
    /// No lease; waiting for one.
    Standby = 0,
    /// Leases held, engine recovering.
    Recovering = 1,
    /// Leases held, serving.
    Serving = 2,
    /// Graceful stop in progress; leases still held.
    HandingOff = 3,
    /// Leases lost; dropping the engine.
    Lost = 4,
    /// Leases released; the process is stopping.
    Stopped = 5,
    /// Cluster mode: the node's share changes; leases still held until the
    /// engine's final flush, then the moving ones are released.
    Moving = 6,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Recovering,
            2 => Phase::Serving,
            3 => Phase::HandingOff,
            4 => Phase::Lost,
            5 => Phase::Stopped,
            6 => Phase::Moving,
            _ => Phase::Standby,
        }
    }

    /// True while the leases are held (writes allowed).
    pub fn holds_lease(self) -> bool {
        matches!(self, Phase::Recovering | Phase::Serving | Phase::HandingOff | Phase::Moving)
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServing(pub Phase);

/// This process's lease state, as served by `GET /v1/admin/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct OwnershipView {
    /// This process's node id.
    pub node: String,
    /// This start of the process (ms since the epoch at start-up).
    pub generation: u64,
    /// What it is doing.
    pub phase: Phase,
    /// Shards in the store.
    pub shards: u32,
    /// Shards this process holds now (all or none of them, unless in cluster mode).
    pub held: usize,
    /// Times this process's share changed (cluster mode).
    pub moves: u64,
    /// Lowest and highest epoch held (when holding).
    pub epochs: Option<(u64, u64)>,
    /// Milliseconds until this process stops on its own unless it renews.
    pub deadline_in_ms: Option<u64>,
    /// Who holds the leases, as last seen (a standby's view).
    pub holder: Option<String>,
    /// Times the leases were taken.
    pub acquisitions: u64,
    /// Times they were lost (deadline, take-over, fenced write).
    pub losses: u64,
    /// Writes refused because this process no longer held the lease.
    pub fenced_writes: u64,
}

/// This process's ownership state. See the module docs.
#[derive(Debug)]
pub struct Ownership {
    owner: Owner,
    address: String,
    cfg: LeaseConfig,
    base: Instant,
    /// The phase and the requests admitted and not finished.
    admissions: Admissions,
    /// Nanoseconds since `base` at which the process stops on its own; 0: none.
    deadline: AtomicU64,
    /// Incremented by every acquisition; an admission is valid for one term.
    term: AtomicU64,
    fence: ArcSwapOption<Fence>,
    changes: watch::Sender<Phase>,
    holder: Mutex<Option<String>>,
    /// Why the last look for the leases failed, while it keeps failing.
    unreachable: Mutex<Option<String>>,
    acquisitions: AtomicU64,
    losses: AtomicU64,
    fenced_writes: AtomicU64,
    /// The move in progress: the shards it hands off, the leases it took.
    moving: Mutex<Move>,
    /// Wakes the keeper to check the leases (a write was fenced).
    check: tokio::sync::Notify,
    /// Shards taken (in the fence, epoch + 1) that the node is recovering:
    /// not served until [`Ownership::adopted`].
    adopting: ArcSwapOption<Vec<ShardId>>,
    /// Wakes the node to recover shards taken.
    taken: tokio::sync::Notify,
    /// Wakes requests waiting for shards being recovered.
    adopted: tokio::sync::Notify,
    /// Wakes those waiting for that check.
    verified: tokio::sync::Notify,
    moves: AtomicU64,
    /// Cluster mode: who serves each shard, as the last round read the lease
    /// and membership tables (by shard number).
    routes: ArcSwapOption<Vec<Option<Route>>>,
    /// When the routes were last read on demand ([`Ownership::reroute`]), one
    /// read at a time.
    rerouted: tokio::sync::Mutex<Option<Instant>>,
    /// The lease store, once [`Ownership::keep`] runs.
    store: StoreCell,
}

/// A change of this node's share while it serves (cluster mode).
#[derive(Debug, Default, Clone)]
struct Move {
    /// A write was fenced or a renewal refused: which leases are still held
    /// is being checked.
    verify: bool,
    /// Shards whose leases were lost, for the engine to drop.
    lost: Vec<ShardId>,
    /// Held shards to hand off once the node has flushed them.
    release: Vec<ShardId>,
}

/// The lease store, once known.
#[derive(Default)]
struct StoreCell(OnceLock<Arc<dyn LeaseStore>>);

impl std::fmt::Debug for StoreCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "StoreCell(set)" } else { "StoreCell(unset)" })
    }
}

/// A request admitted while serving; counts it in flight until dropped.
#[derive(Debug)]
#[must_use]
pub struct Admission<'a> {
    own: &'a Ownership,
    term: u64,
    /// Counted in flight (a move's drain waits for it).
    counted: bool,
}

impl Admission<'_> {
    /// True if the leases this request was admitted under are still held, in
    /// the same term and within the deadline: an answer computed from memory
    /// may only leave while this holds. (A move or a hand-off in progress still
    /// holds them: what finishes during its drain is answered; a loss, even of
    /// one shard, starts a new term.)
    pub fn still_valid(&self) -> bool {
        self.own.valid_term() == Some(self.term)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.own.admissions.leave();
        }
    }
}

impl Ownership {
    /// A process named `owner`, serving at `address`, that holds nothing yet.
    pub fn new(owner: Owner, address: String, cfg: LeaseConfig) -> Arc<Self> {
        let (changes, _) = watch::channel(Phase::Standby);
        // Counters that may stay at zero for a long time exist from the start
        // (dashboards and rate() see 0, not nothing).
        metrics::counter!(m::SHARD_MOVES).increment(0);
        metrics::counter!(m::LEASE_RENEW_FAILURES).increment(0);
        metrics::counter!(m::LEASE_LOSSES).increment(0);
        for by in ["node", "store"] {
            metrics::counter!(m::FENCED_WRITES, "by" => by).increment(0);
        }
        Arc::new(Ownership {
            owner,
            address,
            cfg,
            base: Instant::now(),
            admissions: Admissions::new(Phase::Standby as u8),
            deadline: AtomicU64::new(0),
            term: AtomicU64::new(0),
            fence: ArcSwapOption::empty(),
            changes,
            holder: Mutex::new(None),
            unreachable: Mutex::new(None),
            acquisitions: AtomicU64::new(0),
            losses: AtomicU64::new(0),
            fenced_writes: AtomicU64::new(0),
            moving: Mutex::new(Move::default()),
            check: tokio::sync::Notify::new(),
            adopting: ArcSwapOption::empty(),
            taken: tokio::sync::Notify::new(),
            adopted: tokio::sync::Notify::new(),
            verified: tokio::sync::Notify::new(),
            moves: AtomicU64::new(0),
            routes: ArcSwapOption::empty(),
            rerouted: tokio::sync::Mutex::new(None),
            store: StoreCell::default(),
        })
    }

    /// Takes the leases of every shard in `store` (waiting while another process
    /// holds them), keeps renewing them in the background, and returns serving:
    /// for tools, benchmarks and tests that run an engine without a node.
    pub async fn hold(store: Arc<dyn LeaseStore>, owner: Owner, cfg: LeaseConfig) -> Arc<Self> {
        let own = Ownership::new(owner, "in-process".into(), cfg);
        let mut phases = own.watch();
        tokio::spawn(Arc::clone(&own).keep(store));
        let _ = phases.wait_for(|p| *p == Phase::Recovering).await;
        own.serve();
        own
    }

    /// This process: the identity its leases and writes carry.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The shard count and lease timing this process runs with.
    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    /// What the process may do now.
    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.admissions.phase())
    }

    /// A receiver of the current phase, updated on every change.
    pub fn watch(&self) -> watch::Receiver<Phase> {
        self.changes.subscribe()
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX).max(1)
    }

    fn within_deadline(&self) -> bool {
        self.nanos(Instant::now()) < self.deadline.load(Ordering::SeqCst)
    }

    /// The term while the leases are held within the deadline.
    fn valid_term(&self) -> Option<u64> {
        let term = self.term.load(Ordering::SeqCst);
        (self.phase().holds_lease() && self.within_deadline()).then_some(term)
    }

    /// Admits one request if the process is serving; the admission counts it in
    /// flight (so a hand-off can wait for it) until dropped.
    pub fn admit(&self) -> Result<Admission<'_>, NotServing> {
        // Count first, then look (see `crate::admission`): a hand-off that flips
        // the phase and then finds nothing in flight cannot miss this request.
        let term = self.term.load(Ordering::SeqCst);
        match self.admissions.enter(|p| p == Phase::Serving as u8 && self.within_deadline()) {
            Ok(()) => Ok(Admission { own: self, term, counted: true }),
            Err(p) => {
                let phase = Phase::from_u8(p);
                Err(NotServing(if phase == Phase::Serving { Phase::Lost } else { phase }))
            }
        }
    }

    /// Admits a call from another node about `shard`: as [`Ownership::admit`],
    /// and also during a move for a shard that stays here (not counted in
    /// flight: the move does not wait for it, and it touches nothing the move
    /// writes or drops). Two nodes moving at once then never wait on each
    /// other's drain.
    pub fn admit_peer(&self, shard: ShardId) -> Result<Admission<'_>, NotServing> {
        match self.admit() {
            Err(NotServing(Phase::Moving)) if self.serves(shard) && !self.leaving(shard) => {
                let term = self.term.load(Ordering::SeqCst);
                Ok(Admission { own: self, term, counted: false })
            }
            other => other,
        }
    }

    fn leaving(&self, shard: ShardId) -> bool {
        self.moving.lock().map(|m| m.release.contains(&shard)).unwrap_or(true)
    }

    /// The fence to write under: `None` unless the leases are held and this
    /// process is within its deadline (it writes nothing otherwise).
    pub fn fence(&self) -> Option<Arc<Fence>> {
        if !self.phase().holds_lease() || !self.within_deadline() {
            return None;
        }
        self.fence.load_full()
    }

    /// The fence to write under, or the error a write without one gets.
    pub fn write_fence(&self) -> Result<Arc<Fence>, StoreError> {
        self.fence().ok_or_else(|| {
            self.count_fenced("node");
            StoreError::Fenced(format!("{} does not hold the lease", self.owner))
        })
    }

    fn count_fenced(&self, by: &'static str) {
        self.fenced_writes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::FENCED_WRITES, "by" => by).increment(1);
    }

    /// A store refused a write as fenced: another node holds a lease the write
    /// relied on. Stop serving at once: the whole store by default; in cluster
    /// mode admitting pauses (a new term: nothing in flight is answered) until
    /// the keeper has read which shards this node still holds, and only the
    /// others are given up ([`Ownership::lost_shards`]).
    pub fn fenced(&self, what: &str) {
        self.count_fenced("store");
        if self.cfg.share {
            tracing::warn!(node = %self.owner, what, "the store refused a write as fenced: checking which shards are still held");
            self.suspect();
        } else {
            self.lose(&format!("the store refused a {what} write: another node holds the lease"));
        }
    }

    /// Cluster mode: some lease may be lost. Admitting pauses in a new term
    /// (as for a move) until [`Ownership::keep`] has checked the lease table.
    fn suspect(&self) {
        if let Ok(mut m) = self.moving.lock() {
            m.verify = true;
        }
        self.term.fetch_add(1, Ordering::SeqCst);
        self.transition(Phase::Serving, Phase::Moving);
        self.check.notify_one();
    }

    /// Cluster mode: reads the lease table and keeps serving the shards this
    /// node still holds under their epochs; the others leave the fence at once
    /// (nothing more is written or answered for them) and wait for the node to
    /// drop them from memory. If none is held any more, the node loses them all.
    async fn verify_leases(&self, store: &dyn LeaseStore) {
        let rows = match store.leases().await {
            Ok(rows) => rows,
            Err(e) => {
                // Unknown: check again soon (the deadline still bounds it all).
                tracing::warn!(node = %self.owner, error = %e, "cannot read the leases to check them");
                tokio::time::sleep(self.cfg.poll).await;
                self.check.notify_one();
                return;
            }
        };
        let Some(fence) = self.fence.load_full() else { return };
        let now = crate::clock::now();
        let lost: Vec<ShardId> = fence
            .leases()
            .into_iter()
            .filter(|l| {
                !rows.iter().any(|r| {
                    r.shard == l.shard
                        && r.epoch == l.epoch
                        && r.owner.as_ref() == Some(&self.owner)
                        && r.expires_at > now
                })
            })
            .map(|l| l.shard)
            .collect();
        if lost.len() == fence.leases().len() {
            self.lose("the leases were taken over by another node");
            return;
        }
        if !lost.is_empty() {
            self.fence.rcu(|cur| cur.as_ref().map(|f| Arc::new(f.reshaped(&lost, &[]))));
            self.note_held();
            self.losses.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::LEASE_LOSSES).increment(1);
            tracing::error!(node = %self.owner, shards = ?lost.iter().map(|s| s.get()).collect::<Vec<_>>(), "lost the leases of some shards: this node stops serving them and keeps its others");
        }
        if let Ok(mut m) = self.moving.lock() {
            m.lost.extend(lost);
            m.verify = false;
        }
        self.verified.notify_waiters();
    }

    /// Waits until no lease check is pending (see [`Ownership::fenced`]).
    pub async fn verified(&self) {
        loop {
            let done = self.verified.notified();
            if !self.moving.lock().map(|m| m.verify).unwrap_or(false) || !self.phase().holds_lease() {
                return;
            }
            done.await;
        }
    }

    /// Shards whose leases were lost while the node held others: its engine
    /// drops them from memory (writing nothing).
    pub fn lost_shards(&self) -> Vec<ShardId> {
        self.moving.lock().map(|mut m| std::mem::take(&mut m.lost)).unwrap_or_default()
    }

    fn transition(&self, from: Phase, to: Phase) -> bool {
        let ok = self.admissions.transition(from as u8, to as u8);
        if ok {
            self.changes.send_replace(to);
            metrics::gauge!(m::LEASE_OWNED).set(if to.holds_lease() { 1.0 } else { 0.0 });
            if !to.holds_lease() {
                metrics::gauge!(m::SHARDS_OWNED).set(0.0);
            }
        }
        ok
    }

    fn lose(&self, reason: &str) {
        for from in [Phase::Recovering, Phase::Serving, Phase::HandingOff, Phase::Moving] {
            if self.transition(from, Phase::Lost) {
                self.deadline.store(0, Ordering::SeqCst);
                self.fence.store(None);
                if let Ok(mut m) = self.moving.lock() {
                    *m = Move::default();
                }
                self.adopting.store(None);
                self.verified.notify_waiters();
                self.adopted.notify_waiters();
                self.losses.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::LEASE_LOSSES).increment(1);
                tracing::error!(node = %self.owner, reason, "lease lost: this node stops serving");
                return;
            }
        }
    }

    /// Recovery is done: admit requests (false if the lease was lost meanwhile).
    pub fn serve(&self) -> bool {
        self.transition(Phase::Recovering, Phase::Serving)
    }

    /// Graceful stop: admit nothing new; writes go on until [`Ownership::release`].
    pub fn begin_handoff(&self) {
        if !self.transition(Phase::Serving, Phase::HandingOff) {
            self.transition(Phase::Recovering, Phase::HandingOff);
        }
    }

    /// Recovery failed: give the leases back at once (another node may do
    /// better) and stop writing; [`Ownership::back_to_standby`] then looks again.
    pub async fn yield_leases(&self, store: &dyn LeaseStore) {
        let fence = self.fence.swap(None);
        if !self.transition(Phase::Recovering, Phase::Lost) {
            return;
        }
        self.deadline.store(0, Ordering::SeqCst);
        if let Some(fence) = fence
            && let Err(e) = store.release(&self.owner, &fence.leases()).await
        {
            tracing::warn!(node = %self.owner, error = %e, "could not release the leases; they expire");
        }
    }

    /// The engine of a lost term is gone: look for the leases again.
    pub fn back_to_standby(&self) {
        self.transition(Phase::Lost, Phase::Standby);
    }

    /// Requests admitted and not finished.
    pub fn inflight(&self) -> u64 {
        self.admissions.inflight()
    }

    /// Waits until nothing admitted is in flight, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.inflight() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn take(&self, leases: &[Lease], sent: Instant) {
        let fence = Fence::new(self.owner.clone(), self.cfg.shards, leases);
        self.fence.store(Some(Arc::new(fence)));
        self.deadline.store(self.nanos(sent + self.cfg.ttl - self.cfg.margin()), Ordering::SeqCst);
        self.term.fetch_add(1, Ordering::SeqCst);
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::LEASE_ACQUISITIONS).increment(1);
        metrics::gauge!(m::SHARDS_OWNED).set(leases.len() as f64);
        if let Ok(mut h) = self.holder.lock() {
            *h = Some(self.owner.to_string());
        }
        let epochs = leases.iter().map(|l| l.epoch);
        tracing::info!(
            node = %self.owner,
            shards = leases.len(),
            epoch.min = epochs.clone().min().unwrap_or(0),
            epoch.max = epochs.max().unwrap_or(0),
            "leases acquired; recovering"
        );
        self.transition(Phase::Standby, Phase::Recovering);
    }

    /// Releases the leases after the final flush (graceful stop) and marks the
    /// member as left. The next owner takes them at once.
    pub async fn release(&self, store: &dyn LeaseStore) {
        let fence = self.fence.load_full();
        let phase = self.phase();
        self.admissions.set(Phase::Stopped as u8);
        self.changes.send_replace(Phase::Stopped);
        self.fence.store(None);
        self.deadline.store(0, Ordering::SeqCst);
        metrics::gauge!(m::LEASE_OWNED).set(0.0);
        if let Some(fence) = fence.filter(|_| phase.holds_lease()) {
            match store.release(&self.owner, &fence.leases()).await {
                Ok(()) => tracing::info!(node = %self.owner, "leases released"),
                Err(e) => tracing::error!(node = %self.owner, error = %e, "could not release the leases; they expire"),
            }
        }
        if let Err(e) = store.heartbeat(&self.owner, &self.address, MemberStatus::Left).await {
            tracing::warn!(node = %self.owner, error = %e, "could not record leaving");
        }
    }

    /// This process's lease state now, for the operators' cluster view.
    pub fn view(&self) -> OwnershipView {
        let fence = self.fence.load_full();
        let epochs = fence.as_ref().map(|f| {
            let ls = f.leases();
            (ls.iter().map(|l| l.epoch).min().unwrap_or(0), ls.iter().map(|l| l.epoch).max().unwrap_or(0))
        });
        let deadline = self.deadline.load(Ordering::SeqCst);
        let now = self.nanos(Instant::now());
        OwnershipView {
            node: self.owner.node.clone(),
            generation: self.owner.generation,
            phase: self.phase(),
            shards: self.cfg.shards.count(),
            held: fence.as_ref().map_or(0, |f| f.leases().len()),
            moves: self.moves.load(Ordering::Relaxed),
            epochs,
            deadline_in_ms: (deadline > now).then(|| (deadline - now) / 1_000_000),
            holder: self.holder.lock().ok().and_then(|h| h.clone()),
            acquisitions: self.acquisitions.load(Ordering::Relaxed),
            losses: self.losses.load(Ordering::Relaxed),
            fenced_writes: self.fenced_writes.load(Ordering::Relaxed),
        }
    }

    /// Who holds the leases, as last seen.
    pub fn holder(&self) -> Option<String> {
        self.holder.lock().ok().and_then(|h| h.clone())
    }

    /// Why this standby cannot look for the leases right now (the store's error,
    /// e.g. SQLite's "database is locked" while a frozen process holds its write
    /// lock), or `None` when its last look succeeded.
    pub fn unreachable(&self) -> Option<String> {
        self.unreachable.lock().ok().and_then(|u| u.clone())
    }

    fn note_unreachable(&self, why: Option<&str>) {
        if let Ok(mut u) = self.unreachable.lock() {
            *u = why.map(str::to_owned);
        }
    }

    /// Keeps the leases until the process stops: a standby polls for them, an
    /// owner renews them at a third of the TTL and loses them at its deadline.
    /// Runs until [`Phase::Stopped`].
    pub async fn keep(self: Arc<Self>, store: Arc<dyn LeaseStore>) {
        let _ = self.store.0.set(Arc::clone(&store));
        let mut changes = self.watch();
        let mut last_heartbeat: Option<Instant> = None;
        let mut last_error: Option<String> = None;
        let mut released: Vec<Owner> = Vec::new();
        let mut last_plan: Option<Instant> = None;
        let all: Vec<_> = self.cfg.shards.all().collect();
        loop {
            let phase = self.phase();
            let status = if phase.holds_lease() { MemberStatus::Owner } else { MemberStatus::Standby };
            if phase == Phase::Stopped {
                return;
            }
            if last_heartbeat.is_none_or(|t| t.elapsed() >= self.cfg.renew_every()) && phase != Phase::Lost {
                last_heartbeat = Some(Instant::now());
                // Bounded like the acquisition: a store that blocks (SQLite's
                // write lock held by a frozen process) must not hold up the look
                // for the leases, nor keep the reason from `/ready`.
                let beat = tokio::time::timeout(self.cfg.ttl / 2, store.heartbeat(&self.owner, &self.address, status))
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unavailable("membership heartbeat timed out".into())));
                if let Err(e) = beat {
                    tracing::warn!(node = %self.owner, error = %e, "membership heartbeat failed");
                    if phase == Phase::Standby {
                        self.note_unreachable(Some(e.message()));
                    }
                }
                if phase == Phase::Standby {
                    self.note_holder(&*store).await;
                }
            }
            match phase {
                Phase::Standby => {
                    let wanted = if self.cfg.share {
                        match self.share_to_take(&*store).await {
                            Ok(wanted) => wanted,
                            Err(e) => {
                                self.note_unreachable(Some(e.message()));
                                let _ = tokio::time::timeout(self.cfg.poll, changes.changed()).await;
                                continue;
                            }
                        }
                    } else {
                        all.clone()
                    };
                    if wanted.is_empty() {
                        // More members than shards: nothing for this one now.
                        self.note_unreachable(None);
                        let _ = tokio::time::timeout(self.cfg.poll, changes.changed()).await;
                        continue;
                    }
                    let sent = Instant::now();
                    let attempt = tokio::time::timeout(
                        self.cfg.ttl / 2,
                        store.acquire(&self.owner, &wanted, self.cfg.shards, self.cfg.ttl),
                    )
                    .await
                    .unwrap_or_else(|_| Err(StoreError::Unavailable("lease acquisition timed out".into())));
                    match attempt {
                        Ok(Some(leases)) => {
                            last_error = None;
                            self.note_unreachable(None);
                            self.take(&leases, sent);
                            continue;
                        }
                        Ok(None) => {
                            last_error = None;
                            self.note_unreachable(None);
                            if self.release_gone_holders(&*store, &mut released).await {
                                continue;
                            }
                        }
                        Err(e) => {
                            self.note_unreachable(Some(e.message()));
                            if last_error.as_deref() != Some(e.message()) {
                                tracing::warn!(node = %self.owner, error = %e, "cannot look for the leases");
                                last_error = Some(e.message().to_owned());
                            }
                        }
                    }
                    let _ = tokio::time::timeout(self.cfg.poll, changes.changed()).await;
                }
                Phase::Recovering | Phase::Serving | Phase::HandingOff | Phase::Moving => {
                    self.renew_once(&*store, &mut changes).await;
                    if self.cfg.share
                        && self.phase() == Phase::Serving
                        && last_plan.is_none_or(|t: Instant| t.elapsed() >= self.cfg.renew_every())
                    {
                        last_plan = Some(Instant::now());
                        match self.plan_round(&*store).await {
                            Ok((_, moves)) if !moves.is_empty() => self.begin_move(&*store, moves).await,
                            Ok(_) => {}
                            Err(e) => tracing::warn!(node = %self.owner, error = %e, "cannot read the shard map"),
                        }
                    }
                }
                Phase::Lost => {
                    // The node drops its engine, then sets the phase back to standby.
                    let _ = changes.changed().await;
                }
                Phase::Stopped => return,
            }
        }
    }

    /// Releases, on their holder's behalf, the unexpired leases of holders
    /// [`LeaseConfig::owner_gone`] knows are gone (a killed process of this host
    /// that a restart replaces), so the standby takes them now rather than after
    /// the TTL. The release is conditional on holder and epoch, like the
    /// holder's own: a lease taken meanwhile by anyone else is left alone. Each
    /// holder is released at most once (`done`); true if one was.
    async fn release_gone_holders(&self, store: &dyn LeaseStore, done: &mut Vec<Owner>) -> bool {
        let Ok(rows) = store.leases().await else { return false };
        let now = crate::clock::now();
        let mut gone: Vec<(Owner, Vec<Lease>)> = Vec::new();
        for row in rows.iter().filter(|r| r.expires_at > now) {
            let Some(holder) = row.owner.as_ref().filter(|o| **o != self.owner && !done.contains(o)) else { continue };
            if !(self.cfg.owner_gone)(holder) {
                continue;
            }
            let lease = Lease { shard: row.shard, epoch: row.epoch };
            match gone.iter_mut().find(|(o, _)| o == holder) {
                Some((_, leases)) => leases.push(lease),
                None => gone.push((holder.clone(), vec![lease])),
            }
        }
        let mut any = false;
        for (holder, leases) in gone {
            match store.release(&holder, &leases).await {
                Ok(()) => {
                    tracing::info!(node = %self.owner, owner = %holder, "the owner's process is gone: released its leases to take them over without waiting for them to lapse");
                    any = true;
                }
                Err(e) => {
                    tracing::warn!(node = %self.owner, owner = %holder, error = %e, "cannot release a gone owner's leases")
                }
            }
            done.push(holder);
        }
        any
    }

    /// The live members and the shard map as the store has them now, and this
    /// node's moves by [`placement::plan`]: the unexpired leases it holds, and
    /// what it should take or hand off.
    ///
    /// A member is live unless it left, or its heartbeat is more than a TTL
    /// older than the newest one (compared on the store's clock only); this
    /// node counts as live.
    async fn plan_round(&self, store: &dyn LeaseStore) -> Result<(Vec<Lease>, Moves), StoreError> {
        let members = store.members().await?;
        let rows = store.leases().await?;
        let me = self.owner.to_string();
        let newest = members.iter().map(|m| m.heartbeat_at).max();
        let window = self.live_window();
        let mut live: Vec<String> = members
            .iter()
            .filter(|m| {
                m.status != MemberStatus::Left && newest.is_some_and(|n| m.heartbeat_at.millis_until(n) <= window)
            })
            .map(|m| m.owner.to_string())
            .collect();
        if !live.contains(&me) {
            live.push(me.clone());
        }
        let now = crate::clock::now();
        let mut owners: Vec<Option<String>> = vec![None; self.cfg.shards.count() as usize];
        let mut mine = Vec::new();
        self.note_routes(&members, &rows);
        for row in rows {
            if let (Some(o), Some(slot)) =
                (row.owner.filter(|_| row.expires_at > now), owners.get_mut(row.shard.get() as usize))
            {
                if o == self.owner {
                    mine.push(Lease { shard: row.shard, epoch: row.epoch });
                }
                *slot = Some(o.to_string());
            }
        }
        let owner_refs: Vec<Option<&str>> = owners.iter().map(Option::as_deref).collect();
        let live_refs: Vec<&str> = live.iter().map(String::as_str).collect();
        let moves = placement::plan(self.cfg.shards, &owner_refs, &live_refs, &me, MAX_MOVES);
        Ok((mine, moves))
    }

    /// A standby's share to acquire (cluster mode): the unexpired leases it
    /// still holds (a move keeps them) and the free shards it is short of. The
    /// ones it should hand off are released here first, so whoever is short
    /// takes them at once.
    async fn share_to_take(&self, store: &dyn LeaseStore) -> Result<Vec<ShardId>, StoreError> {
        let (mine, moves) = self.plan_round(store).await?;
        let (release, keep): (Vec<Lease>, Vec<Lease>) =
            mine.into_iter().partition(|l| moves.release.contains(&l.shard));
        if !release.is_empty() {
            store.release(&self.owner, &release).await?;
        }
        let mut wanted: Vec<ShardId> = keep.into_iter().map(|l| l.shard).collect();
        wanted.extend(moves.take);
        wanted.sort_unstable();
        wanted.dedup();
        Ok(wanted)
    }

    /// How old (ms, on the store's clock) the newest heartbeat of a live
    /// member may be behind the newest of all. Members heartbeat every third
    /// of the TTL and renew on the same beat: one silent for a whole TTL has
    /// missed three beats and its leases have lapsed or are about to, so
    /// counting it longer only delays the take-over of its shards (counting it
    /// dead early moves nothing: only free leases are ever taken).
    fn live_window(&self) -> u64 {
        u64::try_from(self.cfg.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    /// Cluster mode: this node's share should change. The free shards it is
    /// short of are taken (epoch + 1; none if they are not free yet, as while
    /// a dead member's leases have not lapsed: the next round tries again)
    /// and join the fence at once, but are served only once the node has
    /// recovered them ([`Ownership::adopting_shards`], [`Ownership::adopted`]),
    /// while it serves the others. Shards to hand off need a pause: admitting
    /// stops (requests wait), the node drains, writes and drops them
    /// ([`Ownership::moving`], [`Ownership::release_shards`]) and serves again
    /// ([`Ownership::resume`]). The shards it keeps keep their epochs.
    async fn begin_move(&self, store: &dyn LeaseStore, moves: Moves) {
        if !moves.take.is_empty() && self.adopting.load().is_none() {
            let attempt = tokio::time::timeout(
                self.cfg.ttl / 2,
                store.acquire(&self.owner, &moves.take, self.cfg.shards, self.cfg.ttl),
            )
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("lease acquisition timed out".into())));
            match attempt {
                Ok(Some(taken)) => self.take_more(store, taken).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(node = %self.owner, error = %e, "cannot take free shards; trying again next round")
                }
            }
        }
        if moves.release.is_empty() {
            return;
        }
        if let Ok(mut m) = self.moving.lock() {
            m.release.clone_from(&moves.release);
        }
        if self.transition(Phase::Serving, Phase::Moving) {
            self.moves.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(m::SHARD_MOVES).increment(1);
            tracing::info!(node = %self.owner, release = moves.release.len(), "the cluster's shard map changed: handing shards over");
        } else if let Ok(mut m) = self.moving.lock() {
            m.release.clear();
        }
    }

    /// Shards just taken: into the fence (writes allowed: their recovery's
    /// checkpoints), not served until the node has recovered them.
    async fn take_more(&self, store: &dyn LeaseStore, taken: Vec<Lease>) {
        let shards: Vec<ShardId> = taken.iter().map(|l| l.shard).collect();
        self.adopting.store(Some(Arc::new(shards)));
        let before = self.fence.rcu(|cur| cur.as_ref().map(|f| Arc::new(f.reshaped(&[], &taken))));
        if before.is_none() || !self.phase().holds_lease() {
            // Lost meanwhile: what was just taken goes back.
            self.adopting.store(None);
            if let Err(e) = store.release(&self.owner, &taken).await {
                tracing::warn!(node = %self.owner, error = %e, "could not give back the shards just taken; they expire");
            }
            return;
        }
        self.note_held();
        self.moves.fetch_add(1, Ordering::Relaxed);
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::SHARD_MOVES).increment(1);
        metrics::counter!(m::LEASE_ACQUISITIONS).increment(1);
        tracing::info!(node = %self.owner, take = taken.len(), "the cluster's shard map changed: taking free shards");
        self.taken.notify_one();
    }

    /// Shards taken and not recovered yet (the node recovers them, then calls
    /// [`Ownership::adopted`]).
    pub fn adopting_shards(&self) -> Vec<ShardId> {
        self.adopting.load().as_deref().cloned().unwrap_or_default()
    }

    /// Waits until shards were taken for the node to recover.
    pub async fn shards_taken(&self) {
        self.taken.notified().await;
    }

    /// The shards taken are recovered: served from now on.
    pub fn adopted(&self) {
        self.adopting.store(None);
        self.adopted.notify_waiters();
    }

    /// True when `shard` is served here or being recovered here after a take:
    /// work that was on its way to another node for it comes back here.
    pub fn coming_here(&self, shard: ShardId) -> bool {
        self.serves(shard) || self.adopting.load().as_ref().is_some_and(|a| a.contains(&shard))
    }

    /// True when `shard` is served here, waiting (at most
    /// [`crate::sku_link::MOVE_WAIT`]) while this node recovers it after
    /// taking it.
    pub async fn await_shard(&self, shard: ShardId) -> bool {
        let until = Instant::now() + crate::sku_link::MOVE_WAIT;
        loop {
            let recovered = self.adopted.notified();
            if self.serves(shard) {
                return true;
            }
            if !self.adopting.load().as_ref().is_some_and(|a| a.contains(&shard)) {
                return false;
            }
            if tokio::time::timeout_at(until.into(), recovered).await.is_err() {
                return self.serves(shard);
            }
        }
    }

    /// The shards the move in progress hands off.
    pub fn moving(&self) -> Vec<ShardId> {
        self.moving.lock().map(|m| m.release.clone()).unwrap_or_default()
    }

    /// The shards a move was to hand off stay (their state could not be
    /// written); the next round plans again.
    pub fn keep_shards(&self) {
        if let Ok(mut m) = self.moving.lock() {
            m.release.clear();
        }
    }

    /// Gives `shards` up: out of the fence first (nothing more is written
    /// under them), then released in the store, so the next owner takes them
    /// at once. The node has flushed them (a hand-off) or never served them
    /// (a recovery that failed).
    pub async fn release_shards(&self, store: &dyn LeaseStore, shards: &[ShardId]) {
        if shards.is_empty() {
            return;
        }
        let before = self.fence.rcu(|cur| cur.as_ref().map(|f| Arc::new(f.reshaped(shards, &[]))));
        let leases: Vec<Lease> =
            before.map(|f| f.leases().into_iter().filter(|l| shards.contains(&l.shard)).collect()).unwrap_or_default();
        if let Ok(mut m) = self.moving.lock() {
            m.release.retain(|s| !shards.contains(s));
        }
        if self.adopting.load().as_ref().is_some_and(|a| a.iter().any(|s| shards.contains(s))) {
            self.adopting.store(None);
            self.adopted.notify_waiters();
        }
        self.note_held();
        if let Err(e) = store.release(&self.owner, &leases).await {
            tracing::warn!(node = %self.owner, error = %e, "could not release the moving shards; they expire");
        }
    }

    /// The move is done: serve again. False if the leases were lost
    /// meanwhile, or if a lease check or a lost shard is pending (the phase
    /// stays [`Phase::Moving`] and the node goes round again).
    pub fn resume(&self) -> bool {
        let Ok(mut m) = self.moving.lock() else { return false };
        if m.verify || !m.lost.is_empty() {
            return false;
        }
        m.release.clear();
        drop(m);
        self.transition(Phase::Moving, Phase::Serving)
    }

    fn note_held(&self) {
        metrics::gauge!(m::SHARDS_OWNED).set(self.fence.load().as_ref().map_or(0, |f| f.leases().len()) as f64);
    }

    /// True when this process serves `shard`: always, unless in cluster mode,
    /// where only while it holds the shard's lease.
    pub fn serves(&self, shard: ShardId) -> bool {
        !self.cfg.share
            || (self.fence().is_some_and(|f| f.holds(shard))
                && !self.adopting.load().as_ref().is_some_and(|a| a.contains(&shard)))
    }

    /// Cluster mode: where `shard` is served, as the last renewal round read
    /// the store (`None` before the first round, or while nobody holds it).
    pub fn route(&self, shard: ShardId) -> Option<Route> {
        self.routes.load().as_ref().and_then(|r| r.get(shard.get() as usize).cloned().flatten())
    }

    /// The other live members (not left, heartbeat within a TTL of the
    /// newest) and their addresses, read from the membership table now: where
    /// a change every node must hear of goes.
    pub async fn other_members(&self) -> Result<Vec<(Owner, String)>, StoreError> {
        let Some(store) = self.store.0.get() else { return Ok(Vec::new()) };
        let members = store.members().await?;
        let newest = members.iter().map(|m| m.heartbeat_at).max();
        let window = self.live_window();
        Ok(members
            .into_iter()
            .filter(|m| {
                m.owner != self.owner
                    && m.status != MemberStatus::Left
                    && newest.is_some_and(|n| m.heartbeat_at.millis_until(n) <= window)
            })
            .map(|m| (m.owner, m.address))
            .collect())
    }

    /// Who serves each shard by `members` and the lease `rows` (unexpired by
    /// this host's clock), for [`Ownership::route`].
    fn note_routes(&self, members: &[Member], rows: &[LeaseRow]) {
        let now = crate::clock::now();
        let mut routes: Vec<Option<Route>> = vec![None; self.cfg.shards.count() as usize];
        for row in rows {
            let Some(owner) = row.owner.as_ref().filter(|_| row.expires_at > now) else { continue };
            let address = members.iter().find(|m| m.owner == *owner).map(|m| m.address.clone());
            if let (Some(address), Some(slot)) = (address, routes.get_mut(row.shard.get() as usize)) {
                *slot = Some(Route { shard: row.shard, owner: owner.clone(), epoch: row.epoch, address });
            }
        }
        self.routes.store(Some(Arc::new(routes)));
    }

    /// A call to `shard`'s owner was refused (the shard moved since the last
    /// round): reads the tables again, at most once per 100 ms however many
    /// calls were refused, and answers the shard's route now.
    pub async fn reroute(&self, shard: ShardId) -> Option<Route> {
        let store = self.store.0.get()?;
        let mut last = self.rerouted.lock().await;
        if last.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            *last = Some(Instant::now());
            match tokio::try_join!(store.members(), store.leases()) {
                Ok((members, rows)) => self.note_routes(&members, &rows),
                Err(e) => tracing::warn!(node = %self.owner, error = %e, "cannot read the shard map"),
            }
        }
        drop(last);
        self.route(shard)
    }

    /// The shards this process holds the leases of now.
    pub fn held(&self) -> Vec<ShardId> {
        self.fence().map(|f| f.leases().into_iter().map(|l| l.shard).collect()).unwrap_or_default()
    }

    /// Records who holds the leases (for the standby's answers and the console).
    async fn note_holder(&self, store: &dyn LeaseStore) {
        if let Ok(rows) = store.leases().await {
            let now = crate::clock::now();
            let holder =
                rows.iter().filter(|r| r.expires_at > now).find_map(|r| r.owner.as_ref().map(|o| o.to_string()));
            if let Ok(mut h) = self.holder.lock() {
                // Logged once per change of holder, not on every poll or answer.
                if *h != holder
                    && let Some(other) = holder.as_ref().filter(|o| **o != self.owner.to_string())
                {
                    tracing::info!(node = %self.owner, owner = %other, "standing by: another node owns the store");
                }
                *h = holder;
            }
        }
    }

    /// One renewal at the next third of the TTL; loses the leases at the deadline.
    async fn renew_once(&self, store: &dyn LeaseStore, changes: &mut watch::Receiver<Phase>) {
        let Some(fence) = self.fence.load_full() else {
            if self.phase() == Phase::Moving {
                // The move is releasing its leases: nothing to renew.
                let _ = changes.changed().await;
                return;
            }
            self.lose("no fence while holding the lease");
            return;
        };
        let deadline = self.base + Duration::from_nanos(self.deadline.load(Ordering::SeqCst));
        let renew_at = (deadline + self.cfg.margin()).checked_sub(self.cfg.ttl - self.cfg.renew_every());
        let wake = renew_at.unwrap_or(deadline).min(deadline);
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            _ = changes.changed() => return,
            () = self.check.notified() => {
                self.verify_leases(store).await;
                return;
            }
        }
        if !self.phase().holds_lease() {
            return;
        }
        let now = Instant::now();
        if now >= deadline {
            self.lose("the lease could not be renewed before its deadline");
            return;
        }
        let sent = now;
        let leases = fence.leases();
        let renewed = tokio::time::timeout(deadline - now, store.renew(&self.owner, &leases, self.cfg.ttl))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("lease renewal timed out".into())));
        match renewed {
            Ok(true) if self.phase().holds_lease() => {
                metrics::counter!(m::LEASE_RENEWALS).increment(1);
                self.deadline.store(self.nanos(sent + self.cfg.ttl - self.cfg.margin()), Ordering::SeqCst);
            }
            Ok(true) => {}
            Ok(false) if self.cfg.share => {
                // Which ones? Pause, check, and keep serving the others.
                self.suspect();
            }
            Ok(false) => self.lose("the lease was taken over by another node"),
            Err(e) => {
                metrics::counter!(m::LEASE_RENEW_FAILURES).increment(1);
                tracing::warn!(node = %self.owner, error = %e, "lease renewal failed; retrying before the deadline");
                // Retry soon, but not in a tight loop.
                tokio::time::sleep(self.cfg.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
        }
    }
}
