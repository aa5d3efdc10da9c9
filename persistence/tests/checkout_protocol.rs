//! The checkout protocol's less travelled paths, on the real engine and the
//! in-memory adapters: a journal whose acknowledgment and reads can fail, a SKU
//! actor whose restart fails while a sale commits, an idempotency key another
//! order has, a restart after checkout, lapsed holds renewed at checkout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::{
    AppendOutcome, EntityKind, FactCursor, Fence, Journal, Owner, PaymentError, PaymentRequest, Payments,
    SnapshotStore, StoreError,
};
use flashcore_actors::sku::StockChange;
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, EngineError, Ports};
use flashcore_domain::{
    Availability, CartId, CartStatus, Currency, JournalEntry, JournalPos, Money, Order, OrderId, Product, Sku,
    StockFact,
};
use flashcore_persistence::memory::{LocalFeed, MemoryJournal, MemoryStores};
use flashcore_test_support::eventually;

/// The real in-memory journal, except that the next append can commit and then
/// report a failure (a lost acknowledgment) or wait for the test before it
/// commits, and the next reads of a cart's order or of a SKU's stock facts can
/// fail (the store is briefly away).
struct Flaky {
    inner: MemoryJournal,
    lose_next_ack: AtomicBool,
    fail_order_reads: AtomicUsize,
    fail_fact_reads: AtomicUsize,
    hold_next_append: AtomicBool,
    append_waiting: AtomicBool,
    release_append: tokio::sync::Notify,
}

/// Takes one of `n` failures still to come, if any.
fn take_failure(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
}

#[async_trait]
impl Journal for Flaky {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        if self.hold_next_append.swap(false, Ordering::SeqCst) {
            self.append_waiting.store(true, Ordering::SeqCst);
            self.release_append.notified().await;
        }
        let written = self.inner.append(batch, fence).await?;
        if self.lose_next_ack.swap(false, Ordering::SeqCst) {
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
        if take_failure(&self.fail_fact_reads) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
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
        if take_failure(&self.fail_order_reads) {
            return Err(StoreError::Unavailable("connection refused".into()));
        }
        self.inner.order_for_cart(cart).await
    }
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        self.inner.orders(limit, before).await
    }
}

/// The test provider, keeping the references it was asked to void.
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

struct World {
    stores: MemoryStores,
    journal: Arc<Flaky>,
    payments: Arc<RecordingPayments>,
    ownership: Arc<Ownership>,
    engine: Engine,
}

impl World {
    async fn start(cfg: EngineConfig) -> World {
        let stores = MemoryStores::default();
        let journal = Arc::new(Flaky {
            inner: MemoryJournal::new(Arc::clone(&stores.leases)),
            lose_next_ack: AtomicBool::new(false),
            fail_order_reads: AtomicUsize::new(0),
            fail_fact_reads: AtomicUsize::new(0),
            hold_next_append: AtomicBool::new(false),
            append_waiting: AtomicBool::new(false),
            release_append: tokio::sync::Notify::new(),
        });
        let payments = Arc::new(RecordingPayments::default());
        let (ownership, engine) = Self::engine(&stores, &journal, &payments, cfg, 1).await;
        World { stores, journal, payments, ownership, engine }
    }

    async fn engine(
        stores: &MemoryStores,
        journal: &Arc<Flaky>,
        payments: &Arc<RecordingPayments>,
        cfg: EngineConfig,
        generation: u64,
    ) -> (Arc<Ownership>, Engine) {
        let ports = Ports {
            journal: journal.clone(),
            snapshots: stores.snapshots.clone(),
            catalog: stores.catalog.clone(),
            payments: payments.clone(),
            feed: Arc::new(LocalFeed::default()),
            peers: None,
        };
        let owner = Owner { node: "checkout-protocol".into(), generation };
        let ownership = Ownership::hold(stores.leases.clone(), owner, LeaseConfig::default()).await;
        let engine = Engine::start(cfg, ports, Arc::clone(&ownership)).await.unwrap();
        (ownership, engine)
    }

