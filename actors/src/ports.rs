//! The ports this crate needs from the outside world. Adapters (in-process,
//! SQLite, Postgres, Redis) live in `flashcore-persistence`; one conformance suite
//! runs against each.

use async_trait::async_trait;
use flashcore_domain::{
    Availability, CartId, JournalEntry, JournalPos, Money, Order, OrderId, Product, ShardId, Shards, Sku, StockFact,
    Timestamp,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// A store failed. Callers answer 503 either way; the cause goes to the log, not
/// to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, or refused the write: try again later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The write carried a [`Fence`] that is no longer current: another node holds
    /// the lease now (or this one released it). Nothing was written, and the
    /// writer must stop serving at once: its memory is no longer the truth.
    #[error("write fenced: {0}")]
    Fenced(String),
    /// The store's circuit breaker is open: nothing was sent (so nothing was
    /// written). Try again after the next probe.
    #[error("store circuit open: {0}")]
    Rejected(String),
    /// A [`ForeignLease`] the write relied on is no longer current (its shard
    /// moved, or its `until` passed): nothing was written. The writer's own
    /// leases are fine; only the entries that relied on it must fail.
    #[error("a shard this write relied on moved: {0}")]
    Moved(String),
}

impl StoreError {
    /// The cause, for logs and operator views.
    pub fn message(&self) -> &str {
        match self {
            StoreError::Unavailable(m) | StoreError::Fenced(m) | StoreError::Rejected(m) | StoreError::Moved(m) => m,
        }
    }

    /// True when the store refused a stale owner's write.
    pub fn is_fenced(&self) -> bool {
        matches!(self, StoreError::Fenced(_))
    }
}

/// Where a page of [`Journal::stock_facts_page`] starts: after a position, or
/// (when the last page ended inside one, as an order's lines on several SKUs
/// share its position) after one SKU's fact at that position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactCursor {
    /// Facts at positions after this one (or at it, past `sku`).
    pub pos: JournalPos,
    /// Within `pos`, the facts of SKUs after this one; `None`: none of `pos`.
    pub sku: Option<Sku>,
}

impl FactCursor {
    /// Every fact at a position after `pos`.
    pub fn after(pos: JournalPos) -> Self {
        FactCursor { pos, sku: None }
    }

    /// Every fact after `fact`.
    pub fn after_fact(fact: &StockFact) -> Self {
        FactCursor { pos: fact.pos, sku: Some(fact.sku.clone()) }
    }
}

/// Outcome of one entry of an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written at this position.
    Written(JournalPos),
    /// An order with the same idempotency key already exists; nothing written.
    DuplicateKey,
}

/// The journal: orders and stock facts, durable once `append` returns.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Appends `batch` in one transaction, assigning increasing positions in
    /// order, if and only if `fence` still holds the lease of every shard the
    /// batch touches (checked in that same transaction; else
    /// [`StoreError::Fenced`]). A duplicate idempotency key skips only its own
    /// entry. `Err` means nothing of the batch was written.
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Stock facts of `sku` newer than `after`, plus those of `orders` whatever
    /// their position, in position order.
    async fn stock_facts(&self, sku: &Sku, after: JournalPos, orders: &[OrderId])
    -> Result<Vec<StockFact>, StoreError>;

    /// Every SKU's stock facts after `after`, in (position, SKU) order, at most
    /// `limit`: bulk recovery pages through the journal's tail with it, one set
    /// read per page instead of one per SKU. The SKU order within a position is
    /// the store's own; [`FactCursor::after_fact`] continues where a page ended.
    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError>;

    /// The stock facts of `orders` (on every SKU), in position order.
    async fn stock_facts_of_orders(&self, orders: &[OrderId]) -> Result<Vec<StockFact>, StoreError>;

    /// An order by id.
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// The order a cart became, if any.
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError>;

    /// Orders newest first, after the `before` cursor.
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError>;
}

