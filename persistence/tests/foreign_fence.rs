//! Cross-node checkouts' writes (DESIGN §9) on every store: node A journals an
//! order whose cart is in its shard but which sells a hold node B prepared on
//! its SKU, relying on B's lease ([`ForeignLease`]). The store writes it only
//! while B (node and generation) still holds that shard at the epoch the hold
//! was prepared under and before its `until`, in the same transaction as the
//! write; else nothing is written and the error is [`StoreError::Moved`]. A's
//! own stale lease is still [`StoreError::Fenced`], checked first.
//!
//! The leases are taken and released through each store's [`LeaseStore`], as
//! the ownership does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::ports::{
    AppendOutcome, EntityKind, FactCursor, Fence, ForeignLease, Journal, Lease, LeaseStore, Owner, SnapshotRecord,
    SnapshotStore, StateJson, StoreError,
};
use flashcore_domain::{
    Cart, CartId, Currency, HoldId, JournalEntry, JournalPos, Money, Order, OrderId, Product, ShardId, Shards, Sku,
    Timestamp,
};
use flashcore_persistence::memory::MemoryStores;
use flashcore_persistence::postgres::PgStore;
use flashcore_persistence::sqlite::SqliteStore;
use flashcore_test_support::{TestDatabase, test_server_url};
use sqlx::{PgPool, SqlitePool};

const TTL: Duration = Duration::from_secs(600);

fn shards() -> Shards {
    Shards::new(8).expect("8 shards")
}

/// How a store lets the test read the epochs it wrote rows under.
enum Epochs {
    /// The in-process journal keeps no epochs.
    NotKept,
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One store's ports, fresh and empty; `_guard` keeps it alive (dropped last).
struct Store {
    journal: Arc<dyn Journal>,
    snapshots: Arc<dyn SnapshotStore>,
    leases: Arc<dyn LeaseStore>,
    epochs: Epochs,
    _guard: Box<dyn std::any::Any + Send>,
}

async fn memory() -> Store {
    let m = MemoryStores::default();
    Store {
        journal: m.journal,
        snapshots: m.snapshots,
        leases: m.leases,
        epochs: Epochs::NotKept,
        _guard: Box::new(()),
    }
}

async fn sqlite() -> Store {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("flashcore.db").to_string_lossy()).await.expect("sqlite opens");
    let epochs = Epochs::Sqlite(store.pool().clone());
    let store = Arc::new(store);
    Store { journal: store.clone(), snapshots: store.clone(), leases: store, epochs, _guard: Box::new(dir) }
}

