//! Durability on the real stores: group-committed orders and write-behind flush lag.
//!
//! - `journal_group_commit/<store>/<callers>`: `callers` tasks each append
//!   single-line orders on one hot SKU (the flash-sale case) through a
//!   [`JournalWriter`] (max batch 1,000 and queue 65,536, as the engine) and wait
//!   for each commit acknowledgment before sending the next. One element is one
//!   durable order. Orders are built before the timed part. After each case the
//!   bench prints the acknowledgment latency (p50/p99/max, time from `append` to
//!   its return) and the average batch size (from [`JournalWriter::stats`]), over
//!   every run of at least [`STEADY_PER_CALLER`] appends per caller (warm-up
//!   included, short ramp-up runs left out).
//! - `flush_lag_10k_carts/<store>/<carts>`: 10,000 carts are marked dirty on a
//!   [`Flusher`] whose interval (1 h) never fires, then `flush_now` is timed: the
//!   lag from "10k carts are dirty" to "their snapshots are durable", on top of
//!   the interval's wait in production. Each dirty cart answers with
//!   `serde_json::to_value` of a real two-line [`Cart`], as the cart actor does
//!   (the actor's mailbox round trip is not included). `new` carts are inserted;
//!   `redirtied` carts are the same 10k carts changed again (upserts).
//!
//! Each store is created fresh: Postgres in a throwaway database on
//! `FLASHCORE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped at the end (Postgres cases are skipped, with a message, if the server
//! cannot be reached); SQLite in a temporary directory (WAL, `synchronous =
//! FULL`). Runtime: 2-worker multi-thread tokio, as `sku_actor`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use flashcore_actors::flusher::{Flusher, SnapshotSource};
use flashcore_actors::journal::JournalWriter;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::ports::{
    AppendOutcome, Catalog, EntityKind, Journal, LeaseStore, Owner, SnapshotRecord, SnapshotStore, StateJson,
};
use flashcore_domain::{Cart, CartId, Currency, HoldId, JournalEntry, JournalPos, Money, Order, OrderId, Product, Sku};
use flashcore_persistence::postgres::PgStore;
use flashcore_persistence::sqlite::SqliteStore;
use flashcore_test_support::{TestDatabase, test_server_url};
use tokio::runtime::Runtime;

/// The production binary's allocator, so the figures match what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The engine's default `journal_max_batch`.
const MAX_BATCH: usize = 1_000;
/// The engine's journal queue.
const QUEUE: usize = 65_536;
/// Concurrent checkouts.
const CALLERS: [u64; 2] = [64, 512];
/// Runs with fewer appends per caller than this are ramp-up; their latencies
/// and batches are not reported.
const STEADY_PER_CALLER: u64 = 4;
/// Dirty carts per flush.
const DIRTY_CARTS: usize = 10_000;
/// Never fires during the bench: only `flush_now` flushes.
const FLUSH_INTERVAL: Duration = Duration::from_secs(3_600);
/// Hold lifetime written into carts (never reached).
const HOLD_TTL_MS: u64 = 600_000;

// ---------------------------------------------------------------------------
// Stores.

enum Store {
    Pg(PgStore),
    Sqlite(SqliteStore),
}

/// One fresh store with its ports. Dropping it removes the database (Postgres)
/// or its directory (SQLite).
struct Backend {
    name: &'static str,
    journal: Arc<dyn Journal>,
    snapshots: Arc<dyn SnapshotStore>,
    /// Holds the store's leases for the benchmark's writers.
    ownership: Arc<Ownership>,
    store: Store,
    /// The `TestDatabase` or `TempDir`; dropped after the pools are closed.
    _keep: Box<dyn std::any::Any>,
}

/// Takes and keeps every lease of `leases` for the benchmark process.
async fn hold(leases: Arc<dyn LeaseStore>) -> Arc<Ownership> {
    Ownership::hold(leases, Owner { node: "bench".into(), generation: 1 }, LeaseConfig::default()).await
}