/// Which kind of entity a snapshot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A SKU actor's inventory.
    Sku,
    /// A cart actor's cart.
    Cart,
    /// A SKU's waiting room (its line of tickets); lives with the SKU's shard.
    Queue,
}

impl EntityKind {
    /// The label used in metrics and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Sku => "sku",
            EntityKind::Cart => "cart",
            EntityKind::Queue => "queue",
        }
    }
}

/// An entity's state as JSON text, serialized straight from the entity (never
/// through a `serde_json::Value` tree: a hot SKU's holds make a large document,
/// and a tree of maps for it costs several times the text).
#[derive(Debug, Clone)]
pub struct StateJson(Box<str>);

impl StateJson {
    /// Serializes `value`.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(|s| StateJson(s.into_boxed_str()))
    }

    /// Parses the state back into `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// State as a store returned it; [`StateJson::decode`] checks it.
    pub fn from_stored(text: String) -> Self {
        StateJson(text.into_boxed_str())
    }

    /// The JSON text, to store as is.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Equal as JSON documents: a store may hand back the same document with other
/// whitespace or member order (a `jsonb` column does).
impl PartialEq for StateJson {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
            || matches!(
                (self.decode::<serde_json::Value>(), other.decode::<serde_json::Value>()),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

impl Eq for StateJson {}

/// One entity's state at one journal position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// Whether `id` names a SKU or a cart; with `id`, the key the store upserts by.
    pub kind: EntityKind,
    /// The entity id as text.
    pub id: String,
    /// The journal position this state reflects.
    pub pos: JournalPos,
    /// Increases with every change of the entity; a store keeps the highest, so a
    /// late retry of an older snapshot never overwrites a newer one.
    pub version: u64,
    /// The state, as JSON.
    pub state: StateJson,
}

/// Latest-state snapshots written behind.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Upserts a batch in one transaction, if and only if `fence` still holds the
    /// lease of every shard the records belong to (else [`StoreError::Fenced`]);
    /// a record replaces the stored one only if its `version` is higher. Each row
    /// keeps the epoch it was written under.
    async fn save(&self, batch: &[SnapshotRecord], fence: &Fence) -> Result<(), StoreError>;
    /// The latest snapshot of one entity.
    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError>;
    /// Snapshots of `kind` with ids after `after`, in the store's id order, at
    /// most `limit`: bulk recovery pages through every SKU's with it.
    async fn load_page(
        &self,
        kind: EntityKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError>;
}

impl SnapshotRecord {
    /// The shard this entity belongs to.
    pub fn shard(&self, shards: Shards) -> ShardId {
        let tag = match self.kind {
            EntityKind::Sku | EntityKind::Queue => flashcore_domain::shard::SKU_TAG,
            EntityKind::Cart => flashcore_domain::shard::CART_TAG,
        };
        shards.of(tag, &self.id)
    }
}

// ---------------------------------------------------------------------------
// Ownership: membership and shard leases (DESIGN §9). A node writes only under a
// lease, and every write carries the lease's epoch so that a stale owner (frozen,
// partitioned, or simply slow) is refused by the store itself.
// ---------------------------------------------------------------------------

/// One process, as the membership table knows it: a node id (the host, or the
/// cluster's node name) and a generation that is new for every start, so a
/// restarted process is never mistaken for its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The node id (host or cluster node name); the same across restarts.
    pub node: String,
    /// This start of it (milliseconds since the epoch at start-up).
    pub generation: u64,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.node, self.generation)
    }
}

/// The lease of one shard as held by a node: the epoch is the fencing token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The shard this lease covers.
    pub shard: ShardId,
    /// Bumped by every take-over; a write under an older epoch is refused.
    pub epoch: u64,
}

/// Where a shard is served, as the last look at the lease table found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The shard.
    pub shard: ShardId,
    /// The node holding its lease.
    pub owner: Owner,
    /// The lease's epoch.
    pub epoch: u64,
    /// The owner's node-to-node address (from the membership table).
    pub address: String,
}

