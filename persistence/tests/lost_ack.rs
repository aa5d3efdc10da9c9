//! A commit whose acknowledgment is lost (the connection dies during COMMIT):
//! the order is in the journal but the writer saw an error. The checkout must
//! reconcile with the journal instead of releasing stock that was sold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::breaker::BreakerConfig;
use flashcore_actors::budget::CheckoutBudget;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::{
    AppendOutcome, FactCursor, Fence, Journal, Owner, PaymentError, PaymentRequest, Payments, StoreError,
};
use flashcore_actors::sku::StockChange;
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, Ports};
use flashcore_domain::{CartId, Currency, JournalEntry, JournalPos, Money, Order, OrderId, Product, Sku, StockFact};
use flashcore_persistence::memory::{LocalFeed, MemoryCatalog, MemoryJournal, MemoryStores};
use flashcore_test_support::eventually;

/// The real in-memory journal, except that the next append commits and then
/// reports a failure (`lose_next`), or fails without committing (`fail_next`),
/// or takes `slow_next_ms` before it commits, and that reads of orders fail
/// while `reads_down`.
struct LostAck {
    inner: MemoryJournal,
    lose_next: AtomicBool,
    fail_next: AtomicBool,
    slow_next_ms: AtomicU64,
    reads_down: AtomicBool,
}

impl LostAck {
    fn new(stores: &MemoryStores) -> Self {
        LostAck {
            inner: MemoryJournal::new(Arc::clone(&stores.leases)),
            lose_next: AtomicBool::new(false),
            fail_next: AtomicBool::new(false),
            slow_next_ms: AtomicU64::new(0),
            reads_down: AtomicBool::new(false),
        }
    }

    fn reads(&self) -> Result<(), StoreError> {
        if self.reads_down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("journal unreachable".into()));
        }
        Ok(())
    }
}

/// The test provider, recording every void.
#[derive(Default)]
struct RecordingPayments {
    voided: Mutex<Vec<String>>,
}

#[async_trait]
impl Payments for RecordingPayments {
    async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError> {
        TestPayments.authorize(req).await
    }
    async fn void(&self, reference: &str) -> Result<(), PaymentError> {
        self.voided.lock().unwrap().push(reference.to_owned());
        Ok(())
    }
}

#[async_trait]
impl Journal for LostAck {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection reset before COMMIT".into()));
        }
        let slow = self.slow_next_ms.swap(0, Ordering::SeqCst);
        if slow > 0 {
            tokio::time::sleep(Duration::from_millis(slow)).await;
        }
        let written = self.inner.append(batch, fence).await?;
        if self.lose_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable("connection reset during COMMIT".into()));
        }
        Ok(written)
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
        self.reads()?;
        self.inner.order(id).await
    }
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        self.reads()?;
        self.inner.order_for_cart(cart).await
    }
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        self.inner.orders(limit, before).await
    }
}

#[tokio::test]
async fn a_checkout_whose_commit_acknowledgment_was_lost_is_reconciled_not_released() {
    // Arrange
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let ports = Ports {
        journal: journal.clone(),
        snapshots: stores.snapshots,
        catalog: Arc::new(MemoryCatalog::default()),
        payments: Arc::new(TestPayments),
        feed: Arc::new(LocalFeed::default()),
        peers: None,
    };
    let owner = Owner { node: "lost-ack".into(), generation: 1 };
    let ownership = Ownership::hold(stores.leases, owner, LeaseConfig::default()).await;
    let engine = Engine::start(EngineConfig::default(), ports, ownership).await.unwrap();
    let sku = Sku::parse("LOST-ACK").unwrap();
    let product = Product::new(sku.clone(), "t", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&sku, StockChange::SetTotal(10)).await.unwrap();
    let cart = engine.create_cart().await.unwrap();
    engine.set_quantity(cart.id, sku.clone(), 3).await.unwrap();

    // Act: the order's batch commits, but the writer is told it failed.
    journal.lose_next.store(true, Ordering::SeqCst);
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    let (order, replayed) = engine.checkout(cart.id, req.clone()).await.expect("reconciled with the journal");

    // Assert: the journaled order is the answer and its units are sold, not released.
    assert!(!replayed);
    assert_eq!(journal.inner.order_for_cart(cart.id).await.unwrap().unwrap().id, order.id);
    // The commit reaches the SKU actor as a message: poll, with a deadline.
    eventually(Duration::from_secs(5), "the units to become sold", || async {
        let stock = engine.availability(&sku).await.unwrap();
        ((stock.sold, stock.held, stock.available) == (3, 0, 7)).then_some(())
    })
    .await;
    // A retry replays the same order.
    let (again, replayed) = engine.checkout(cart.id, req).await.unwrap();
    assert!(replayed);
    assert_eq!(again.id, order.id);
    engine.shutdown().await;
}

/// An engine over `journal` and `payments`, selling 10 units of one SKU, with a
/// cart holding 3 of them.
async fn sale(journal: Arc<LostAck>, stores: MemoryStores, payments: Arc<RecordingPayments>) -> (Engine, Sku, CartId) {
    sale_within(journal, stores, payments, EngineConfig::default()).await
}