impl Backend {
    async fn postgres() -> Option<Backend> {
        let server = test_server_url();
        let db = match TestDatabase::create(&server).await {
            Ok(db) => db,
            Err(e) => {
                eprintln!("SKIPPED Postgres cases: cannot create a database on {server} (set FLASHCORE_TEST_PG): {e}");
                return None;
            }
        };
        let store = PgStore::connect(&db.url).await.expect("postgres connects");
        let shared = Arc::new(store.clone());
        Some(Backend {
            name: "postgres",
            journal: shared.clone(),
            ownership: hold(shared.clone()).await,
            snapshots: shared,
            store: Store::Pg(store),
            _keep: Box::new(db),
        })
    }

    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("durability.db").to_string_lossy()).await.expect("sqlite opens");
        let shared = Arc::new(store.clone());
        Backend {
            name: "sqlite",
            journal: shared.clone(),
            ownership: hold(shared.clone()).await,
            snapshots: shared,
            store: Store::Sqlite(store),
            _keep: Box::new(dir),
        }
    }

    fn catalog(&self) -> Arc<dyn Catalog> {
        match &self.store {
            Store::Pg(s) => Arc::new(s.clone()),
            Store::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    /// Closes the pools; the caller then drops `self` outside the runtime (the
    /// Postgres database drop blocks its thread).
    async fn close(&self) {
        match &self.store {
            Store::Pg(s) => s.pool().close().await,
            Store::Sqlite(s) => s.pool().close().await,
        }
    }
}

// ---------------------------------------------------------------------------
// Domain data: the hot product, orders and carts as the engine makes them.

fn product(sku: &str, title: &str, cents: i64) -> Product {
    let price = Money::new(cents, Currency::EUR).expect("valid price");
    Product::new(Sku::parse(sku).expect("valid sku"), title, "", price, Some(2), None).expect("valid product")
}

fn hot_product() -> Product {
    product("FLASH-DROP-001", "Limited Edition Sneaker - Flash Drop", 12_999)
}

fn side_product() -> Product {
    product("SOCKS-PACK-3", "Performance Socks (3-pack)", 1_499)
}

/// A single-line checkout of one unit of `hot`.
fn hot_order(hot: &Product) -> Order {
    let now = flashcore_actors::clock::now();
    let mut cart = Cart::new(CartId::new());
    cart.apply_reserved(hot, 1, HoldId::new(), now.plus_millis(HOLD_TTL_MS));
    Order::from_cart(
        &cart,
        OrderId::new(),
        uuid::Uuid::new_v4().to_string(),
        Some("buyer@example.com".to_owned()),
        format!("pi_{}", uuid::Uuid::new_v4().simple()),
        now,
    )
    .expect("cart is ready to check out")
}

/// An open two-line cart: one unit of the hot SKU and two of a side product.
fn two_line_cart(hot: &Product, side: &Product) -> Cart {
    let expires = flashcore_actors::clock::now().plus_millis(HOLD_TTL_MS);
    let mut cart = Cart::new(CartId::new());
    cart.apply_reserved(hot, 1, HoldId::new(), expires);
    cart.apply_reserved(side, 2, HoldId::new(), expires);
    cart
}

// ---------------------------------------------------------------------------
// Group commit.

/// What the steady-state runs of one case saw.
#[derive(Default)]
struct JournalAcc {
    latencies_us: Vec<u64>,
    batches: u64,
    entries: u64,
    max_batch: u64,
}

fn split(iters: u64, callers: u64) -> impl Iterator<Item = u64> {
    (0..callers).map(move |i| iters / callers + u64::from(i < iters % callers)).filter(|&n| n > 0)
}

async fn checkout_loop(writer: JournalWriter, orders: Vec<Order>) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(orders.len());
    for order in orders {
        let sent = Instant::now();
        match writer.append(JournalEntry::Order(order)).await {
            Ok(AppendOutcome::Written(_)) => {}
            Ok(AppendOutcome::DuplicateKey) => panic!("fresh order reported as duplicate"),
            Err(e) => panic!("journal append failed: {e}"),
        }
        latencies.push(sent.elapsed().as_micros() as u64);
    }
    latencies
}

