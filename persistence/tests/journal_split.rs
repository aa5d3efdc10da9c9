//! The group-commit writer with cross-node orders: when a batch fails because
//! a lease one of its orders relied on moved ([`StoreError::Moved`]), the
//! writer writes its entries one by one, so only the orders relying on it
//! fail and the others of the batch are written; the node keeps its leases.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::journal::JournalWriter;
use flashcore_actors::ownership::{LeaseConfig, Ownership, Phase};
use flashcore_actors::ports::{AppendOutcome, FactCursor, Fence, ForeignLease, Journal, Owner, StoreError};
use flashcore_domain::{
    Cart, CartId, Currency, HoldId, JournalEntry, JournalPos, Money, Order, OrderId, Product, ShardId, Sku, StockFact,
    Timestamp,
};
use flashcore_persistence::memory::{MemoryJournal, MemoryStores};
use flashcore_test_support::eventually;

/// The real in-memory journal, except that an order keyed `moved-*` stands for
/// one whose foreign lease moved: a batch holding it fails as a whole with
/// `Moved`, as the stores do; and the first append waits until `go`, so the
/// next entries queue up into one batch.
struct Stale {
    inner: MemoryJournal,
    go: AtomicBool,
    /// An append is waiting for `go`.
    waiting: AtomicBool,
}

fn is_moved(e: &JournalEntry) -> bool {
    matches!(e, JournalEntry::Order(o) if o.idempotency_key.starts_with("moved-"))
}

/// An order keyed `fenced-*` stands for one relying on a lease of this node's
/// own that another node took: a batch holding it fails with `Fenced`.
fn is_fenced(e: &JournalEntry) -> bool {
    matches!(e, JournalEntry::Order(o) if o.idempotency_key.starts_with("fenced-"))
}

#[async_trait]
impl Journal for Stale {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        while !self.go.load(Ordering::SeqCst) {
            self.waiting.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if batch.iter().any(is_moved) {
            return Err(StoreError::Moved("a foreign lease of the batch moved".into()));
        }
        if batch.iter().any(is_fenced) {
            return Err(StoreError::Fenced("a lease of the batch was lost".into()));
        }
        self.inner.append(batch, fence).await
    }
    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        self.inner.stock_facts(sku, after, orders).await
    }
    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError> {
        self.inner.stock_facts_page(after, limit).await
    }
    async fn stock_facts_of_orders(&self, orders: &[OrderId]) -> Result<Vec<StockFact>, StoreError> {
        self.inner.stock_facts_of_orders(orders).await
    }
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.order(id).await
    }
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        self.inner.order_for_cart(cart).await
    }
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        self.inner.orders(limit, before).await
    }
}

fn order(key: &str) -> Order {
    let price = Money::new(100, Currency::EUR).unwrap();
    let product = Product::new(Sku::parse("SPLIT").unwrap(), "t", "", price, None, None).unwrap();
    let mut cart = Cart::new(CartId::new());
    cart.apply_reserved(&product, 1, HoldId::new(), Timestamp::from_millis(9_000));
    Order::from_cart(&cart, OrderId::new(), key.into(), None, "pay".into(), Timestamp::from_millis(1)).unwrap()
}

fn lease(shard: ShardId) -> Vec<ForeignLease> {
    let owner = Owner { node: "other".into(), generation: 1 };
    vec![ForeignLease { shard, epoch: 1, owner, until: Timestamp::from_millis(u64::MAX / 2) }]
}

/// A node holding every lease under `cfg`, its group-commit writer, and a
/// first append the journal holds until `go` (so the next entries queue up
/// into one batch).
struct Paused {
    journal: Arc<Stale>,
    own: Arc<Ownership>,
    writer: JournalWriter,
    first: tokio::task::JoinHandle<Result<AppendOutcome, StoreError>>,
}

