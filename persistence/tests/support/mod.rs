//! Shared by the test crates here: store factories for the tests that run
//! against every store (each returns fresh, empty stores), and the workspace's
//! deadline poll and test database from `flashcore-test-support`.
//! Each crate uses a part, so the rest is dead code there.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::node::Node;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::payments::TestPayments;
use flashcore_actors::peers::Peers;
use flashcore_actors::ports::{Catalog, Fence, Journal, LeaseStore, Owner, SnapshotStore};
use flashcore_actors::{Engine, EngineConfig, Ports};
use flashcore_domain::{Currency, Money, Product, Shards, Sku};
use flashcore_http_ports::ApiKeyStore;
use flashcore_persistence::memory::{LocalFeed, MemoryApiKeys, MemoryStores};
use flashcore_persistence::sqlite::SqliteStore;
pub use flashcore_test_support::eventually;
use flashcore_test_support::{TestDatabase, test_server_url};

/// The ports of one adapter, plus whatever keeps its store alive.
#[allow(missing_debug_implementations)]
pub struct Stores {
    pub journal: Arc<dyn Journal>,
    pub snapshots: Arc<dyn SnapshotStore>,
    pub catalog: Arc<dyn Catalog>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub leases: Arc<dyn LeaseStore>,
    /// What the suites write under: every lease of [`SHARDS`], held by [`owner`]`(1)`.
    pub fence: Fence,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// The shard count the suites set their stores up with.
pub fn shards() -> Shards {
    Shards::new(8).expect("8 shards")
}

/// A test process named `conformance-<n>`.
pub fn owner(n: u64) -> Owner {
    Owner { node: format!("conformance-{n}"), generation: n }
}

/// `owner`'s fence over every shard, taken now (it must be free).
pub async fn take_all(leases: &dyn LeaseStore, owner: &Owner, ttl: Duration) -> Fence {
    let all: Vec<_> = shards().all().collect();
    let taken = leases.acquire(owner, &all, shards(), ttl).await.expect("acquire").expect("the leases are free");
    Fence::new(owner.clone(), shards(), &taken)
}

/// Hands the suites' leases of `s` to an ownership that keeps renewing them:
/// what an engine runs under.
pub async fn hold(s: &Stores) -> Arc<Ownership> {
    s.leases.release(s.fence.owner(), &s.fence.leases()).await.expect("release the suites' leases");
    Ownership::hold(Arc::clone(&s.leases), owner(7), LeaseConfig { shards: shards(), ..LeaseConfig::default() }).await
}

async fn assemble(
    journal: Arc<dyn Journal>,
    snapshots: Arc<dyn SnapshotStore>,
    catalog: Arc<dyn Catalog>,
    api_keys: Arc<dyn ApiKeyStore>,
    leases: Arc<dyn LeaseStore>,
    guard: Box<dyn std::any::Any + Send>,
) -> Stores {
    let fence = take_all(&*leases, &owner(1), Duration::from_secs(600)).await;
    Stores { journal, snapshots, catalog, api_keys, leases, fence, _guard: guard }
}

/// In-process stores.
pub async fn memory() -> Stores {
    let m = MemoryStores::default();
    assemble(m.journal, m.snapshots, m.catalog, Arc::new(MemoryApiKeys::default()), m.leases, Box::new(())).await
}

/// A SQLite database in a temporary directory, removed afterwards.
pub async fn sqlite() -> Stores {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("flashcore.db").to_string_lossy()).await.expect("sqlite opens");
    let store = Arc::new(store);
    assemble(store.clone(), store.clone(), store.clone(), store.clone(), store, Box::new(dir)).await
}

/// Keeps a Postgres test database alive; fields drop in order, so the store's
/// pool goes before the database is dropped (`WITH (FORCE)` cuts any connection
/// still open).
struct PgGuard {
    _store: flashcore_persistence::postgres::PgStore,
    _db: TestDatabase,
}

/// A fresh database on the test Postgres server ([`test_server_url`]), dropped afterwards.
pub async fn postgres() -> Stores {
    use flashcore_persistence::postgres::PgStore;

    let server = test_server_url();
    let db = TestDatabase::create(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database on {server} (set FLASHCORE_TEST_PG): {e}"));
    let store = Arc::new(PgStore::connect(&db.url).await.expect("postgres connects"));
    let guard = PgGuard { _store: (*store).clone(), _db: db };
    assemble(store.clone(), store.clone(), store.clone(), store.clone(), store, Box::new(guard)).await
}

/// How long the suites wait for something that happens in the background.
pub const WITHIN: Duration = Duration::from_secs(10);

/// In-memory stores whose catalog has `skus` (5.00 EUR each), for a cluster of
/// [`cluster_node`]s.
pub async fn cluster_stores(skus: &[Sku]) -> MemoryStores {
    let stores = MemoryStores::default();
    for sku in skus {
        let price = Money::new(500, Currency::EUR).expect("a price");
        let product = Product::new(sku.clone(), "t", "", price, None, None).expect("a product");
        stores.catalog.upsert(&product).await.expect("the catalog takes it");
    }
    stores
}

/// A cluster node named `name` on the in-memory `stores` (share mode over
/// `shards`, 900 ms leases), reaching the others through `peers`: its
/// [`Node`] serves until `stop` resolves, then hands off.
pub fn cluster_node(
    stores: &MemoryStores,
    peers: Arc<dyn Peers>,
    name: &str,
    shards: Shards,
    engine: EngineConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (Arc<Node>, tokio::task::JoinHandle<()>) {
    let cfg = LeaseConfig {
        shards,
        ttl: Duration::from_millis(900),
        poll: Duration::from_millis(50),
        share: true,
        ..LeaseConfig::default()
    };
    let own = Ownership::new(Owner { node: name.into(), generation: 1 }, name.into(), cfg);
    let node = Node::new(own, Duration::from_secs(1));
    let ports = Ports {
        journal: stores.journal.clone(),
        snapshots: stores.snapshots.clone(),
        catalog: stores.catalog.clone(),
        payments: Arc::new(TestPayments),
        feed: Arc::new(LocalFeed::default()),
        peers: Some(peers),
    };
    let leases: Arc<dyn LeaseStore> = stores.leases.clone();
    let task = tokio::spawn(Arc::clone(&node).run(
        leases,
        move |ownership| {
            let (ports, cfg) = (ports.clone(), engine.clone());
            async move { Engine::start(cfg, ports, ownership).await.map_err(|e| e.to_string()) }
        },
        stop,
    ));
    (node, task)
}
