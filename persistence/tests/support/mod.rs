//! Shared by the test crates here: store factories for the tests that run
//! against every store (each returns fresh, empty stores) and a deadline poll.
//! Each crate uses a part, so the rest is dead code there.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashcore_actors::ports::{ApiKeyStore, Catalog, Journal, SnapshotStore};
use flashcore_persistence::memory::{MemoryApiKeys, MemoryCatalog, MemoryJournal, MemorySnapshots};
use flashcore_persistence::sqlite::SqliteStore;

/// The ports of one adapter, plus whatever keeps its store alive.
#[allow(missing_debug_implementations)]
pub struct Stores {
    pub journal: Arc<dyn Journal>,
    pub snapshots: Arc<dyn SnapshotStore>,
    pub catalog: Arc<dyn Catalog>,
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// In-process stores.
pub async fn memory() -> Stores {
    Stores {
        journal: Arc::new(MemoryJournal::default()),
        snapshots: Arc::new(MemorySnapshots::default()),
        catalog: Arc::new(MemoryCatalog::default()),
        api_keys: Arc::new(MemoryApiKeys::default()),
        _guard: Box::new(()),
    }
}

/// A SQLite database in a temporary directory, removed afterwards.
pub async fn sqlite() -> Stores {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("flashcore.db").to_string_lossy()).await.expect("sqlite opens");
    let store = Arc::new(store);
    Stores {
        journal: store.clone(),
        snapshots: store.clone(),
        catalog: store.clone(),
        api_keys: store,
        _guard: Box::new(dir),
    }
}

/// Keeps a Postgres test database alive; fields drop in order, so the store's
/// pool goes before the database is dropped (`WITH (FORCE)` cuts any connection
/// still open).
struct PgGuard {
    _store: flashcore_persistence::postgres::PgStore,
    _db: flashcore_persistence::postgres::TestDatabase,
}

/// A fresh database on the test Postgres server (`FLASHCORE_TEST_PG`, default
/// `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards.
pub async fn postgres() -> Stores {
    use flashcore_persistence::postgres::{PgStore, TestDatabase, test_server_url};

    let server = test_server_url();
    let db = TestDatabase::create(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database on {server} (set FLASHCORE_TEST_PG): {e}"));
    let store = Arc::new(PgStore::connect(&db.url).await.expect("postgres connects"));
    let guard = PgGuard { _store: (*store).clone(), _db: db };
    Stores {
        journal: store.clone(),
        snapshots: store.clone(),
        catalog: store.clone(),
        api_keys: store,
        _guard: Box::new(guard),
    }
}

/// Waits until `check` yields a value, polling every 10 ms; panics after 10 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