    /// Stops the engine gracefully and starts another on the same stores.
    async fn restart(&mut self) {
        self.engine.shutdown().await;
        self.ownership.release(&*self.stores.leases).await;
        let (ownership, engine) =
            Self::engine(&self.stores, &self.journal, &self.payments, EngineConfig::default(), 2).await;
        self.ownership = ownership;
        self.engine = engine;
    }

    async fn product(&self, code: &str, total: u64) -> Sku {
        let sku = Sku::parse(code).unwrap();
        let product = Product::new(sku.clone(), "t", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
        self.engine.upsert_product(product).await.unwrap();
        self.engine.adjust_stock(&sku, StockChange::SetTotal(total)).await.unwrap();
        sku
    }

    async fn cart_with(&self, lines: &[(&Sku, u32)]) -> CartId {
        let cart = self.engine.create_cart().await.unwrap();
        for (sku, qty) in lines {
            self.engine.set_quantity(cart.id, (*sku).clone(), *qty).await.unwrap();
        }
        cart.id
    }

    async fn counts(&self, sku: &Sku) -> (u64, u64, u64) {
        let a: Availability = self.engine.availability(sku).await.unwrap();
        (a.sold, a.held, a.available)
    }

    async fn await_counts(&self, sku: &Sku, want: (u64, u64, u64)) {
        let seen = Mutex::new(None);
        let what = format!("{sku} to have (sold, held, available) = {want:?}");
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            eventually(Duration::from_secs(6), &what, || async {
                let now = self.counts(sku).await;
                *seen.lock().unwrap() = Some(now);
                (now == want).then_some(())
            })
            .await
        })
        .await;
        assert!(found.is_ok(), "timed out waiting for {what}; last seen {:?}", seen.lock().unwrap());
    }
}

fn checkout(key: &str, token: &str) -> CheckoutRequest {
    CheckoutRequest { payment_token: token.into(), email: None, idempotency_key: key.into() }
}

