//! Where a cart's bytes go: RSS per cart (a delta over many), through the
//! engine (no HTTP) and for the parts of a cart alone.
//!
//! ```text
//! cargo run --release -p flashcore-tests --example cart_bytes [carts]
//! ```
//!
//! Prints one `BYTES part=… per_cart=…` line per measurement: the RSS growth
//! over `carts` instances, divided by `carts` (use 100000 or more for figures
//! a few bytes exact). `scripts/bench-scale.sh` measures the same over HTTP.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::Owner;
use flashcore_actors::sku::StockChange;
use flashcore_actors::{Engine, EngineConfig, Ports};
use flashcore_domain::{Cart, CartId, Currency, HoldId, Money, Product, Sku, Timestamp};
use flashcore_persistence::memory::{LocalFeed, MemoryStores};

/// The binary's allocator, so the figures include its size classes.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// This process's resident set, in bytes.
fn live() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: isize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

fn report(part: &str, before: isize, n: usize) {
    println!("BYTES part={part} per_cart={}", (live() - before) / n as isize);
}

/// Lets the flusher and the actors settle (write-behind ticks every 50 ms).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(20_000, |a| a.parse().expect("carts: a number"));

    // The parts alone, each kept alive to the end (freed memory would be reused).
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    println!("BYTES part=size_of_cart_deps per_cart={}", std::mem::size_of::<flashcore_actors::cart::CartDeps>());
    let sku = Sku::parse("CART-BYTES-1").unwrap();
    let product =
        Product::new(sku.clone(), "Cart bytes 1", "", Money::new(100, Currency::EUR).unwrap(), None, None).unwrap();
    let before = live();
    let carts: Vec<Cart> = (0..n).map(|_| Cart::new(CartId::new())).collect();
    let empty = live();
    let mut carts = carts;
    for c in &mut carts {
        c.apply_reserved(&product, 1, HoldId::new(), Timestamp::EPOCH);
    }
    println!("BYTES part=domain_cart_inline per_cart={}", (empty - before) / n as isize);
    report("domain_cart_one_line_heap", empty, n);
    let json: Vec<String> = carts.iter().map(|c| serde_json::to_string(c).unwrap()).collect();
    println!("BYTES part=snapshot_json_len per_cart={}", json.iter().map(String::len).sum::<usize>() / n);
    keep.push(Box::new((carts, json)));

    let before = live();
    let watches: Vec<_> = (0..n).map(|_| tokio::sync::watch::channel(0u8).0).collect();
    report("tokio_watch_channel", before, n);
    keep.push(Box::new(watches));
    let before = live();
    let gates: Vec<_> = (0..n).map(|_| flashcore_actors::gate::Gate::new()).collect();
    report("gate_arc", before, n);
    keep.push(Box::new(gates));
    let before = live();
    let cells: Vec<_> = (0..n).map(|_| Arc::new(tokio::sync::OnceCell::<Arc<u64>>::new())).collect();
    report("oncecell_arc", before, n);
    keep.push(Box::new(cells));
    let before = live();
    let map = dashmap::DashMap::new();
    for i in 0..n {
        map.insert(CartId::new(), Arc::new(i));
    }
    report("dashmap_entry_id_to_arc_plus_arc_u64", before, n);
    keep.push(Box::new(map));

    let before = live();
    let mut actors = Vec::with_capacity(n);
    for _ in 0..n {
        actors.push(ractor::Actor::spawn(None, Idle, ()).await.unwrap().0);
    }
    report("bare_ractor_actor", before, n);
    let before = live();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        tasks.push((tx, tokio::spawn(async move { while rx.recv().await.is_some() {} })));
    }
    report("tokio_task_and_mpsc", before, n);
    keep.push(Box::new(tasks));

    // The whole engine on the memory stores, as `FLASHCORE_STORE=memory` runs.
    let stores = MemoryStores::default();
    let ports = Ports {
        journal: stores.journal,
        snapshots: stores.snapshots,
        catalog: stores.catalog,
        payments: Arc::new(TestPayments),
        feed: Arc::new(LocalFeed::default()),
        peers: None,
    };
    let owner = Owner { node: "cart-bytes".into(), generation: 1 };
    let ownership = Ownership::hold(stores.leases, owner, LeaseConfig::default()).await;
    let cfg = EngineConfig {
        cart_idle: Duration::from_secs(86_400),
        hold_ttl: Duration::from_secs(86_400),
        cart_max_inflight: 1 << 20,
        ..EngineConfig::default()
    };
    let engine = Engine::start(cfg, ports, ownership).await.unwrap();
    engine.upsert_product(product).await.unwrap();
    engine.adjust_stock(&sku, StockChange::SetTotal(1_000_000_000)).await.unwrap();
    // Warm up (first cart, metric handles, flusher buffers).
    let c = engine.create_cart().await.unwrap();
    engine.set_quantity(c.id, sku.clone(), 1).await.unwrap();
    settle().await;

    let before = live();
    let mut ids = Vec::with_capacity(n);
    let base = live();
    for _ in 0..n {
        ids.push(engine.create_cart().await.unwrap().id);
    }
    settle().await;
    let empty = live();
    println!("BYTES part=engine_empty_cart per_cart={}", (empty - base) / n as isize);
    for id in &ids {
        engine.set_quantity(*id, sku.clone(), 1).await.unwrap();
    }
    settle().await;
    println!("BYTES part=engine_one_line_added per_cart={}", (live() - empty) / n as isize);
    println!("BYTES part=engine_cart_with_one_line per_cart={}", (live() - before) / n as isize);
    engine.shutdown().await;
    for a in actors {
        a.stop(None);
    }
    drop(keep);
}

/// An actor that does nothing, with 64 bytes of state.
struct Idle;

impl ractor::Actor for Idle {
    type Msg = ();
    type State = [u64; 8];
    type Arguments = ();

    async fn pre_start(&self, _: ractor::ActorRef<()>, (): ()) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok([0; 8])
    }
}
