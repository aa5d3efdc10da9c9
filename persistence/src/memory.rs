//! In-process adapters: a journal, snapshot store, catalog and availability feed
//! held in memory. Nothing survives the process; they exist so flashcore runs with
//! nothing installed and so the engine can be tested without a database.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dashmap::DashMap;
use flashcore_actors::ports::{
    AppendOutcome, AvailabilityFeed, AvailabilityPublisher, Catalog, EntityKind, FactCursor, Fence, ForeignLease,
    Journal, Lease, LeaseRow, LeaseStore, Member, MemberStatus, Owner, SnapshotRecord, SnapshotStore, StoreError,
};
use flashcore_domain::{
    Availability, CartId, JournalEntry, JournalPos, Order, OrderId, Product, ShardId, Shards, Sku, StockFact,
    StockFactKind, Timestamp,
};
use flashcore_http_ports::{ApiKeyRecord, ApiKeyStore};

use crate::leases::may_take;
use crate::sync::lock;
use tokio::sync::watch;

/// Membership and leases, in memory. The in-process journal and snapshot store
/// check their writers' fences against it under its lock, as the SQL stores do
/// in their transactions.
#[derive(Debug, Default)]
pub struct MemoryLeases(Mutex<LeaseData>);

#[derive(Debug, Default)]
struct LeaseData {
    members: HashMap<Owner, Member>,
    leases: BTreeMap<u32, LeaseRow>,
}

fn now() -> Timestamp {
    flashcore_actors::clock::now()
}

impl MemoryLeases {
    /// Runs `write` if `fence` holds `claims` (else [`StoreError::Fenced`]) and
    /// every one of `foreign` is still its owner's at its epoch, before its
    /// `until` (else [`StoreError::Moved`]), with the lease table locked
    /// throughout (so no take-over can come between the check and the write).
    fn fenced<T>(
        &self,
        fence: &Fence,
        claims: &[Lease],
        foreign: &[ForeignLease],
        write: impl FnOnce() -> T,
    ) -> Result<T, StoreError> {
        let d = lock(&self.0);
        let held_by = |shard: ShardId, epoch: u64, owner: &Owner| {
            d.leases.get(&shard.get()).is_some_and(|r| r.epoch == epoch && r.owner.as_ref() == Some(owner))
        };
        if !claims.iter().all(|c| held_by(c.shard, c.epoch, fence.owner())) {
            return Err(StoreError::Fenced(format!("{} does not hold the leases it writes under", fence.owner())));
        }
        if !foreign.is_empty() {
            let now = now();
            if let Some(f) = foreign.iter().find(|f| now >= f.until || !held_by(f.shard, f.epoch, &f.owner)) {
                return Err(StoreError::Moved(format!(
                    "shard {} is no longer {}'s at epoch {} before {}",
                    f.shard,
                    f.owner,
                    f.epoch,
                    f.until.as_millis()
                )));
            }
        }
        Ok(write())
    }
}

#[async_trait]
impl LeaseStore for MemoryLeases {
    async fn heartbeat(&self, owner: &Owner, address: &str, status: MemberStatus) -> Result<(), StoreError> {
        let mut d = lock(&self.0);
        let m = d.members.entry(owner.clone()).or_insert_with(|| Member {
            owner: owner.clone(),
            address: address.to_owned(),
            status,
            heartbeat_at: now(),
        });
        if m.status != MemberStatus::Left {
            (m.address, m.status, m.heartbeat_at) = (address.to_owned(), status, now());
        }
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        let mut d = lock(&self.0);
        let cutoff = now().as_millis().saturating_sub(86_400_000);
        d.members.retain(|_, m| m.heartbeat_at.as_millis() >= cutoff);
        let mut v: Vec<Member> = d.members.values().cloned().collect();
        v.sort_by(|a, b| b.heartbeat_at.cmp(&a.heartbeat_at).then_with(|| a.owner.node.cmp(&b.owner.node)));
        Ok(v)
    }

