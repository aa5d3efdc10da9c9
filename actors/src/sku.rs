//! The SKU actor: one per SKU, the only writer of that SKU's stock.
//!
//! It owns an [`Inventory`] and applies commands to it one at a time, so the hot
//! path needs no locks. Hold expiry is one timer per actor: the inventory keeps
//! holds ordered by expiry and the actor schedules a single wake-up for the
//! earliest. On start it recovers: latest snapshot, then the journal facts newer
//! than it (or belonging to orders it had prepared), then drops expired holds.

use std::sync::Arc;
use std::time::Duration;

use flashcore_domain::{
    Availability, CartId, HoldId, Inventory, InventoryError, InventorySnapshot, JournalEntry, OrderId, Sku, StockFact,
    StockFactKind, Timestamp,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::alarms::Alarms;
use crate::clock;
use crate::flusher::{Flusher, SnapshotRequest};
use crate::gate::Ticket;
use crate::journal::JournalWriter;
use crate::metrics as m;
use crate::parked::{ParkedSku, ParkedSkus};
use crate::ports::{
    AppendOutcome, AvailabilityFeed, AvailabilityPublisher, EntityKind, SnapshotRecord, SnapshotStore, StateJson,
    StoreError,
};
use crate::reply::Reply;

/// What every SKU actor shares.
#[derive(Clone)]
pub struct SkuDeps {
    /// Group-commit journal (operator stock changes, recovery reads).
    pub journal: JournalWriter,
    /// Where every change of the counts is published, for reads and streams.
    pub feed: Arc<dyn AvailabilityFeed>,
    /// Writes changed snapshots behind, off the hot path.
    pub flusher: Flusher,
    /// Snapshot reads at recovery.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Where a SKU whose journal says it sold more than its total is reported.
    pub alarms: Arc<Alarms>,
    /// SKUs without an actor: an activation starts from the parked state.
    pub parked: Arc<ParkedSkus>,
}

impl std::fmt::Debug for SkuDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkuDeps").finish_non_exhaustive()
    }
}

/// An operator's change to a SKU's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StockChange {
    /// Adds this many units to the total.
    Restock(u64),
    /// Sets the total; refused below the units sold or held.
    SetTotal(u64),
}

/// Why a stock change failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StockChangeError {
    /// The inventory refused it.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The journal could not record it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Messages to a SKU actor. Each one sent through the registry carries the
/// `ticket` that admitted it (counted out when the handler drops it); a request
/// carries the `reply` its answer goes to.
#[derive(Debug)]
pub enum SkuMsg {
    /// Create or resize a hold. Boxed: it is the hottest request, and every
    /// message of the actor moves at the size of its largest variant.
    Reserve(Box<ReserveReq>),
    /// Drop a hold; answers the units freed (if asked: a cast needs no answer).
    Release { ticket: Ticket, hold: HoldId, reply: Option<Reply<Result<u32, InventoryError>>> },
    /// Mark holds as committing for an order (all or nothing). Boxed: it is rare
    /// and the largest request, and every message moves at the enum's size.
    Prepare { ticket: Ticket, req: Box<PrepareReq>, reply: Reply<Result<(), InventoryError>> },
    /// Apply journal facts that have committed (turns holds into sold units).
    Commit {
        ticket: Ticket,
        /// The committed facts for this SKU.
        facts: Vec<StockFact>,
    },
    /// Return an order's prepared holds to held.
    Abort {
        ticket: Ticket,
        /// Whose prepared holds return.
        order: OrderId,
    },
    /// Journal and apply an operator's stock change; answers the new counts.
    Adjust { ticket: Ticket, change: StockChange, reply: Reply<Result<Availability, StockChangeError>> },
    /// The current counts, from the actor itself (the feed may not have them yet).
    Get { ticket: Ticket, reply: Reply<Availability> },
    /// Serialize state for write-behind (marks the actor clean).
    Snapshot { reply: Reply<SnapshotRecord> },
    /// Timer: expire lapsed holds.
    Tick,
    /// Register with the write-behind flusher now if a paced registration is
    /// pending (the pacing timer). With a reply (shutdown, before its final
    /// flush) also if journal facts were applied since the last snapshot.
    RegisterDirty {
        /// Answered once registered (shutdown waits for it).
        reply: Option<Reply<()>>,
    },
    /// Fault injection for supervision drills: the actor panics.
    Crash { ticket: Ticket },
    /// Save and park the state and stop, if nothing is held (sent by the
    /// registry with the gate closed); `Ok(false)`: it stays.
    Passivate { reply: Reply<Result<bool, String>> },
}