/// [`sale`] on an engine configured like `cfg`.
async fn sale_within(
    journal: Arc<LostAck>,
    stores: MemoryStores,
    payments: Arc<RecordingPayments>,
    cfg: EngineConfig,
) -> (Engine, Sku, CartId) {
    let ports = Ports {
        journal,
        snapshots: stores.snapshots,
        catalog: Arc::new(MemoryCatalog::default()),
        payments,
        feed: Arc::new(LocalFeed::default()),
        peers: None,
    };
    let owner = Owner { node: "lost-ack".into(), generation: 1 };
    let ownership = Ownership::hold(stores.leases, owner, LeaseConfig::default()).await;
    // The journal's failures here are the point: the breaker must not open on them.
    let breaker = BreakerConfig { failures: 100, ..BreakerConfig::default() };
    let engine = Engine::start(EngineConfig { breaker, ..cfg }, ports, ownership).await.unwrap();
    let sku = Sku::parse("UNKNOWN-OUTCOME").unwrap();
    let product = Product::new(sku.clone(), "t", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&sku, StockChange::SetTotal(10)).await.unwrap();
    let cart = engine.create_cart().await.unwrap();
    engine.set_quantity(cart.id, sku.clone(), 3).await.unwrap();
    (engine, sku, cart.id)
}