    async fn acquire(
        &self,
        owner: &Owner,
        shards: &[ShardId],
        all: Shards,
        ttl: std::time::Duration,
    ) -> Result<Option<Vec<Lease>>, StoreError> {
        let mut d = lock(&self.0);
        let (rows, max) = (d.leases.len() as i64, d.leases.keys().next_back().map_or(-1, |m| i64::from(*m)));
        crate::leases::check_shard_count(rows, max, all)?;
        if d.leases.is_empty() {
            for shard in all.all() {
                let row = LeaseRow { shard, owner: None, epoch: 0, expires_at: Timestamp::from_millis(0) };
                d.leases.insert(shard.get(), row);
            }
        }
        let now = now();
        let asked: Vec<LeaseRow> = shards.iter().filter_map(|s| d.leases.get(&s.get()).cloned()).collect();
        if asked.len() != shards.len() || !may_take(&asked, owner, now) {
            return Ok(None);
        }
        let expires_at = now.plus_millis(ttl.as_millis() as u64);
        let mut taken = Vec::with_capacity(shards.len());
        for s in shards {
            if let Some(r) = d.leases.get_mut(&s.get()) {
                (r.owner, r.epoch, r.expires_at) = (Some(owner.clone()), r.epoch + 1, expires_at);
                taken.push(Lease { shard: *s, epoch: r.epoch });
            }
        }
        Ok(Some(taken))
    }

    async fn renew(&self, owner: &Owner, leases: &[Lease], ttl: std::time::Duration) -> Result<bool, StoreError> {
        let mut d = lock(&self.0);
        let held = |d: &LeaseData, l: &Lease| {
            d.leases.get(&l.shard.get()).is_some_and(|r| r.epoch == l.epoch && r.owner.as_ref() == Some(owner))
        };
        if !leases.iter().all(|l| held(&d, l)) {
            return Ok(false);
        }
        let expires_at = now().plus_millis(ttl.as_millis() as u64);
        for l in leases {
            if let Some(r) = d.leases.get_mut(&l.shard.get()) {
                r.expires_at = expires_at;
            }
        }
        Ok(true)
    }

    async fn release(&self, owner: &Owner, leases: &[Lease]) -> Result<(), StoreError> {
        let mut d = lock(&self.0);
        for l in leases {
            if let Some(r) = d.leases.get_mut(&l.shard.get())
                && r.epoch == l.epoch
                && r.owner.as_ref() == Some(owner)
            {
                (r.owner, r.expires_at) = (None, Timestamp::from_millis(0));
            }
        }
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        Ok(lock(&self.0).leases.values().cloned().collect())
    }
}

#[derive(Debug, Default)]
struct JournalData {
    next_pos: u64,
    orders: BTreeMap<OrderId, Order>,
    by_key: HashMap<String, OrderId>,
    by_cart: HashMap<CartId, OrderId>,
    facts: HashMap<Sku, Vec<StockFact>>,
}

/// The journal, in memory, fenced by the leases of its [`MemoryLeases`].
#[derive(Debug)]
pub struct MemoryJournal {
    leases: Arc<MemoryLeases>,
    data: Mutex<JournalData>,
}

impl MemoryJournal {
    /// An empty journal whose writers must hold leases in `leases`.
    pub fn new(leases: Arc<MemoryLeases>) -> Self {
        MemoryJournal { leases, data: Mutex::default() }
    }