/// What a [`SkuMsg::Reserve`] asks for: hold `hold` for `cart` until `expires_at`.
/// The caller reads the clock, so the actor's serialized section does not.
#[derive(Debug)]
pub struct ReserveReq {
    pub ticket: Ticket,
    pub hold: HoldId,
    /// The cart the hold belongs to, checked again when an order prepares it.
    pub cart: CartId,
    /// Units held: the line's whole quantity, not a difference.
    pub qty: u32,
    /// When the units return to stock unless an order committed them.
    pub expires_at: Timestamp,
    pub reply: Reply<Result<(), InventoryError>>,
}

impl From<ReserveReq> for SkuMsg {
    /// Boxes the request: callers need not know the message's layout.
    fn from(req: ReserveReq) -> Self {
        SkuMsg::Reserve(Box::new(req))
    }
}

/// What a [`SkuMsg::Prepare`] asks for.
#[derive(Debug)]
pub struct PrepareReq {
    /// The order the holds will be sold to once it is journaled.
    pub order: OrderId,
    /// The cart owning the holds; a hold of another cart is refused.
    pub cart: CartId,
    /// Every hold the order takes from this SKU, prepared all or nothing.
    pub holds: Vec<HoldId>,
}

/// The SKU actor behaviour.
#[derive(Debug, Default, Clone, Copy)]
pub struct SkuActor;

/// A SKU actor's state.
#[derive(Debug)]
pub struct SkuState {
    sku: Sku,
    inv: Inventory,
    deps: SkuDeps,
    publisher: PublisherHandle,
    dirty: bool,
    /// Dirty, but its registration with the flusher waits for `pace_until`.
    deferred: bool,
    /// A snapshot's cost grows with the holds: the next one is not asked for
    /// before this instant, so snapshotting takes at most 1/[`SNAPSHOT_PACING`]
    /// of the actor's time.
    pace_until: Option<std::time::Instant>,
    /// Journal facts applied since the last snapshot (see [`SkuState::journaled`]).
    facts_since_snapshot: usize,
    version: u64,
    next_wake: Option<Timestamp>,
}

/// A SKU actor spends at most one part in this many of its time on snapshots.
pub const SNAPSHOT_PACING: u32 = 20;

/// A SKU that only applied journal facts since its last snapshot takes a new one
/// (a checkpoint) after this many, or after as many as it has holds if that is
/// more: recovery replays at most about as many facts as the snapshot has holds
/// to read, and a checkpoint's cost (proportional to the holds) is spread over
/// at least as many sales.
pub const CHECKPOINT_FACTS: usize = 10_000;

struct PublisherHandle(Box<dyn AvailabilityPublisher>);

impl std::fmt::Debug for PublisherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AvailabilityPublisher")
    }
}

/// Reads the latest snapshot and replays the journal after it.
/// Returns the inventory, the version of the snapshot it started from, and
/// whether recovery changed it (so it must be written behind).
pub async fn recover(sku: &Sku, deps: &SkuDeps) -> Result<(Inventory, u64, bool), StoreError> {
    let (mut inv, version) = match deps.snapshots.load(EntityKind::Sku, sku.as_str()).await? {
        Some(rec) => {
            let snap: InventorySnapshot = rec
                .state
                .decode()
                .map_err(|e| StoreError::Unavailable(format!("corrupt snapshot of SKU {sku}: {e}")))?;
            (Inventory::restore(snap), rec.version)
        }
        None => (Inventory::new(0), 0),
    };
    let facts = deps.journal.journal().stock_facts(sku, inv.watermark(), &inv.committing_orders()).await?;
    for fact in &facts {
        inv.apply_fact(fact);
    }
    let settled = settle(&mut inv, clock::now());
    Ok((inv, version, !facts.is_empty() || settled.changed()))
}

/// What [`settle`] changed.
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Committing holds returned to held.
    pub aborted: bool,
    /// Lapsed holds dropped.
    pub expired: usize,
}

impl Settled {
    /// True if the inventory differs from what was read.
    pub fn changed(&self) -> bool {
        self.aborted || self.expired > 0
    }
}

/// The last step of every recovery: no checkout can still be waiting on holds
/// read from storage (committing ones return to held), and lapsed holds go.
pub fn settle(inv: &mut Inventory, now: Timestamp) -> Settled {
    let aborted = !inv.committing_orders().is_empty();
    inv.abort_all();
    let expired = inv.expire(now).len();
    metrics::counter!(m::HOLDS_EXPIRED).increment(expired as u64);
    Settled { aborted, expired }
}

/// The snapshot record of `sku`'s inventory at `version`.
pub fn record(sku: &Sku, inv: &Inventory, version: u64) -> SnapshotRecord {
    SnapshotRecord {
        kind: EntityKind::Sku,
        id: sku.to_string(),
        pos: inv.watermark(),
        version,
        state: StateJson::encode(&inv.snapshot()).expect("an inventory always serializes"),
    }
}

