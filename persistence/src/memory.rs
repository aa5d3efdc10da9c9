//! In-process adapters: a journal, snapshot store, catalog and availability feed
//! held in memory. Nothing survives the process; they exist so flashcore runs with
//! nothing installed and so the engine can be tested without a database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use dashmap::DashMap;
use flashcore_actors::ports::{
    AppendOutcome, AvailabilityFeed, AvailabilityPublisher, Catalog, EntityKind, Journal, SnapshotRecord,
    SnapshotStore, StoreError,
};
use flashcore_domain::{
    Availability, CartId, JournalEntry, JournalPos, Order, OrderId, Product, Sku, StockFact, StockFactKind,
};
use tokio::sync::watch;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
struct JournalData {
    next_pos: u64,
    orders: BTreeMap<OrderId, Order>,
    by_key: HashMap<String, OrderId>,
    by_cart: HashMap<CartId, OrderId>,
    facts: HashMap<Sku, Vec<StockFact>>,
}

/// The journal, in memory.
#[derive(Debug, Default)]
pub struct MemoryJournal(Mutex<JournalData>);

#[async_trait]
impl Journal for MemoryJournal {
    async fn append(&self, batch: &[JournalEntry]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut d = lock(&self.0);
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
        Ok(out)
    }

    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        let d = lock(&self.0);
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

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(lock(&self.0).orders.get(&id).cloned())
    }

    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        let d = lock(&self.0);
        Ok(d.by_cart.get(&cart).and_then(|id| d.orders.get(id)).cloned())
    }

    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        let d = lock(&self.0);
        let iter = d.orders.values().rev().filter(|o| before.is_none_or(|b| o.id < b));
        Ok(iter.take(limit).cloned().collect())
    }
}

/// Snapshots, in memory.
#[derive(Debug, Default)]
pub struct MemorySnapshots(DashMap<(EntityKind, String), SnapshotRecord>);

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn save(&self, batch: &[SnapshotRecord]) -> Result<(), StoreError> {
        for r in batch {
            self.0
                .entry((r.kind, r.id.clone()))
                .and_modify(|old| {
                    if r.version > old.version {
                        *old = r.clone();
                    }
                })
                .or_insert_with(|| r.clone());
        }
        Ok(())
    }

    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        Ok(self.0.get(&(kind, id.to_owned())).map(|r| r.clone()))
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

    async fn upsert(&self, product: &Product) -> Result<(), StoreError> {
        lock(&self.0).insert(product.sku.clone(), product.clone());
        Ok(())
    }
}

/// Availability fan-out within one process: a watch channel per SKU, which
/// coalesces by nature (readers see the latest value, never a backlog).
#[derive(Debug, Default)]
pub struct LocalFeed(DashMap<Sku, watch::Sender<Option<Availability>>>);

/// One SKU's end of a [`LocalFeed`].
#[derive(Debug)]
pub struct LocalPublisher(watch::Sender<Option<Availability>>);

impl AvailabilityPublisher for LocalPublisher {
    fn publish(&self, availability: Availability) {
        // Waking watchers costs more than the update itself: with nobody
        // subscribed the value is replaced silently (a new subscriber starts from
        // the current value anyway).
        let watched = self.0.receiver_count() > 0;
        self.0.send_if_modified(|cur| {
            let changed = *cur != Some(availability);
            *cur = Some(availability);
            changed && watched
        });
    }
}

impl LocalFeed {
    fn sender(&self, sku: &Sku) -> watch::Sender<Option<Availability>> {
        if let Some(tx) = self.0.get(sku) {
            return tx.clone();
        }
        self.0.entry(sku.clone()).or_insert_with(|| watch::channel(None).0).clone()
    }
}

impl AvailabilityFeed for LocalFeed {
    fn publisher(&self, sku: &Sku) -> Box<dyn AvailabilityPublisher> {
        Box::new(LocalPublisher(self.sender(sku)))
    }

    fn latest(&self, sku: &Sku) -> Option<Availability> {
        self.0.get(sku).and_then(|tx| *tx.borrow())
    }

    fn subscribe(&self, sku: &Sku) -> watch::Receiver<Option<Availability>> {
        self.sender(sku).subscribe()
    }
}