    fn append_unfenced(&self, batch: &[JournalEntry]) -> Vec<AppendOutcome> {
        let mut d = lock(&self.data);
        let mut out = Vec::with_capacity(batch.len());
        for entry in batch {
            match entry {
                JournalEntry::Order(order) => {
                    if d.by_key.contains_key(&order.idempotency_key) || d.by_cart.contains_key(&order.cart_id) {
                        out.push(AppendOutcome::DuplicateKey);
                        continue;
                    }
                    d.next_pos += 1;
                    let pos = JournalPos(d.next_pos);
                    for (sku, kind) in order.sold_facts() {
                        d.facts.entry(sku.clone()).or_default().push(StockFact { pos, sku: sku.clone(), kind });
                    }
                    d.by_key.insert(order.idempotency_key.clone(), order.id);
                    d.by_cart.insert(order.cart_id, order.id);
                    d.orders.insert(order.id, order.clone());
                    out.push(AppendOutcome::Written(pos));
                }
                JournalEntry::Stock { sku, kind } => {
                    d.next_pos += 1;
                    let pos = JournalPos(d.next_pos);
                    d.facts.entry(sku.clone()).or_default().push(StockFact {
                        pos,
                        sku: sku.clone(),
                        kind: kind.clone(),
                    });
                    out.push(AppendOutcome::Written(pos));
                }
            }
        }
        out
    }
}

#[async_trait]
impl Journal for MemoryJournal {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        let (claims, foreign) = (fence.claims_for_entries(batch), fence.foreign_claims_for_entries(batch));
        self.leases.fenced(fence, &claims, &foreign, || self.append_unfenced(batch))
    }

    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        let d = lock(&self.data);
        Ok(d.facts
            .get(sku)
            .map(|facts| {
                facts
                    .iter()
                    .filter(|f| {
                        f.pos > after || matches!(&f.kind, StockFactKind::Sold { order, .. } if orders.contains(order))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError> {
        let d = lock(&self.data);
        let is_after =
            |f: &StockFact| f.pos > after.pos || (f.pos == after.pos && after.sku.as_ref().is_some_and(|s| &f.sku > s));
        let mut page: Vec<StockFact> = d.facts.values().flatten().filter(|f| is_after(f)).cloned().collect();
        page.sort_by(|a, b| (a.pos, &a.sku).cmp(&(b.pos, &b.sku)));
        page.truncate(limit);
        Ok(page)
    }

    async fn stock_facts_of_orders(&self, orders: &[OrderId]) -> Result<Vec<StockFact>, StoreError> {
        let d = lock(&self.data);
        let mut out: Vec<StockFact> = d
            .facts
            .values()
            .flatten()
            .filter(|f| matches!(&f.kind, StockFactKind::Sold { order, .. } if orders.contains(order)))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.pos, &a.sku).cmp(&(b.pos, &b.sku)));
        Ok(out)
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(lock(&self.data).orders.get(&id).cloned())
    }

    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        let d = lock(&self.data);
        Ok(d.by_cart.get(&cart).and_then(|id| d.orders.get(id)).cloned())
    }

    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        let d = lock(&self.data);
        let iter = d.orders.values().rev().filter(|o| before.is_none_or(|b| o.id < b));
        Ok(iter.take(limit).cloned().collect())
    }
}

/// Snapshots, in memory, fenced by the leases of its [`MemoryLeases`].
#[derive(Debug)]
pub struct MemorySnapshots {
    leases: Arc<MemoryLeases>,
    data: DashMap<(EntityKind, String), SnapshotRecord>,
}

impl MemorySnapshots {
    /// An empty store whose writers must hold leases in `leases`.
    pub fn new(leases: Arc<MemoryLeases>) -> Self {
        MemorySnapshots { leases, data: DashMap::new() }
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn save(&self, batch: &[SnapshotRecord], fence: &Fence) -> Result<(), StoreError> {
        let claims = fence.claims_for_snapshots(batch);
        self.leases.fenced(fence, &claims, &[], || {
            for r in batch {
                self.data
                    .entry((r.kind, r.id.clone()))
                    .and_modify(|old| {
                        if r.version > old.version {
                            *old = r.clone();
                        }
                    })
                    .or_insert_with(|| r.clone());
            }
        })
    }

    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        Ok(self.data.get(&(kind, id.to_owned())).map(|r| r.clone()))
    }

    async fn load_page(
        &self,
        kind: EntityKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut page: Vec<SnapshotRecord> = self
            .data
            .iter()
            .filter(|e| e.key().0 == kind && after.is_none_or(|a| e.key().1.as_str() > a))
            .map(|e| e.value().clone())
            .collect();
        page.sort_by(|a, b| a.id.cmp(&b.id));
        page.truncate(limit);
        Ok(page)
    }
}