async fn run_checkouts(
    writer: JournalWriter,
    hot: Product,
    iters: u64,
    callers: u64,
    acc: Arc<Mutex<JournalAcc>>,
) -> Duration {
    let work: Vec<Vec<Order>> = split(iters, callers).map(|n| (0..n).map(|_| hot_order(&hot)).collect()).collect();
    let before = writer.stats();
    // Spawned from a worker, as a server's handler tasks are.
    let driver = tokio::spawn({
        let writer = writer.clone();
        async move {
            let start = Instant::now();
            let tasks: Vec<_> =
                work.into_iter().map(|orders| tokio::spawn(checkout_loop(writer.clone(), orders))).collect();
            let mut latencies = Vec::with_capacity(iters as usize);
            for t in tasks {
                latencies.extend(t.await.expect("caller task"));
            }
            (start.elapsed(), latencies)
        }
    });
    let (took, latencies) = driver.await.expect("driver task");
    let after = writer.stats();
    assert_eq!(after.errors, 0, "journal errors: {:?}", after.last_error);
    if iters >= callers * STEADY_PER_CALLER {
        let mut acc = acc.lock().expect("accumulator");
        acc.latencies_us.extend(latencies);
        acc.batches += after.batches - before.batches;
        acc.entries += after.entries - before.entries;
        acc.max_batch = acc.max_batch.max(after.max_batch_size);
    }
    took
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1_000.0
}

fn report_journal(store: &str, callers: u64, acc: &Mutex<JournalAcc>) {
    let mut acc = acc.lock().expect("accumulator");
    if acc.latencies_us.is_empty() || acc.batches == 0 {
        println!("journal {store}/{callers}: no steady-state run to report");
        return;
    }
    acc.latencies_us.sort_unstable();
    let l = &acc.latencies_us;
    println!(
        "journal {store}/{callers}: ack latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} orders; \
         avg batch {:.1} orders ({} batches, largest {})",
        percentile(l, 0.50),
        percentile(l, 0.99),
        percentile(l, 1.0),
        l.len(),
        acc.entries as f64 / acc.batches as f64,
        acc.batches,
        acc.max_batch,
    );
}