#[tokio::test]
async fn a_lost_acknowledgment_that_cannot_be_reconciled_keeps_holds_and_payment_until_the_journal_answers() {
    // Arrange
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let payments = Arc::new(RecordingPayments::default());
    let (engine, sku, cart) = sale(Arc::clone(&journal), stores, Arc::clone(&payments)).await;

    // Act: the order commits, the writer is told it failed, and the journal cannot be read.
    journal.lose_next.store(true, Ordering::SeqCst);
    journal.reads_down.store(true, Ordering::SeqCst);
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    let err = engine.checkout(cart, req.clone()).await.expect_err("the outcome is unknown");

    // Assert: a retryable 503; nothing voided; the 3 units are neither resold nor released.
    assert_eq!(err.code(), "unavailable");
    assert!(payments.voided.lock().unwrap().is_empty(), "an order that may be journaled keeps its payment");
    let stock = engine.availability(&sku).await.unwrap();
    assert_eq!((stock.sold, stock.held, stock.available), (0, 3, 7));
    let other = engine.create_cart().await.unwrap();
    let greedy = engine.set_quantity(other.id, sku.clone(), 8).await;
    assert!(greedy.is_err(), "the unresolved checkout's units must not be resold: {greedy:?}");
    // Only its own lines are held back: the rest of the stock still sells.
    engine.set_quantity(other.id, sku.clone(), 7).await.unwrap();
    // While the journal stays unreadable, a retry keeps answering 503 and keeps everything.
    assert_eq!(engine.checkout(cart, req.clone()).await.unwrap_err().code(), "unavailable");
    assert!(payments.voided.lock().unwrap().is_empty());

    // Act: the journal answers again; the buyer retries with the same key.
    journal.reads_down.store(false, Ordering::SeqCst);
    let (order, _) = engine.checkout(cart, req).await.expect("settled from the journal");

    // Assert: the journaled order is the answer, its units sold, its payment never voided.
    assert_eq!(journal.inner.order_for_cart(cart).await.unwrap().unwrap().id, order.id);
    eventually(Duration::from_secs(5), "the units to become sold", || async {
        let stock = engine.availability(&sku).await.unwrap();
        ((stock.sold, stock.held, stock.available) == (3, 7, 0)).then_some(())
    })
    .await;
    assert!(payments.voided.lock().unwrap().is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn an_unknown_outcome_that_was_not_journaled_is_undone_once_the_journal_answers() {
    // Arrange
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let payments = Arc::new(RecordingPayments::default());
    let (engine, sku, cart) = sale(Arc::clone(&journal), stores, Arc::clone(&payments)).await;

    // Act: the write fails before COMMIT, and the journal cannot be read.
    journal.fail_next.store(true, Ordering::SeqCst);
    journal.reads_down.store(true, Ordering::SeqCst);
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    assert_eq!(engine.checkout(cart, req.clone()).await.unwrap_err().code(), "unavailable");
    assert!(payments.voided.lock().unwrap().is_empty());
    // A line change waits for the journal too (its hold is prepared for the unknown order).
    assert_eq!(engine.set_quantity(cart, sku.clone(), 2).await.unwrap_err().code(), "unavailable");
    // Only its own lines are held back: another product's line changes as usual.
    let other = Sku::parse("OTHER-LINE").unwrap();
    let product = Product::new(other.clone(), "o", "", Money::new(50, Currency::EUR).unwrap(), None, None).unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&other, StockChange::SetTotal(5)).await.unwrap();
    engine.set_quantity(cart, other.clone(), 1).await.expect("another line is not held back");
    engine.set_quantity(cart, other, 0).await.unwrap();

    // Act: the journal answers; the retry finds nothing journaled.
    journal.reads_down.store(false, Ordering::SeqCst);
    let (order, replayed) = engine.checkout(cart, req).await.expect("a fresh attempt succeeds");

    // Assert: the first attempt's authorization was voided (once), the new order sold the units.
    assert!(!replayed);
    assert_eq!(payments.voided.lock().unwrap().len(), 1);
    assert_ne!(payments.voided.lock().unwrap()[0], order.payment_ref);
    eventually(Duration::from_secs(5), "the units to become sold", || async {
        let stock = engine.availability(&sku).await.unwrap();
        ((stock.sold, stock.held, stock.available) == (3, 0, 7)).then_some(())
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_journal_write_past_its_budget_keeps_the_checkout_unresolved_until_it_lands() {
    // Arrange: the journal step may take 100 ms; the order's write takes 800.
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let payments = Arc::new(RecordingPayments::default());
    let budget = CheckoutBudget { journal: Duration::from_millis(100), ..CheckoutBudget::default() };
    let cfg = EngineConfig { budget, ..EngineConfig::default() };
    let (engine, sku, cart) = sale_within(Arc::clone(&journal), stores, Arc::clone(&payments), cfg).await;
    journal.slow_next_ms.store(800, Ordering::SeqCst);

    // Act: the checkout gives up waiting; a retry comes while the write still runs.
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    assert_eq!(engine.checkout(cart, req.clone()).await.unwrap_err().code(), "unavailable");
    let retry = engine.checkout(cart, req.clone()).await.unwrap_err();

    // Assert: 503 both times, and the units stay held, the payment kept.
    assert_eq!(retry.code(), "unavailable");
    assert!(retry.to_string().contains("still being written"), "{retry}");
    let stock = engine.availability(&sku).await.unwrap();
    assert_eq!((stock.sold, stock.held, stock.available), (0, 3, 7));
    assert!(payments.voided.lock().unwrap().is_empty());

    // Once the write lands, the retry answers the order it wrote, sold, never voided.
    let (order, _) = eventually(Duration::from_secs(5), "the late write to settle the checkout", || async {
        engine.checkout(cart, req.clone()).await.ok()
    })
    .await;
    assert_eq!(journal.inner.order_for_cart(cart).await.unwrap().unwrap().id, order.id);
    eventually(Duration::from_secs(5), "the units to become sold", || async {
        let stock = engine.availability(&sku).await.unwrap();
        ((stock.sold, stock.held, stock.available) == (3, 0, 7)).then_some(())
    })
    .await;
    assert!(payments.voided.lock().unwrap().is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_write_that_failed_before_commit_is_undone_at_once_when_the_journal_says_so() {
    // Arrange
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let payments = Arc::new(RecordingPayments::default());
    let (engine, sku, cart) = sale(Arc::clone(&journal), stores, Arc::clone(&payments)).await;

    // Act: the write fails before COMMIT; the journal answers that nothing was written.
    journal.fail_next.store(true, Ordering::SeqCst);
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    let err = engine.checkout(cart, req.clone()).await.unwrap_err();

    // Assert: 503 at once, the authorization voided, the prepared units back in the
    // cart's hold (not sold, not resold), and a retry places the order.
    assert_eq!(err.code(), "unavailable");
    assert_eq!(journal.inner.order_for_cart(cart).await.unwrap(), None);
    assert_eq!(payments.voided.lock().unwrap().len(), 1, "the failed attempt's authorization is voided");
    let stock = engine.availability(&sku).await.unwrap();
    assert_eq!((stock.sold, stock.held, stock.available), (0, 3, 7));
    let (order, replayed) = engine.checkout(cart, req).await.expect("the retry succeeds");
    assert!(!replayed);
    assert_eq!(journal.inner.order_for_cart(cart).await.unwrap().unwrap().id, order.id);
    assert_eq!(payments.voided.lock().unwrap().len(), 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_hold_the_sku_lost_in_a_crash_fails_the_checkout_as_stock_lost() {
    // Arrange: nothing is written behind (the holds exist only in the SKU
    // actor's memory), then the SKU actor crashes and recovers without them.
    let stores = MemoryStores::default();
    let journal = Arc::new(LostAck::new(&stores));
    let payments = Arc::new(RecordingPayments::default());
    let cfg = EngineConfig { flush_interval: Duration::from_secs(3600), ..EngineConfig::default() };
    let (engine, sku, cart) = sale_within(Arc::clone(&journal), stores, Arc::clone(&payments), cfg).await;
    engine.inject_sku_failure(&sku).await.unwrap();
    eventually(Duration::from_secs(5), "the SKU to recover without the hold", || async {
        let stock = engine.availability(&sku).await.ok()?;
        (stock.held == 0).then_some(())
    })
    .await;

    // Act
    let req = CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: "k".into() };
    let err = engine.checkout(cart, req).await.unwrap_err();

    // Assert: 409 stock-lost, nothing written, nothing charged or sold.
    assert_eq!(err.code(), "stock-lost");
    assert_eq!(journal.inner.order_for_cart(cart).await.unwrap(), None);
    assert!(payments.voided.lock().unwrap().is_empty());
    let stock = engine.availability(&sku).await.unwrap();
    assert_eq!((stock.sold, stock.held), (0, 0));
    engine.shutdown().await;
}