#[tokio::test]
async fn an_unknown_outcome_retried_with_its_key_answers_the_journaled_order_and_voids_the_retrys_authorization() {
    // Arrange: the order's batch commits, the writer is told it failed, and the
    // journal cannot be read to find out.
    let w = World::start(EngineConfig::default()).await;
    let sku = w.product("UNKNOWN-OUTCOME", 10).await;
    let cart = w.cart_with(&[(&sku, 3)]).await;
    w.journal.lose_next_ack.store(true, Ordering::SeqCst);
    w.journal.fail_order_reads.store(1, Ordering::SeqCst);
    let first = w.engine.checkout(cart, checkout("k", "tok_visa")).await;
    assert!(matches!(first, Err(EngineError::Unavailable { .. })), "{first:?}");
    let journaled = w.journal.inner.order_for_cart(cart).await.unwrap().expect("the first attempt's order");

    // Act: the buyer retries with the same key.
    let (order, replayed) = w.engine.checkout(cart, checkout("k", "tok_visa")).await.unwrap();

    // Assert: the journaled order is the answer (its first success), sold once;
    // the first attempt's holds were kept for it, and no authorization was voided
    // (the retry settled from the journal before authorizing anything).
    assert!(!replayed);
    assert_eq!(order.id, journaled.id);
    assert_eq!(w.engine.orders(10, None).await.unwrap().len(), 1);
    w.await_counts(&sku, (3, 0, 7)).await;
    let voided = w.payments.voided.lock().unwrap().clone();
    assert!(voided.is_empty(), "the journaled order's payment stands: {voided:?}");
    // A second retry replays it.
    let (again, replayed) = w.engine.checkout(cart, checkout("k", "tok_visa")).await.unwrap();
    assert!(replayed);
    assert_eq!(again.id, journaled.id);
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_retry_with_another_key_after_an_unknown_outcome_is_refused_not_ordered_twice() {
    // Arrange: as above, the first attempt's outcome is unknown to the cart.
    let w = World::start(EngineConfig::default()).await;
    let sku = w.product("ANOTHER-KEY", 10).await;
    let cart = w.cart_with(&[(&sku, 2)]).await;
    w.journal.lose_next_ack.store(true, Ordering::SeqCst);
    w.journal.fail_order_reads.store(1, Ordering::SeqCst);
    assert!(w.engine.checkout(cart, checkout("first", "tok_visa")).await.is_err());

    // Act: the retry comes with a new key.
    let retry = w.engine.checkout(cart, checkout("second", "tok_visa")).await;

    // Assert: the first attempt is settled from the journal first, so the cart
    // is checked out with it: the retry is refused, nothing authorized or
    // voided, still one order, its units sold.
    let journaled = w.journal.inner.order_for_cart(cart).await.unwrap().unwrap();
    assert_eq!(journaled.idempotency_key, "first");
    assert!(matches!(retry, Err(EngineError::CartCheckedOut(id)) if id == journaled.id), "{retry:?}");
    assert_eq!(w.engine.orders(10, None).await.unwrap().len(), 1);
    assert!(w.payments.voided.lock().unwrap().is_empty());
    w.await_counts(&sku, (2, 0, 8)).await;
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_key_already_on_another_carts_order_is_refused_and_the_second_carts_units_stay_held() {
    // Arrange: one order placed under a key.
    let w = World::start(EngineConfig::default()).await;
    let sku = w.product("SHARED-KEY", 10).await;
    let placed = w.cart_with(&[(&sku, 2)]).await;
    let other = w.cart_with(&[(&sku, 3)]).await;
    let (order, _) = w.engine.checkout(placed, checkout("shared", "tok_visa")).await.unwrap();

    // Act: another cart checks out under the same key.
    let refused = w.engine.checkout(other, checkout("shared", "tok_visa")).await;

    // Assert: refused; nothing of it is sold, its units are still held for it,
    // its authorization is voided, and its cart stays open.
    assert!(matches!(refused, Err(EngineError::IdempotencyKeyReused)), "{refused:?}");
    w.await_counts(&sku, (2, 3, 5)).await;
    assert_eq!(w.engine.orders(10, None).await.unwrap().iter().map(|o| o.id).collect::<Vec<_>>(), vec![order.id]);
    assert_eq!(w.payments.voided.lock().unwrap().len(), 1);
    assert_eq!(w.engine.cart(other).await.unwrap().status, CartStatus::Open);
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_sale_committed_while_its_sku_actor_cannot_restart_reaches_it_once_it_can() {
    // Arrange: the order's units are prepared and its batch is being written
    // when the SKU's actor fails, and its restart cannot read the journal.
    let w = World::start(EngineConfig::default()).await;
    let sku = w.product("RESTART-FAILS", 10).await;
    let cart = w.cart_with(&[(&sku, 2)]).await;
    w.journal.hold_next_append.store(true, Ordering::SeqCst);
    let engine = w.engine.clone();
    let pending = tokio::spawn(async move { engine.checkout(cart, checkout("restart-fails", "tok_visa")).await });
    eventually(Duration::from_secs(5), "the order's batch to be in the journal's hands", || async {
        w.journal.append_waiting.load(Ordering::SeqCst).then_some(())
    })
    .await;
    w.journal.fail_fact_reads.store(1, Ordering::SeqCst);
    w.engine.inject_sku_failure(&sku).await.unwrap();
    eventually(Duration::from_secs(5), "the SKU's restart to have failed", || async {
        (w.journal.fail_fact_reads.load(Ordering::SeqCst) == 0).then_some(())
    })
    .await;

    // Act: the batch commits; the first delivery of the sale to the SKU finds
    // its activation failing too.
    w.journal.fail_fact_reads.store(1, Ordering::SeqCst);
    w.journal.release_append.notify_one();
    let (order, _) = pending.await.unwrap().expect("the order is durable");

    // Assert: the SKU counts the sale exactly once, once it can start again.
    w.await_counts(&sku, (2, 0, 8)).await;
    assert_eq!(w.journal.fail_fact_reads.load(Ordering::SeqCst), 0);
    assert_eq!(w.engine.orders(10, None).await.unwrap().iter().map(|o| o.id).collect::<Vec<_>>(), vec![order.id]);
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_cart_checked_out_before_a_restart_recovers_as_checked_out_from_the_journal() {
    // Arrange: an order placed; the cart's last snapshot still shows it open
    // (a placed order writes no snapshot: the journal holds it).
    let mut w = World::start(EngineConfig::default()).await;
    let sku = w.product("RESTARTED", 10).await;
    let cart = w.cart_with(&[(&sku, 1)]).await;
    eventually(Duration::from_secs(5), "the open cart to be written behind", || async {
        w.stores.snapshots.load(EntityKind::Cart, &cart.to_string()).await.unwrap().map(|_| ())
    })
    .await;
    let (order, _) = w.engine.checkout(cart, checkout("before-restart", "tok_visa")).await.unwrap();

    // Act
    w.restart().await;

    // Assert: the cart is checked out as that order; the same key replays it,
    // another is refused; the units stay sold.
    let recovered = w.engine.cart(cart).await.unwrap();
    assert_eq!(
        recovered.status,
        CartStatus::CheckedOut { order_id: order.id, idempotency_key: "before-restart".into() }
    );
    let (again, replayed) = w.engine.checkout(cart, checkout("before-restart", "tok_visa")).await.unwrap();
    assert!(replayed);
    assert_eq!(again.id, order.id);
    let other = w.engine.checkout(cart, checkout("after-restart", "tok_visa")).await;
    assert!(matches!(other, Err(EngineError::CartCheckedOut(id)) if id == order.id), "{other:?}");
    w.await_counts(&sku, (1, 0, 9)).await;
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_declined_checkout_keeps_the_holds_it_renewed() {
    // Arrange: a hold that lapses.
    let cfg = EngineConfig { hold_ttl: Duration::from_millis(200), ..EngineConfig::default() };
    let w = World::start(cfg).await;
    let sku = w.product("RENEWED", 10).await;
    let cart = w.cart_with(&[(&sku, 2)]).await;
    let lapsing = w.engine.cart(cart).await.unwrap().lines.get(&sku).unwrap().hold_expires_at;
    w.await_counts(&sku, (0, 0, 10)).await;

    // Act: checkout renews the hold, then the payment is declined.
    let result = w.engine.checkout(cart, checkout("declined", "tok_decline")).await;

    // Assert: declined, and the renewed hold stands for the cart.
    assert!(matches!(result, Err(EngineError::PaymentDeclined)), "{result:?}");
    assert_eq!(w.counts(&sku).await, (0, 2, 8));
    let line_now = w.engine.cart(cart).await.unwrap();
    assert!(line_now.lines.get(&sku).unwrap().hold_expires_at > lapsing);
    w.engine.shutdown().await;
}

#[tokio::test]
async fn a_lapsed_hold_is_renewed_under_the_products_rules_of_now() {
    // Arrange: a hold of 3 lapses, then the operator limits the product to 2 per order.
    let cfg = EngineConfig { hold_ttl: Duration::from_millis(200), ..EngineConfig::default() };
    let w = World::start(cfg).await;
    let sku = w.product("LIMITED-LATER", 10).await;
    let cart = w.cart_with(&[(&sku, 3)]).await;
    w.await_counts(&sku, (0, 0, 10)).await;
    let limited = Product::new(sku.clone(), "t", "", Money::new(100, Currency::EUR).unwrap(), Some(2), None).unwrap();
    w.engine.upsert_product(limited).await.unwrap();

    // Act
    let result = w.engine.checkout(cart, checkout("limited", "tok_visa")).await;

    // Assert: refused with the new limit; nothing held, sold or charged.
    assert!(matches!(&result, Err(e) if e.code() == "limit-exceeded"), "{result:?}");
    assert_eq!(w.counts(&sku).await, (0, 0, 10));
    assert!(w.engine.orders(10, None).await.unwrap().is_empty());
    w.engine.shutdown().await;
}

#[tokio::test]
async fn removing_a_line_the_cart_does_not_have_changes_nothing() {
    let w = World::start(EngineConfig::default()).await;
    let held = w.product("IN-CART", 10).await;
    let absent = w.product("NOT-IN-CART", 10).await;
    let cart = w.cart_with(&[(&held, 1)]).await;
    let before = w.engine.cart(cart).await.unwrap();

    let after = w.engine.set_quantity(cart, absent.clone(), 0).await.unwrap();

    assert_eq!(after, before);
    assert_eq!(w.counts(&absent).await, (0, 0, 10));
    assert_eq!(w.counts(&held).await, (0, 1, 9));
    w.engine.shutdown().await;
}
