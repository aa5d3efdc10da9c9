//! Checkouts do not rewrite a SKU's snapshot: the journal already has what they
//! changed. A SKU actor restarted from the older snapshot replays the sold facts
//! and keeps the holds no order took; shutdown leaves a snapshot that needs no
//! replay. Runs on the in-process, SQLite and Postgres stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::{EntityKind, SnapshotRecord, SnapshotStore};
use flashcore_actors::sku::StockChange;
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, Ports};
use flashcore_domain::{Availability, CartId, Currency, InventorySnapshot, Money, Product, Sku};
use flashcore_persistence::memory::LocalFeed;
use support::{Stores, WITHIN, eventually};

async fn stored(snapshots: &Arc<dyn SnapshotStore>, kind: EntityKind, id: &str) -> Option<SnapshotRecord> {
    snapshots.load(kind, id).await.unwrap()
}

fn inventory(rec: &SnapshotRecord) -> InventorySnapshot {
    rec.state.decode().unwrap()
}

fn checkout(key: &str) -> CheckoutRequest {
    CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: key.into() }
}

async fn checkouts_leave_the_sku_snapshot_to_the_journal(stores: Stores) {
    // Arrange: three carts hold one unit each, and that state is written behind.
    let ownership = support::hold(&stores).await;
    let snapshots = Arc::clone(&stores.snapshots);
    let ports = Ports {
        journal: stores.journal,
        snapshots: Arc::clone(&snapshots),
        catalog: stores.catalog,
        payments: Arc::new(TestPayments),
        feed: Arc::new(LocalFeed::default()),
        peers: None,
    };
    let cfg = EngineConfig { flush_interval: Duration::from_millis(10), ..EngineConfig::default() };
    let engine = Engine::start(cfg, ports, ownership).await.unwrap();
    let sku = Sku::parse("CHECKPOINT-1").unwrap();
    let product = Product::new(sku.clone(), "t", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&sku, StockChange::SetTotal(10)).await.unwrap();
    let mut carts: Vec<CartId> = Vec::new();
    for _ in 0..3 {
        let cart = engine.create_cart().await.unwrap();
        engine.set_quantity(cart.id, sku.clone(), 1).await.unwrap();
        carts.push(cart.id);
    }
    let before = eventually(WITHIN, "the three holds written behind", || async {
        stored(&snapshots, EntityKind::Sku, sku.as_str()).await.filter(|r| inventory(r).holds.len() == 3)
    })
    .await;

    // Act: two carts check out. Then a change elsewhere is written behind: the
    // flush that writes it would have the SKU too, had the checkouts made it dirty.
    engine.checkout(carts[0], checkout("k0")).await.unwrap();
    engine.checkout(carts[1], checkout("k1")).await.unwrap();
    let other = Sku::parse("CHECKPOINT-2").unwrap();
    let product = Product::new(other.clone(), "u", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&other, StockChange::SetTotal(1)).await.unwrap();
    let later = engine.create_cart().await.unwrap();
    engine.set_quantity(later.id, other, 1).await.unwrap();
    eventually(WITHIN, "a later change written behind", || async {
        stored(&snapshots, EntityKind::Cart, &later.id.to_string()).await
    })
    .await;

    // Assert: the SKU's snapshot is the one from before the checkouts.
    let after = stored(&snapshots, EntityKind::Sku, sku.as_str()).await.unwrap();
    assert_eq!(after.version, before.version, "checkouts alone rewrote the SKU snapshot");
    assert_eq!(inventory(&after).sold, 0);

    // A restarted actor recovers from that snapshot plus the journal: two sold,
    // the third cart's hold still there for its checkout.
    let restarts = |e: &Engine| e.actor_stats(1).into_iter().find(|s| s.kind == "sku").unwrap().restarts;
    let restarts_before = restarts(&engine);
    engine.inject_sku_failure(&sku).await.unwrap();
    eventually(WITHIN, "the restart", || async { (restarts(&engine) > restarts_before).then_some(()) }).await;
    engine.checkout(carts[2], checkout("k2")).await.expect("the recovered hold checks out");
    let expect = Availability { total: 10, sold: 3, held: 0, available: 7 };
    eventually(WITHIN, "the third sale", || async { engine.availability(&sku).await.ok().filter(|a| *a == expect) })
        .await;

    // Shutdown writes a snapshot that reflects every sale.
    engine.shutdown().await;
    let last = inventory(&stored(&snapshots, EntityKind::Sku, sku.as_str()).await.unwrap());
    assert_eq!((last.sold, last.holds.len()), (3, 0));
}

#[tokio::test]
async fn memory_checkouts_leave_the_sku_snapshot_to_the_journal() {
    checkouts_leave_the_sku_snapshot_to_the_journal(support::memory().await).await;
}

#[tokio::test]
async fn sqlite_checkouts_leave_the_sku_snapshot_to_the_journal() {
    checkouts_leave_the_sku_snapshot_to_the_journal(support::sqlite().await).await;
}

#[tokio::test]
async fn postgres_checkouts_leave_the_sku_snapshot_to_the_journal() {
    checkouts_leave_the_sku_snapshot_to_the_journal(support::postgres().await).await;
}