async fn paused(cfg: LeaseConfig) -> Paused {
    let stores = MemoryStores::default();
    let journal = Arc::new(Stale {
        inner: MemoryJournal::new(Arc::clone(&stores.leases)),
        go: AtomicBool::new(false),
        waiting: AtomicBool::new(false),
    });
    let owner = Owner { node: "split".into(), generation: 1 };
    let own = Ownership::hold(stores.leases.clone(), owner, cfg).await;
    let (writer, _task) = JournalWriter::start(journal.clone(), Arc::clone(&own), 100, 100);
    let first = tokio::spawn({
        let w = writer.clone();
        async move { w.append(JournalEntry::Order(order("first"))).await }
    });
    eventually(Duration::from_secs(5), "the writer to take the first entry", || async {
        journal.waiting.load(Ordering::SeqCst).then_some(())
    })
    .await;
    Paused { journal, own, writer, first }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_lease_fails_only_the_orders_relying_on_it() {
    // Arrange: a writer whose first append waits, so the next three queue up.
    let Paused { journal, own, writer, first } = paused(LeaseConfig::default()).await;
    let shard = ShardId::from_number(0);
    let (good, moved, relying) = (order("good"), order("moved-1"), order("relying-ok"));
    let appends = [(good.clone(), Vec::new()), (moved.clone(), lease(shard)), (relying.clone(), lease(shard))].map(
        |(o, foreign)| {
            let w = writer.clone();
            tokio::spawn(async move { w.append_relying(JournalEntry::Order(o), foreign).await })
        },
    );
    eventually(Duration::from_secs(5), "the three entries queued", || async {
        (writer.stats().queue_depth == 3).then_some(())
    })
    .await;

    // Act
    journal.go.store(true, Ordering::SeqCst);
    let first = first.await.unwrap();
    let mut results = Vec::new();
    for a in appends {
        results.push(a.await.unwrap());
    }

    // Assert: the order relying on the moved lease failed alone; the node
    // keeps serving.
    assert!(matches!(first, Ok(AppendOutcome::Written(_))));
    assert!(matches!(results[0], Ok(AppendOutcome::Written(_))), "{:?}", results[0]);
    assert!(matches!(results[1], Err(StoreError::Moved(_))), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(AppendOutcome::Written(_))), "{:?}", results[2]);
    for (o, there) in [(&good, true), (&moved, false), (&relying, true)] {
        assert_eq!(journal.inner.order(o.id).await.unwrap().is_some(), there, "{}", o.idempotency_key);
    }
    assert_eq!(own.phase(), Phase::Serving);
    assert!(writer.stats().max_batch_size >= 2, "the three queued into one batch: {:?}", writer.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_a_fenced_batch_fails_only_the_orders_under_the_lost_lease() {
    // Arrange: a node in cluster mode holding every shard; its writer's first
    // append waits, so the next three queue up into one batch.
    let Paused { journal, own, writer, first } = paused(LeaseConfig { share: true, ..LeaseConfig::default() }).await;
    let held = own.held().len();
    let (a, fenced, b) = (order("a"), order("fenced-1"), order("b"));
    let appends = [a.clone(), fenced.clone(), b.clone()].map(|o| {
        let w = writer.clone();
        tokio::spawn(async move { w.append(JournalEntry::Order(o)).await })
    });
    eventually(Duration::from_secs(5), "the three entries queued", || async {
        (writer.stats().queue_depth == 3).then_some(())
    })
    .await;

    // Act
    journal.go.store(true, Ordering::SeqCst);
    assert!(matches!(first.await.unwrap(), Ok(AppendOutcome::Written(_))));
    let mut results = Vec::new();
    for x in appends {
        results.push(x.await.unwrap());
    }

    // Assert: only the fenced order failed; the node paused to check its
    // leases, found them all still its own, and keeps every shard.
    assert!(matches!(results[0], Ok(AppendOutcome::Written(_))), "{:?}", results[0]);
    assert!(matches!(results[1], Err(StoreError::Fenced(_))), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(AppendOutcome::Written(_))), "{:?}", results[2]);
    for (o, there) in [(&a, true), (&fenced, false), (&b, true)] {
        assert_eq!(journal.inner.order(o.id).await.unwrap().is_some(), there, "{}", o.idempotency_key);
    }
    assert_eq!(own.phase(), Phase::Moving, "admitting paused while the leases are checked");
    tokio::time::timeout(Duration::from_secs(5), own.verified()).await.expect("the leases checked");
    assert!(own.lost_shards().is_empty(), "no lease was lost");
    assert!(own.resume(), "serving again");
    assert_eq!(own.held().len(), held);
    assert_eq!(own.view().losses, 0);
}
