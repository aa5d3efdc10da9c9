//! A commit whose acknowledgment is lost (the connection dies during COMMIT):
//! the order is in the journal but the writer saw an error. The checkout must
//! reconcile with the journal instead of releasing stock that was sold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::{AppendOutcome, FactCursor, Fence, Journal, Owner, StoreError};
use flashcore_actors::sku::StockChange;
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, Ports};
use flashcore_domain::{CartId, Currency, JournalEntry, JournalPos, Money, Order, OrderId, Product, Sku, StockFact};
use flashcore_persistence::memory::{LocalFeed, MemoryCatalog, MemoryJournal, MemoryStores};
use flashcore_test_support::eventually;

/// The real in-memory journal, except that the next append commits and then
/// reports a failure.
struct LostAck {
    inner: MemoryJournal,
    lose_next: AtomicBool,
}

#[async_trait]
impl Journal for LostAck {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
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
        self.inner.order(id).await
    }
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
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
    let journal =
        Arc::new(LostAck { inner: MemoryJournal::new(Arc::clone(&stores.leases)), lose_next: AtomicBool::new(false) });
    let ports = Ports {
        journal: journal.clone(),
        snapshots: stores.snapshots,
        catalog: Arc::new(MemoryCatalog::default()),
        payments: Arc::new(TestPayments),
        feed: Arc::new(LocalFeed::default()),
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