/// The lease of a shard another node holds, as a write of this node relies on
/// it: a checkout whose cart lives here journals an order that sells stock a
/// hold on that node's SKU kept, prepared there under `epoch`. The store writes
/// it only while `owner` still holds the shard at `epoch` and its clock is before
/// `until` (after which the owner may settle the prepared hold on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignLease {
    /// The shard of the SKU the hold is on.
    pub shard: ShardId,
    /// The owner's epoch when it prepared the hold.
    pub epoch: u64,
    /// The node that prepared it.
    pub owner: Owner,
    /// The last moment (the store's clock, milliseconds) the write may commit.
    pub until: Timestamp,
}

/// What a writer shows the store with every write: who it is and the epochs of
/// the leases it holds (and, for a batch, the [`ForeignLease`]s its entries
/// rely on). Built once per acquisition; cheap to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    owner: Owner,
    shards: Shards,
    /// Epoch by shard number; 0 where this node holds no lease.
    epochs: Box<[u64]>,
    /// Other nodes' leases a batch relies on (empty but for batches of
    /// cross-node checkouts).
    foreign: Vec<ForeignLease>,
}

impl Fence {
    /// The fence of `owner` holding `leases` out of `shards`.
    pub fn new(owner: Owner, shards: Shards, leases: &[Lease]) -> Self {
        let mut epochs = vec![0; shards.count() as usize].into_boxed_slice();
        for l in leases {
            if let Some(e) = epochs.get_mut(l.shard.get() as usize) {
                *e = l.epoch;
            }
        }
        Fence { owner, shards, epochs, foreign: Vec::new() }
    }

    /// This fence for one batch that also relies on `foreign` (a shard this
    /// node holds itself is checked as its own, whatever `foreign` says).
    pub fn with_foreign(&self, foreign: Vec<ForeignLease>) -> Fence {
        let foreign = foreign.into_iter().filter(|f| self.own_epoch(f.shard) == 0).collect();
        Fence { foreign, ..self.clone() }
    }

    /// This fence after a change of share: without the leases of `dropped`,
    /// with `added` (the epochs they were taken under).
    pub fn reshaped(&self, dropped: &[ShardId], added: &[Lease]) -> Fence {
        let mut leases: Vec<Lease> = self.leases().into_iter().filter(|l| !dropped.contains(&l.shard)).collect();
        leases.extend(added.iter().copied());
        Fence::new(self.owner.clone(), self.shards, &leases)
    }

    /// True when this fence holds `shard`'s lease itself.
    pub fn holds(&self, shard: ShardId) -> bool {
        self.own_epoch(shard) > 0
    }

    /// The other nodes' leases this fence relies on.
    pub fn foreign(&self) -> &[ForeignLease] {
        &self.foreign
    }

    fn own_epoch(&self, shard: ShardId) -> u64 {
        self.epochs.get(shard.get() as usize).copied().unwrap_or(0)
    }

    fn foreign_lease(&self, shard: ShardId) -> Option<&ForeignLease> {
        self.foreign.iter().find(|f| f.shard == shard)
    }

    /// The process whose writes this fence vouches for.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// The store's shard count.
    pub fn shards(&self) -> Shards {
        self.shards
    }

    /// The leases this fence holds.
    pub fn leases(&self) -> Vec<Lease> {
        self.shards
            .all()
            .zip(self.epochs.iter())
            .filter(|(_, e)| **e > 0)
            .map(|(shard, &epoch)| Lease { shard, epoch })
            .collect()
    }

    /// The epoch this fence writes `shard` under (0: none): its own lease's,
    /// else that of a [`ForeignLease`] it relies on.
    pub fn epoch(&self, shard: ShardId) -> u64 {
        match self.own_epoch(shard) {
            0 => self.foreign_lease(shard).map_or(0, |f| f.epoch),
            own => own,
        }
    }