/// Every in-process store over one lease table: what `FLASHCORE_STORE=memory`
/// runs on (and tests).
#[derive(Debug)]
pub struct MemoryStores {
    /// The one lease table the other stores check writers' fences against.
    pub leases: Arc<MemoryLeases>,
    /// Orders and stock facts, fenced against `leases`.
    pub journal: Arc<MemoryJournal>,
    /// Latest entity states, fenced against `leases`.
    pub snapshots: Arc<MemorySnapshots>,
    /// Product definitions; catalog writes carry no fence.
    pub catalog: Arc<MemoryCatalog>,
}

impl Default for MemoryStores {
    fn default() -> Self {
        let leases = Arc::new(MemoryLeases::default());
        MemoryStores {
            journal: Arc::new(MemoryJournal::new(Arc::clone(&leases))),
            snapshots: Arc::new(MemorySnapshots::new(Arc::clone(&leases))),
            catalog: Arc::new(MemoryCatalog::default()),
            leases,
        }
    }
}

/// The catalog, in memory.
#[derive(Debug, Default)]
pub struct MemoryCatalog(Mutex<BTreeMap<Sku, Product>>);

#[async_trait]
impl Catalog for MemoryCatalog {
    async fn list(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<Product>, StoreError> {
        let d = lock(&self.0);
        let iter = d.values().filter(|p| after.is_none_or(|a| p.sku > *a));
        Ok(iter.take(limit).cloned().collect())
    }

    async fn get(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        Ok(lock(&self.0).get(sku).cloned())
    }

    async fn upsert(&self, product: &Product) -> Result<(), StoreError> {
        lock(&self.0).insert(product.sku.clone(), product.clone());
        Ok(())
    }
}

/// Availability fan-out within one process.
///
/// Per SKU: the latest value in a single-writer seqlock (plain atomics: the SKU
/// actor writes it on every change without taking a lock, and product reads never
/// wait), plus a watch channel that is only fed while someone subscribes (SSE),
/// which coalesces by nature (a slow reader sees the latest value, never a backlog).
#[derive(Debug, Default)]
pub struct LocalFeed(DashMap<Sku, Arc<FeedEntry>>);

/// One SKU's latest availability and its subscribers.
#[derive(Debug)]
pub struct FeedEntry {
    /// Seqlock counter: odd while a write is in progress; 0 before the first.
    seq: AtomicU64,
    total: AtomicU64,
    sold: AtomicU64,
    held: AtomicU64,
    available: AtomicU64,
    /// The `seq` of the value in the watch channel (only touched under its lock).
    watched_seq: AtomicU64,
    /// Made on the first subscription.
    tx: std::sync::OnceLock<watch::Sender<Option<Availability>>>,
}

impl FeedEntry {
    fn new() -> Self {
        FeedEntry {
            seq: AtomicU64::new(0),
            total: AtomicU64::new(0),
            sold: AtomicU64::new(0),
            held: AtomicU64::new(0),
            available: AtomicU64::new(0),
            watched_seq: AtomicU64::new(0),
            tx: std::sync::OnceLock::new(),
        }
    }

    /// Single writer: the SKU's actor.
    fn write(&self, a: Availability) -> u64 {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.total.store(a.total, Ordering::Relaxed);
        self.sold.store(a.sold, Ordering::Relaxed);
        self.held.store(a.held, Ordering::Relaxed);
        self.available.store(a.available, Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
        s + 2
    }

    /// A consistent copy of the latest value and its sequence number.
    fn read(&self) -> (u64, Option<Availability>) {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let a = Availability {
                total: self.total.load(Ordering::Relaxed),
                sold: self.sold.load(Ordering::Relaxed),
                held: self.held.load(Ordering::Relaxed),
                available: self.available.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return (s1, (s1 > 0).then_some(a));
            }
        }
    }

