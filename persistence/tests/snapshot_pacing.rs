//! Write-behind pacing: a SKU whose snapshot is expensive (many holds) is not
//! asked for another one until it has worked 20 times as long as the snapshot
//! took, and shutdown still gets its last state.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::alarms::Alarms;
use flashcore_actors::flusher::Flusher;
use flashcore_actors::gate::Ticket;
use flashcore_actors::journal::JournalWriter;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::ports::Owner;
use flashcore_actors::ports::{EntityKind, SnapshotStore};
use flashcore_actors::reply::ask;
use flashcore_actors::sku::{ReserveReq, SkuActor, SkuDeps, SkuMsg, StockChange};
use flashcore_domain::{CartId, HoldId, Sku};
use flashcore_persistence::memory::{LocalFeed, MemoryStores};
use ractor::Actor;

async fn reserve(actor: &ractor::ActorRef<SkuMsg>, cart: CartId) {
    let expires_at = flashcore_actors::clock::now().plus_millis(600_000);
    let r = ask(
        actor,
        |reply| ReserveReq { ticket: Ticket::untracked(), hold: HoldId::new(), cart, qty: 1, expires_at, reply }.into(),
        None,
    )
    .await;
    assert!(matches!(r, Ok(Ok(()))), "reserve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expensive_snapshot_paces_the_next_and_shutdown_still_gets_the_last_state() {
    let stores = MemoryStores::default();
    let snapshots = stores.snapshots;
    let store: Arc<dyn SnapshotStore> = snapshots.clone();
    let owner = Owner { node: "pacing".into(), generation: 1 };
    let ownership = Ownership::hold(stores.leases, owner, LeaseConfig::default()).await;
    let (journal, _) = JournalWriter::start(stores.journal, Arc::clone(&ownership), 64, 1024);
    // A flush interval so long that only flush_now flushes.
    let (flusher, _) = Flusher::start(Arc::clone(&store), ownership, Duration::from_secs(3600));
    let deps = SkuDeps {
        journal,
        feed: Arc::new(LocalFeed::default()),
        flusher: flusher.clone(),
        snapshots: Arc::clone(&store),
        alarms: Arc::new(Alarms::default()),
        parked: Default::default(),
    };
    let sku = Sku::parse("PACED-1").unwrap();
    let (actor, _) = Actor::spawn(None, SkuActor, (sku.clone(), deps)).await.unwrap();
    let stocked = ask(
        &actor,
        |reply| SkuMsg::Adjust { ticket: Ticket::untracked(), change: StockChange::SetTotal(100_000), reply },
        None,
    )
    .await;
    assert!(matches!(stocked, Ok(Ok(_))));

    // Many holds make the snapshot cost well over a millisecond.
    let cart = CartId::new();
    for _ in 0..3_000 {
        reserve(&actor, cart).await;
    }
    assert_eq!(flusher.flush_now().await.unwrap(), 1, "the first snapshot is taken at once");
    let held = |rec: Option<flashcore_actors::ports::SnapshotRecord>| {
        rec.unwrap().state.decode::<serde_json::Value>().unwrap()["holds"].as_array().unwrap().len()
    };
    assert_eq!(held(snapshots.load(EntityKind::Sku, "PACED-1").await.unwrap()), 3_000);

    // The next change waits for its turn instead of being snapshotted again now.
    reserve(&actor, cart).await;
    assert_eq!(flusher.flush_now().await.unwrap(), 0, "paced: not asked yet");

    // Shutdown's registration (or the pacing timer) brings it in.
    let registered = ask(&actor, |reply| SkuMsg::RegisterDirty { reply: Some(reply) }, None).await;
    assert_eq!(registered, Ok(()));
    assert_eq!(flusher.flush_now().await.unwrap(), 1);
    assert_eq!(held(snapshots.load(EntityKind::Sku, "PACED-1").await.unwrap()), 3_001);
    actor.stop(None);
}