async fn postgres() -> Store {
    let server = test_server_url();
    let db = TestDatabase::create(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database on {server} (set FLASHCORE_TEST_PG): {e}"));
    let store = PgStore::connect(&db.url).await.expect("postgres connects");
    let epochs = Epochs::Postgres(store.pool().clone());
    let store = Arc::new(store);
    // Every pool is dropped (the fields before it) before the database is.
    Store { journal: store.clone(), snapshots: store.clone(), leases: store, epochs, _guard: Box::new(db) }
}

impl Store {
    /// The epoch `order` was stored under and those of its facts by SKU, in
    /// SKU order (`None` where the store keeps no epochs).
    async fn stored_epochs(&self, order: OrderId) -> Option<(i64, Vec<(String, i64)>)> {
        let id = order.to_string();
        match &self.epochs {
            Epochs::NotKept => None,
            Epochs::Sqlite(pool) => {
                let o = sqlx::query_scalar("SELECT epoch FROM orders WHERE order_id = ?")
                    .bind(&id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                let facts = sqlx::query_as("SELECT sku, epoch FROM stock_facts WHERE order_id = ? ORDER BY sku")
                    .bind(&id)
                    .fetch_all(pool)
                    .await
                    .unwrap();
                Some((o, facts))
            }
            Epochs::Postgres(pool) => {
                let o = sqlx::query_scalar("SELECT epoch FROM orders WHERE order_id = $1::uuid")
                    .bind(&id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                let facts = sqlx::query_as(
                    "SELECT sku, epoch FROM stock_facts WHERE order_id = $1::uuid ORDER BY sku COLLATE \"C\"",
                )
                .bind(&id)
                .fetch_all(pool)
                .await
                .unwrap();
                Some((o, facts))
            }
        }
    }

    /// Every order and every fact in the journal.
    async fn journal_size(&self) -> (usize, usize) {
        let orders = self.journal.orders(10_000, None).await.unwrap().len();
        let facts = self.journal.stock_facts_page(&FactCursor::after(JournalPos(0)), 10_000).await.unwrap().len();
        (orders, facts)
    }
}

/// Node A holds every shard but `shard_b`, whose lease node B holds (taken
/// twice, so B's epoch is not A's).
struct Scene {
    s: Store,
    /// A's fence over its own shards.
    a: Fence,
    b: Owner,
    b_lease: Lease,
    /// A SKU in one of A's shards.
    sku_a: Sku,
    /// A SKU in B's shard.
    sku_b: Sku,
}

fn node(name: &str, generation: u64) -> Owner {
    Owner { node: name.to_owned(), generation }
}

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn sku_where(want: impl Fn(ShardId) -> bool) -> Sku {
    (0..10_000).map(|i| sku(&format!("SKU-{i}"))).find(|s| want(shards().of_sku(s))).expect("such a SKU")
}

async fn scene(s: Store) -> Scene {
    let (a, b) = (node("node-a", 1), node("node-b", 1));
    let sku_b = sku_where(|_| true);
    let shard_b = shards().of_sku(&sku_b);
    let sku_a = sku_where(|shard| shard != shard_b);
    let a_shards: Vec<ShardId> = shards().all().filter(|&s| s != shard_b).collect();
    let a_leases = s.leases.acquire(&a, &a_shards, shards(), TTL).await.unwrap().expect("A's shards are free");
    s.leases.acquire(&b, &[shard_b], shards(), TTL).await.unwrap().expect("B's shard is free");
    let b_leases = s.leases.acquire(&b, &[shard_b], shards(), TTL).await.unwrap().expect("B's own shard again");
    let b_lease = b_leases[0];
    assert!(a_leases.iter().all(|l| l.epoch != b_lease.epoch), "B's epoch {} is not A's", b_lease.epoch);
    Scene { a: Fence::new(a, shards(), &a_leases), b, b_lease, sku_a, sku_b, s }
}

fn now() -> Timestamp {
    flashcore_actors::clock::now()
}

impl Scene {
    /// What a checkout on A relies on when B prepared its hold under `lease`.
    fn relies_on(&self, owner: &Owner, lease: Lease, until: Timestamp) -> ForeignLease {
        ForeignLease { shard: lease.shard, epoch: lease.epoch, owner: owner.clone(), until }
    }

    /// B's lease as it is, for 30 s more.
    fn current(&self) -> ForeignLease {
        self.relies_on(&self.b, self.b_lease, now().plus_millis(30_000))
    }

    /// An order of a cart in A's shards, one unit of each of `skus`.
    fn order(&self, skus: &[&Sku]) -> Order {
        let cart_id = std::iter::repeat_with(CartId::new)
            .find(|c| shards().of_cart(*c) != self.b_lease.shard)
            .expect("a cart in A's shards");
        let mut cart = Cart::new(cart_id);
        for s in skus {
            let price = Money::new(100, Currency::EUR).unwrap();
            let p = Product::new((*s).clone(), format!("Product {s}"), "desc", price, None, None).unwrap();
            cart.apply_reserved(&p, 1, HoldId::new(), now().plus_millis(60_000));
        }
        let key = uuid::Uuid::new_v4().to_string();
        Order::from_cart(&cart, OrderId::new(), key, None, "pay_1".into(), now()).unwrap()
    }

    /// An order of one unit on A's SKU and one on B's.
    fn cross_node_order(&self) -> Order {
        self.order(&[&self.sku_a, &self.sku_b])
    }

    async fn append(&self, orders: &[&Order], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        let batch: Vec<JournalEntry> = orders.iter().map(|o| JournalEntry::Order((*o).clone())).collect();
        self.s.journal.append(&batch, fence).await
    }

    /// Appends `order` under A's fence relying on `foreign`, expecting it to be
    /// refused as moved with nothing written.
    async fn assert_moved(&self, order: &Order, foreign: ForeignLease, what: &str) {
        let before = self.s.journal_size().await;
        let err = self.append(&[order], &self.a.with_foreign(vec![foreign])).await.expect_err(what);
        assert!(matches!(err, StoreError::Moved(_)), "{what}: {err:?}");
        assert!(!err.is_fenced(), "{what}: A's own leases are fine");
        self.assert_not_written(order, what).await;
        assert_eq!(self.s.journal_size().await, before, "{what}: the journal is as it was");
    }

    async fn assert_not_written(&self, order: &Order, what: &str) {
        assert_eq!(self.s.journal.order(order.id).await.unwrap(), None, "{what}: no order");
        assert_eq!(self.s.journal.order_for_cart(order.cart_id).await.unwrap(), None, "{what}: no order of the cart");
        assert!(self.s.journal.stock_facts_of_orders(&[order.id]).await.unwrap().is_empty(), "{what}: no facts");
    }

    /// `order` was written: its facts are B's SKU's epoch's, its own A's.
    async fn assert_written_under(&self, order: &Order, b_epoch: u64) {
        assert_eq!(self.s.journal.order(order.id).await.unwrap().as_ref(), Some(order));
        let facts = self.s.journal.stock_facts_of_orders(&[order.id]).await.unwrap();
        assert_eq!(facts.len(), order.lines.len(), "a sold fact per line");
        let Some((order_epoch, fact_epochs)) = self.s.stored_epochs(order.id).await else { return };
        let a_epoch = self.a.epoch(shards().of_cart(order.cart_id));
        assert_eq!(order_epoch, a_epoch as i64, "the order is written under its cart's shard's epoch (A's)");
        let mut want: Vec<(String, i64)> = order
            .lines
            .iter()
            .map(|l| {
                let e = if l.sku == self.sku_b { b_epoch } else { self.a.epoch(shards().of_sku(&l.sku)) };
                (l.sku.to_string(), e as i64)
            })
            .collect();
        want.sort();
        assert_eq!(fact_epochs, want, "each fact under its SKU's shard's epoch, B's for B's SKU");
    }
}

async fn an_order_relying_on_a_current_foreign_lease_is_written_under_its_epoch(s: Store) {
    let sc = scene(s).await;
    let order = sc.cross_node_order();
    let out = sc.append(&[&order], &sc.a.with_foreign(vec![sc.current()])).await.expect("written");
    assert!(matches!(out[..], [AppendOutcome::Written(_)]), "{out:?}");
    sc.assert_written_under(&order, sc.b_lease.epoch).await;
}

async fn without_the_foreign_lease_an_order_on_anothers_shard_is_fenced(s: Store) {
    let sc = scene(s).await;
    let order = sc.cross_node_order();
    let err = sc.append(&[&order], &sc.a).await.expect_err("A does not hold B's shard");
    assert!(err.is_fenced(), "{err:?}");
    sc.assert_not_written(&order, "no foreign lease").await;
}

async fn a_foreign_lease_at_a_stale_epoch_moves_the_write(s: Store) {
    let sc = scene(s).await;
    let stale = Lease { epoch: sc.b_lease.epoch - 1, ..sc.b_lease };
    sc.assert_moved(&sc.cross_node_order(), sc.relies_on(&sc.b, stale, now().plus_millis(30_000)), "stale epoch").await;
}

async fn a_foreign_lease_of_another_generation_moves_the_write(s: Store) {
    let sc = scene(s).await;
    let restarted = node(&sc.b.node, sc.b.generation + 1);
    let until = now().plus_millis(30_000);
    sc.assert_moved(&sc.cross_node_order(), sc.relies_on(&restarted, sc.b_lease, until), "other generation").await;
    let stranger = node("node-c", sc.b.generation);
    sc.assert_moved(&sc.cross_node_order(), sc.relies_on(&stranger, sc.b_lease, until), "other node").await;
}

async fn a_foreign_lease_past_its_until_moves_the_write(s: Store) {
    let sc = scene(s).await;
    let past = Timestamp::from_millis(now().as_millis() - 1_000);
    sc.assert_moved(&sc.cross_node_order(), sc.relies_on(&sc.b, sc.b_lease, past), "until passed").await;
}

async fn a_released_or_taken_over_shard_moves_the_write(s: Store) {
    let sc = scene(s).await;
    // B hands its shard off: released, with no owner.
    sc.s.leases.release(&sc.b, &[sc.b_lease]).await.unwrap();
    sc.assert_moved(&sc.cross_node_order(), sc.current(), "released").await;

    // C takes it over (epoch + 1): B's lease is still not current ...
    let c = node("node-c", 1);
    let taken = sc.s.leases.acquire(&c, &[sc.b_lease.shard], shards(), TTL).await.unwrap().expect("free at once");
    assert_eq!(taken[0].epoch, sc.b_lease.epoch + 1);
    sc.assert_moved(&sc.cross_node_order(), sc.current(), "taken over").await;

    // ... and a hold C prepared under its lease is written, under C's epoch.
    let order = sc.cross_node_order();
    let until = now().plus_millis(30_000);
    sc.append(&[&order], &sc.a.with_foreign(vec![sc.relies_on(&c, taken[0], until)])).await.expect("C's lease");
    sc.assert_written_under(&order, taken[0].epoch).await;
}

async fn a_stale_own_lease_is_fenced_whatever_the_foreign_lease(s: Store) {
    let sc = scene(s).await;
    // A takes its shards again: its first fence is stale.
    let own = sc.a.leases().iter().map(|l| l.shard).collect::<Vec<_>>();
    let mut again = sc.s.leases.acquire(sc.a.owner(), &own, shards(), TTL).await.unwrap().expect("its own");
    again.sort_by_key(|l| l.shard);
    assert!(again.iter().zip(sc.a.leases()).all(|(n, o)| n.epoch == o.epoch + 1));

    let order = sc.cross_node_order();
    let err = sc.append(&[&order], &sc.a.with_foreign(vec![sc.current()])).await.expect_err("A's lease is stale");
    assert!(err.is_fenced(), "a valid foreign lease: {err:?}");
    let stale = Lease { epoch: sc.b_lease.epoch - 1, ..sc.b_lease };
    let moved_too = sc.relies_on(&sc.b, stale, Timestamp::from_millis(1));
    let err = sc.append(&[&order], &sc.a.with_foreign(vec![moved_too])).await.expect_err("both stale");
    assert!(err.is_fenced(), "a stale foreign lease too: {err:?}");
    sc.assert_not_written(&order, "A's stale lease").await;
}

async fn a_batch_fails_as_a_whole_when_one_order_relies_on_a_stale_foreign_lease(s: Store) {
    let sc = scene(s).await;
    let local = sc.order(&[&sc.sku_a]);
    let cross = sc.cross_node_order();
    let stale = Lease { epoch: sc.b_lease.epoch - 1, ..sc.b_lease };
    let fence = sc.a.with_foreign(vec![sc.relies_on(&sc.b, stale, now().plus_millis(30_000))]);
    let before = sc.s.journal_size().await;
    let err = sc.append(&[&local, &cross], &fence).await.expect_err("one order's foreign lease is stale");
    assert!(matches!(err, StoreError::Moved(_)), "{err:?}");
    sc.assert_not_written(&local, "the other order of the batch").await;
    sc.assert_not_written(&cross, "the order on the stale lease").await;
    assert_eq!(sc.s.journal_size().await, before);

    // The same fence writes a batch that does not touch the moved shard.
    sc.append(&[&local], &fence).await.expect("no entry relies on the stale lease");
    sc.assert_written_under(&local, 0).await;
}

async fn a_snapshot_is_never_written_under_a_foreign_lease(s: Store) {
    let sc = scene(s).await;
    let record = SnapshotRecord {
        kind: EntityKind::Sku,
        id: sc.sku_b.to_string(),
        pos: JournalPos(0),
        version: 1,
        state: StateJson::encode(&serde_json::json!({ "from": "node-a" })).unwrap(),
    };
    let err = sc.s.snapshots.save(std::slice::from_ref(&record), &sc.a.with_foreign(vec![sc.current()])).await;
    assert!(err.as_ref().is_err_and(StoreError::is_fenced), "only B writes its SKU's snapshots: {err:?}");
    assert_eq!(sc.s.snapshots.load(EntityKind::Sku, &sc.sku_b.to_string()).await.unwrap(), None);
}

macro_rules! foreign_fence {
    ($adapter:ident, $make:path) => {
        mod $adapter {
            #[tokio::test]
            async fn an_order_relying_on_a_current_foreign_lease_is_written_under_its_epoch() {
                super::an_order_relying_on_a_current_foreign_lease_is_written_under_its_epoch($make().await).await;
            }

            #[tokio::test]
            async fn without_the_foreign_lease_an_order_on_anothers_shard_is_fenced() {
                super::without_the_foreign_lease_an_order_on_anothers_shard_is_fenced($make().await).await;
            }

            #[tokio::test]
            async fn a_foreign_lease_at_a_stale_epoch_moves_the_write() {
                super::a_foreign_lease_at_a_stale_epoch_moves_the_write($make().await).await;
            }

            #[tokio::test]
            async fn a_foreign_lease_of_another_generation_moves_the_write() {
                super::a_foreign_lease_of_another_generation_moves_the_write($make().await).await;
            }

            #[tokio::test]
            async fn a_foreign_lease_past_its_until_moves_the_write() {
                super::a_foreign_lease_past_its_until_moves_the_write($make().await).await;
            }

            #[tokio::test]
            async fn a_released_or_taken_over_shard_moves_the_write() {
                super::a_released_or_taken_over_shard_moves_the_write($make().await).await;
            }

            #[tokio::test]
            async fn a_stale_own_lease_is_fenced_whatever_the_foreign_lease() {
                super::a_stale_own_lease_is_fenced_whatever_the_foreign_lease($make().await).await;
            }

            #[tokio::test]
            async fn a_batch_fails_as_a_whole_when_one_order_relies_on_a_stale_foreign_lease() {
                super::a_batch_fails_as_a_whole_when_one_order_relies_on_a_stale_foreign_lease($make().await).await;
            }

            #[tokio::test]
            async fn a_snapshot_is_never_written_under_a_foreign_lease() {
                super::a_snapshot_is_never_written_under_a_foreign_lease($make().await).await;
            }
        }
    };
}

foreign_fence!(memory, crate::memory);
foreign_fence!(sqlite, crate::sqlite);
foreign_fence!(postgres, crate::postgres);