impl SkuState {
    /// A change only the snapshot keeps (holds taken, released, resized, expired):
    /// written behind within `flush_interval` (paced for very large SKUs).
    fn changed(&mut self, myself: &ActorRef<SkuMsg>) {
        self.publisher.0.publish(self.inv.availability());
        self.version += 1;
        self.register_dirty(myself);
    }

    /// A change recovery rebuilds without a new snapshot: `facts` sold facts
    /// applied from the journal, or holds prepared for or returned from an order.
    ///
    /// Recovery loads the last snapshot, applies the journal's facts after its
    /// watermark and those of the orders it shows committing, then returns every
    /// committing hold to held. A fact not applied when a snapshot was taken is
    /// either after that snapshot's watermark or of an order the snapshot shows
    /// committing (positions follow commit order, and an order is prepared before
    /// it is journaled), so it is replayed either way, and prepared or aborted
    /// marks are undone by recovery anyway. Checkouts therefore never rewrite a
    /// hot SKU's snapshot (its size grows with the holds); a checkpoint (see
    /// [`CHECKPOINT_FACTS`]) bounds the replay.
    fn journaled(&mut self, myself: &ActorRef<SkuMsg>, facts: usize) {
        if facts > 0 {
            self.publisher.0.publish(self.inv.availability());
        }
        self.version += 1;
        self.facts_since_snapshot += facts;
        if self.facts_since_snapshot >= CHECKPOINT_FACTS.max(self.inv.hold_count()) {
            self.register_dirty(myself);
        }
    }

    fn register_dirty(&mut self, myself: &ActorRef<SkuMsg>) {
        if !self.dirty {
            self.dirty = true;
            let now = std::time::Instant::now();
            match self.pace_until.filter(|&until| until > now) {
                Some(until) => {
                    self.deferred = true;
                    myself.send_after(until - now, || SkuMsg::RegisterDirty { reply: None });
                }
                None => self.deps.flusher.mark_dirty(Box::new(myself.clone())),
            }
        }
    }

    fn schedule_wake(&mut self, myself: &ActorRef<SkuMsg>) {
        let Some(next) = self.inv.next_expiry() else { return };
        if self.next_wake.is_some_and(|w| w <= next) {
            return;
        }
        self.next_wake = Some(next);
        let delay = clock::now().millis_until(next) + 1;
        myself.send_after(Duration::from_millis(delay), || SkuMsg::Tick);
    }

    fn record(&self) -> SnapshotRecord {
        record(&self.sku, &self.inv, self.version)
    }

    /// Passivation: nothing held or committing, so the state is small; saved,
    /// then parked for the next activation. `Ok(false)`: it still holds stock
    /// for carts (its expiry timer must run) and stays.
    async fn passivate(&mut self) -> Result<bool, StoreError> {
        if self.inv.hold_count() > 0 || !self.inv.committing_orders().is_empty() {
            return Ok(false);
        }
        // Always save: a flush in progress may not have landed, and a restart
        // recovers from the store, not from the parked state.
        self.deps.flusher.save_now(&[self.record()]).await?;
        let inv = std::mem::replace(&mut self.inv, Inventory::new(0));
        self.deps.parked.park(self.sku.clone(), ParkedSku { inv, version: self.version, unsaved: false });
        Ok(true)
    }

    async fn adjust(&mut self, change: StockChange) -> Result<Availability, StockChangeError> {
        let kind = match change {
            StockChange::Restock(qty) => StockFactKind::Restocked { qty },
            StockChange::SetTotal(total) => StockFactKind::TotalSet { total },
        };
        // Validate first so a refused change is never journaled.
        self.inv.new_total(&kind)?;
        let entry = JournalEntry::Stock { sku: self.sku.clone(), kind: kind.clone() };
        match self.deps.journal.append(entry).await? {
            AppendOutcome::Written(pos) => {
                self.inv.apply_fact(&StockFact { pos, sku: self.sku.clone(), kind });
                Ok(self.inv.availability())
            }
            AppendOutcome::DuplicateKey => Err(StoreError::Unavailable("journal refused a stock fact".into()).into()),
        }
    }
}

impl Actor for SkuActor {
    type Msg = SkuMsg;
    type State = SkuState;
    type Arguments = (Sku, SkuDeps);