    /// The distinct leases of its own that `shards` need, in shard order: what
    /// a store checks (shards covered by a [`ForeignLease`] are left to
    /// [`Fence::foreign_claims`]).
    pub fn claims(&self, shards: impl IntoIterator<Item = ShardId>) -> Vec<Lease> {
        let mut v: Vec<ShardId> = shards.into_iter().filter(|&s| self.foreign_lease(s).is_none()).collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(|shard| Lease { shard, epoch: self.epoch(shard) }).collect()
    }

    /// The [`ForeignLease`]s among `shards`, in shard order: what a store
    /// checks against the other owners' lease rows.
    pub fn foreign_claims(&self, shards: impl IntoIterator<Item = ShardId>) -> Vec<ForeignLease> {
        let mut v: Vec<ShardId> = shards.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().filter_map(|s| self.foreign_lease(s).cloned()).collect()
    }

    fn entry_shards(&self, batch: &[JournalEntry]) -> Vec<ShardId> {
        let s = self.shards;
        batch
            .iter()
            .flat_map(|e| -> Vec<ShardId> {
                match e {
                    JournalEntry::Order(o) => {
                        std::iter::once(s.of_cart(o.cart_id)).chain(o.lines.iter().map(|l| s.of_sku(&l.sku))).collect()
                    }
                    JournalEntry::Stock { sku, .. } => vec![s.of_sku(sku)],
                }
            })
            .collect()
    }

    /// The leases of its own a journal batch needs: each order's cart and SKUs,
    /// each stock fact's SKU (but those a [`ForeignLease`] covers).
    pub fn claims_for_entries(&self, batch: &[JournalEntry]) -> Vec<Lease> {
        self.claims(self.entry_shards(batch))
    }

    /// The other nodes' leases a journal batch relies on.
    pub fn foreign_claims_for_entries(&self, batch: &[JournalEntry]) -> Vec<ForeignLease> {
        self.foreign_claims(self.entry_shards(batch))
    }

    /// The leases a snapshot batch needs: all its own, whatever [`ForeignLease`]s
    /// the fence carries (only a shard's owner writes its snapshots, so a
    /// foreign lease must not take a shard out of the check).
    pub fn claims_for_snapshots(&self, batch: &[SnapshotRecord]) -> Vec<Lease> {
        let mut v: Vec<ShardId> = batch.iter().map(|r| r.shard(self.shards)).collect();
        v.sort_unstable();
        v.dedup();
        v.into_iter().map(|shard| Lease { shard, epoch: self.own_epoch(shard) }).collect()
    }
}

/// How a member of the store describes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Waiting for the leases.
    Standby,
    /// Holds leases and serves.
    Owner,
    /// Stopped gracefully (its leases released).
    Left,
}

impl MemberStatus {
    /// The status as stored in the membership row (`standby`, `owner`, `left`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Standby => "standby",
            MemberStatus::Owner => "owner",
            MemberStatus::Left => "left",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standby" => Some(MemberStatus::Standby),
            "owner" => Some(MemberStatus::Owner),
            "left" => Some(MemberStatus::Left),
            _ => None,
        }
    }
}

/// A membership row (the Orleans SQL-membership pattern: one row per process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The process the row belongs to; a restart writes a new row (new generation).
    pub owner: Owner,
    /// Where it serves (its public address).
    pub address: String,
    /// What it says it is doing.
    pub status: MemberStatus,
    /// Its last heartbeat, by the store's clock.
    pub heartbeat_at: Timestamp,
}

/// A lease row as stored: held (by `owner`, until `expires_at`) or free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// The shard the row is the lease of.
    pub shard: ShardId,
    /// The holder; `None` once released.
    pub owner: Option<Owner>,
    /// The epoch of the latest acquisition; the next acquisition gets this plus one.
    pub epoch: u64,
    /// When it lapses unless renewed, by the store's clock.
    pub expires_at: Timestamp,
}