    /// Hands `a` (version `seq`) to subscribers unless they already have something newer.
    fn notify(&self, tx: &watch::Sender<Option<Availability>>, seq: u64, a: Availability) {
        tx.send_if_modified(|cur| {
            if seq <= self.watched_seq.load(Ordering::Relaxed) {
                return false;
            }
            self.watched_seq.store(seq, Ordering::Relaxed);
            *cur = Some(a);
            true
        });
    }
}

/// One SKU's end of a [`LocalFeed`].
#[derive(Debug)]
pub struct LocalPublisher(Arc<FeedEntry>);

impl AvailabilityPublisher for LocalPublisher {
    fn publish(&self, availability: Availability) {
        let seq = self.0.write(availability);
        if let Some(tx) = self.0.tx.get().filter(|tx| tx.receiver_count() > 0) {
            self.0.notify(tx, seq, availability);
        }
    }
}

impl LocalFeed {
    fn entry(&self, sku: &Sku) -> Arc<FeedEntry> {
        if let Some(e) = self.0.get(sku) {
            return Arc::clone(&e);
        }
        Arc::clone(&self.0.entry(sku.clone()).or_insert_with(|| Arc::new(FeedEntry::new())))
    }
}

impl AvailabilityFeed for LocalFeed {
    fn publisher(&self, sku: &Sku) -> Box<dyn AvailabilityPublisher> {
        Box::new(LocalPublisher(self.entry(sku)))
    }

    fn latest(&self, sku: &Sku) -> Option<Availability> {
        self.0.get(sku).and_then(|e| e.read().1)
    }

    fn subscribe(&self, sku: &Sku) -> watch::Receiver<Option<Availability>> {
        let e = self.entry(sku);
        let tx = e.tx.get_or_init(|| watch::channel(None).0);
        let rx = tx.subscribe();
        // Start the subscriber from the latest value (never from an older one).
        if let (seq, Some(a)) = e.read() {
            e.notify(tx, seq, a);
        }
        rx
    }
}

/// Operator API keys, in memory (few keys, so a list scanned under a lock).
#[derive(Debug, Default)]
pub struct MemoryApiKeys(Mutex<Vec<ApiKeyRecord>>);

#[async_trait]
impl ApiKeyStore for MemoryApiKeys {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        let mut keys = lock(&self.0);
        if keys.iter().any(|k| k.id == key.id || k.key_sha256 == key.key_sha256) {
            return Err(StoreError::Unavailable(format!("api key {} or its hash already exists", key.id)));
        }
        keys.push(key.clone());
        Ok(())
    }

    async fn find_key(&self, key_sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(lock(&self.0).iter().find(|k| !k.revoked && k.key_sha256 == *key_sha256).cloned())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut keys = lock(&self.0).clone();
        // The SQL adapters' order: creation, then id.
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let mut keys = lock(&self.0);
        let Some(key) = keys.iter_mut().find(|k| k.id == id) else { return Ok(false) };
        key.revoked = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u64) -> Availability {
        Availability { total: 100, sold: n, held: 0, available: 100 - n }
    }

    #[tokio::test]
    async fn the_feed_serves_the_latest_value_and_streams_changes_to_subscribers() {
        let feed = LocalFeed::default();
        let sku = Sku::parse("S").unwrap_or_else(|_| unreachable!());
        assert_eq!(feed.latest(&sku), None);
        let publisher = feed.publisher(&sku);
        publisher.publish(a(1));
        publisher.publish(a(2));
        assert_eq!(feed.latest(&sku), Some(a(2)));
        let mut rx = feed.subscribe(&sku);
        assert_eq!(*rx.borrow_and_update(), Some(a(2)), "a subscriber starts from the latest value");
        publisher.publish(a(3));
        rx.changed().await.unwrap_or_else(|_| unreachable!());
        assert_eq!(*rx.borrow_and_update(), Some(a(3)));
        // A late subscriber cannot push an older value over a newer one.
        let _late = feed.subscribe(&sku);
        assert_eq!(*rx.borrow(), Some(a(3)));
    }
}