    async fn pre_start(
        &self,
        myself: ActorRef<SkuMsg>,
        (sku, deps): Self::Arguments,
    ) -> Result<SkuState, ActorProcessingErr> {
        let (inv, version, changed) = match deps.parked.take(&sku) {
            Some(p) => (p.inv, p.version, p.unsaved),
            None => {
                let (inv, version, changed) = recover(&sku, &deps).await?;
                (inv, crate::flusher::next_incarnation(version), changed)
            }
        };
        deps.alarms.check(&sku, &inv, "recovery");
        let publisher = PublisherHandle(deps.feed.publisher(&sku));
        let mut state = SkuState {
            sku,
            inv,
            deps,
            publisher,
            dirty: false,
            deferred: false,
            pace_until: None,
            facts_since_snapshot: 0,
            version,
            next_wake: None,
        };
        if changed {
            // Recovery replayed facts or dropped holds: write the result behind.
            state.changed(&myself);
        } else {
            state.publisher.0.publish(state.inv.availability());
        }
        state.schedule_wake(&myself);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<SkuMsg>,
        msg: SkuMsg,
        state: &mut SkuState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            // Hot path: answer as soon as the state changed, then do the
            // housekeeping (publish, write-behind, timer) while the caller runs.
            SkuMsg::Reserve(req) => {
                let ReserveReq { ticket: _ticket, hold, cart, qty, expires_at, reply } = *req;
                let result = state.inv.reserve(hold, cart, qty, expires_at);
                let ok = result.is_ok();
                let _ = reply.send(result);
                if ok {
                    state.changed(&myself);
                    state.schedule_wake(&myself);
                }
            }
            SkuMsg::Release { ticket: _ticket, hold, reply } => {
                let result = state.inv.release(hold);
                let ok = result.is_ok();
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
                if ok {
                    state.changed(&myself);
                }
            }
            SkuMsg::Prepare { ticket: _ticket, req, reply } => {
                let result = state.inv.prepare(req.order, req.cart, &req.holds, clock::now());
                if result.is_ok() {
                    state.journaled(&myself, 0);
                }
                let _ = reply.send(result);
            }
            SkuMsg::Commit { ticket: _ticket, facts } => {
                for fact in &facts {
                    let evicted = state.inv.apply_fact(fact);
                    if !evicted.is_empty() {
                        tracing::warn!(sku = %state.sku, evicted = evicted.len(), "holds evicted by a committed sale");
                    }
                }
                state.journaled(&myself, facts.len());
                state.deps.alarms.check(&state.sku, &state.inv, "commit");
            }
            SkuMsg::Abort { ticket: _ticket, order } => {
                if state.inv.abort(order) > 0 {
                    state.journaled(&myself, 0);
                    state.schedule_wake(&myself);
                }
            }
            SkuMsg::Adjust { ticket: _ticket, change, reply } => {
                // Boxed: the journal append's future is large, and an unboxed
                // await here would size (and copy) every message's handler future.
                let result = Box::pin(state.adjust(change)).await;
                if result.is_ok() {
                    state.changed(&myself);
                    state.deps.alarms.check(&state.sku, &state.inv, "stock change");
                }
                let _ = reply.send(result);
            }
            SkuMsg::Get { ticket: _ticket, reply } => {
                let _ = reply.send(state.inv.availability());
            }
            SkuMsg::Snapshot { reply } => {
                let started = std::time::Instant::now();
                state.dirty = false;
                state.facts_since_snapshot = 0;
                let _ = reply.send(state.record());
                let cost = started.elapsed();
                state.pace_until = (cost >= Duration::from_millis(1)).then(|| started + cost * (SNAPSHOT_PACING + 1));
            }
            SkuMsg::RegisterDirty { reply } => {
                // Shutdown (the one caller with a reply) also leaves a snapshot
                // that needs no journal replay.
                let checkpoint = reply.is_some() && state.facts_since_snapshot > 0 && !state.dirty;
                if state.deferred || checkpoint {
                    state.deferred = false;
                    state.dirty = true;
                    state.deps.flusher.mark_dirty(Box::new(myself.clone()));
                }
                if let Some(reply) = reply {
                    let _ = reply.send(());
                }
            }
            SkuMsg::Tick => {
                state.next_wake = None;
                let expired = state.inv.expire(clock::now());
                if !expired.is_empty() {
                    metrics::counter!(m::HOLDS_EXPIRED).increment(expired.len() as u64);
                    state.changed(&myself);
                }
                state.schedule_wake(&myself);
            }
            SkuMsg::Crash { ticket: _ticket } => {
                panic!("injected fault in SKU actor {}", state.sku);
            }
            SkuMsg::Passivate { reply } => {
                let result = Box::pin(state.passivate()).await.map_err(|e| e.to_string());
                let stopping = matches!(result, Ok(true));
                let _ = reply.send(result);
                if stopping {
                    myself.stop(Some("passivated".into()));
                }
            }
        }
        Ok(())
    }
}

impl SnapshotRequest for SkuMsg {
    fn snapshot_request(reply: Reply<SnapshotRecord>) -> Self {
        SkuMsg::Snapshot { reply }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Every message moves at the enum's size, several times per request: keep
    /// the hot requests' payloads boxed or small (see `crate::reply`).
    #[test]
    fn messages_stay_small() {
        assert!(std::mem::size_of::<SkuMsg>() <= 40, "SkuMsg is {} bytes", std::mem::size_of::<SkuMsg>());
    }
}