/// Membership and shard leases. Time is the store's own clock (Postgres'
/// `clock_timestamp()`; the host's for SQLite and memory, whose writers share
/// one host), so nodes never compare clocks with each other.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Records (or refreshes) this process's membership row and heartbeat.
    async fn heartbeat(&self, owner: &Owner, address: &str, status: MemberStatus) -> Result<(), StoreError>;

    /// Every member, newest heartbeat first; rows silent for a day are dropped.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;

    /// Takes the leases of `shards` for `ttl`, all or none: each must be free,
    /// expired or already `owner`'s. Each taken lease gets epoch + 1 (a fresh
    /// fencing token, even when `owner` held it before). `Ok(None)`: some lease
    /// is held by another live owner; nothing changed. The store must have been
    /// set up with `shards`' count, or this is an error.
    async fn acquire(
        &self,
        owner: &Owner,
        shards: &[ShardId],
        all: Shards,
        ttl: std::time::Duration,
    ) -> Result<Option<Vec<Lease>>, StoreError>;

    /// Extends `leases` for `ttl` if `owner` still holds every one of them at its
    /// epoch; `Ok(false)` (and nothing changed) if any was lost.
    async fn renew(&self, owner: &Owner, leases: &[Lease], ttl: std::time::Duration) -> Result<bool, StoreError>;

    /// Gives `leases` up so the next owner can take them at once.
    async fn release(&self, owner: &Owner, leases: &[Lease]) -> Result<(), StoreError>;

    /// Every lease row, in shard order.
    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError>;
}

/// Where product definitions are stored; the engine caches all of them at start.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// All products in SKU order after `after`, at most `limit`.
    async fn list(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<Product>, StoreError>;
    /// One product, if the store has it (cluster mode: a node learns of
    /// another node's catalog change).
    async fn get(&self, sku: &Sku) -> Result<Option<Product>, StoreError>;
    /// Creates or replaces a product.
    async fn upsert(&self, product: &Product) -> Result<(), StoreError>;
}

/// What a payment provider needs to authorize a charge.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The order being paid.
    pub order_id: OrderId,
    /// The order's total, to authorize in full.
    pub amount: Money,
    /// The client's payment token.
    pub token: String,
}

/// Why a payment was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The issuer said no (HTTP 402).
    #[error("payment declined")]
    Declined,
    /// The token is not one this provider knows (HTTP 422).
    #[error("payment token not recognised")]
    InvalidToken,
    /// The provider failed (HTTP 502).
    #[error("payment provider error: {0}")]
    Provider(String),
    /// The provider's circuit is open: nothing was sent (HTTP 503).
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// The provider did not answer within the payment budget; whether it
    /// authorized is unknown (HTTP 503).
    #[error("payment provider timed out: {0}")]
    TimedOut(String),
}

/// A payment provider: authorizes a checkout's charge and voids it if the order is not written.
#[async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Authorizes a charge; returns the provider's reference.
    async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError>;
    /// Voids an authorization that will not be captured (the order was not written).
    /// Voiding twice is harmless, so a failed void is retried.
    async fn void(&self, reference: &str) -> Result<(), PaymentError>;
    /// True if authorizing the same [`PaymentRequest`] twice charges once (the
    /// provider keys authorizations by order id): only then is a failed
    /// authorization retried.
    fn idempotent_authorize(&self) -> bool {
        false
    }
}

/// Where one SKU actor publishes its availability. Called after every change on
/// the hot path: must not block; adapters coalesce.
pub trait AvailabilityPublisher: Send + Sync + 'static {
    /// Publishes the latest availability.
    fn publish(&self, availability: Availability);
}

/// Fan-out of SKU availability to every reader, coalesced by the adapter.
pub trait AvailabilityFeed: Send + Sync + 'static {
    /// The publishing handle for `sku`, taken once by its actor (so publishing
    /// needs no lookup).
    fn publisher(&self, sku: &Sku) -> Box<dyn AvailabilityPublisher>;
    /// The latest availability known for `sku`, if any was published.
    fn latest(&self, sku: &Sku) -> Option<Availability>;
    /// A stream of `sku`'s availability (latest value first).
    fn subscribe(&self, sku: &Sku) -> watch::Receiver<Option<Availability>>;
}