fn group_commit(c: &mut Criterion, rt: &Runtime, backends: &[Backend]) {
    let hot = hot_product();
    let mut group = c.benchmark_group("journal_group_commit");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for backend in backends {
        rt.block_on(backend.catalog().upsert(&hot)).expect("hot product stored");
        for callers in CALLERS {
            // A writer per case, so its stats are the case's own.
            let (writer, task) = rt.block_on(async {
                JournalWriter::start(Arc::clone(&backend.journal), Arc::clone(&backend.ownership), MAX_BATCH, QUEUE)
            });
            let acc = Arc::new(Mutex::new(JournalAcc::default()));
            group.bench_with_input(BenchmarkId::new(backend.name, callers), &callers, |b, &callers| {
                b.to_async(rt)
                    .iter_custom(|iters| run_checkouts(writer.clone(), hot.clone(), iters, callers, Arc::clone(&acc)));
            });
            report_journal(backend.name, callers, &acc);
            drop(writer);
            rt.block_on(task).expect("journal writer stops");
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------
// Write-behind flush lag.

/// A dirty cart: answers with its snapshot as the cart actor does.
struct DirtyCart {
    cart: Arc<Cart>,
    version: u64,
}

#[async_trait]
impl SnapshotSource for DirtyCart {
    async fn snapshot(&self) -> Option<SnapshotRecord> {
        Some(SnapshotRecord {
            kind: EntityKind::Cart,
            id: self.cart.id.to_string(),
            pos: JournalPos::default(),
            version: self.version,
            state: StateJson::encode(&*self.cart).ok()?,
        })
    }
}

/// Marks `carts` dirty (untimed), then times `flush_now`, `iters` times.
async fn run_flushes(
    flusher: Flusher,
    carts: Arc<Vec<Arc<Cart>>>,
    fresh: bool,
    round: Arc<AtomicU64>,
    iters: u64,
) -> Duration {
    let (hot, side) = (hot_product(), side_product());
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let carts: Vec<Arc<Cart>> = if fresh {
            (0..DIRTY_CARTS).map(|_| Arc::new(two_line_cart(&hot, &side))).collect()
        } else {
            carts.to_vec()
        };
        // Versions are `incarnation << 32 | changes`: every round is a newer change.
        let version = (1 << 32) + round.fetch_add(1, Ordering::Relaxed);
        for cart in carts {
            flusher.mark_dirty(Box::new(DirtyCart { cart, version }));
        }
        let start = Instant::now();
        let written = flusher.flush_now().await.expect("flush succeeds");
        total += start.elapsed();
        assert_eq!(written, DIRTY_CARTS, "every dirty cart was written");
    }
    total
}

fn flush_lag(c: &mut Criterion, rt: &Runtime, backends: &[Backend]) {
    let (hot, side) = (hot_product(), side_product());
    let sample = two_line_cart(&hot, &side);
    let json = serde_json::to_string(&sample).expect("cart serializes");
    println!("flush: one dirty cart snapshot is {} bytes of JSON: {json}", json.len());

    let mut group = c.benchmark_group("flush_lag_10k_carts");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(DIRTY_CARTS as u64));
    for backend in backends {
        for fresh in [true, false] {
            let (flusher, task) = rt.block_on(async {
                let (flusher, task) =
                    Flusher::start(Arc::clone(&backend.snapshots), Arc::clone(&backend.ownership), FLUSH_INTERVAL);
                // The interval's first tick fires at once: let it pass before timing.
                flusher.flush_now().await.expect("empty flush");
                tokio::time::sleep(Duration::from_millis(20)).await;
                (flusher, task)
            });
            let carts: Arc<Vec<Arc<Cart>>> =
                Arc::new((0..DIRTY_CARTS).map(|_| Arc::new(two_line_cart(&hot, &side))).collect());
            let round = Arc::new(AtomicU64::new(0));
            let label = if fresh { "new" } else { "redirtied" };
            group.bench_function(BenchmarkId::new(backend.name, label), |b| {
                b.to_async(rt).iter_custom(|iters| {
                    run_flushes(flusher.clone(), Arc::clone(&carts), fresh, Arc::clone(&round), iters)
                });
            });
            let s = flusher.stats();
            assert_eq!(s.errors, 0, "flush errors: {:?}", s.last_error);
            println!(
                "flush {}/{label}: {} flushes, {} snapshots written, last flush {:.1} ms",
                backend.name,
                s.flushes,
                s.written,
                s.last_flush_micros as f64 / 1_000.0
            );
            drop(flusher);
            rt.block_on(task).expect("flusher stops");
        }
    }
    group.finish();
}

// ---------------------------------------------------------------------------

fn durability(c: &mut Criterion) {
    let rt: Runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let backends: Vec<Backend> = rt.block_on(async {
        let mut b = Vec::new();
        b.extend(Backend::postgres().await);
        b.push(Backend::sqlite().await);
        b
    });

    group_commit(c, &rt, &backends);
    flush_lag(c, &rt, &backends);

    for b in &backends {
        rt.block_on(b.close());
    }
    // Outside the runtime: dropping the Postgres test database blocks this thread.
    drop(backends);
}

criterion_group!(benches, durability);
criterion_main!(benches);
