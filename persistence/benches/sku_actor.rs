//! Message throughput of one actor: a bare ractor actor against a real SKU actor.
//!
//! One element is one *pair*: a `call` (request + reply) followed by a `cast`.
//!
//! - `bare_actor/call_cast_pair`: an actor whose state is a `u64`; the call reads
//!   it, the cast increments it. This is the ceiling ractor itself allows.
//! - `sku_actor/reserve_release_pair`: a real [`SkuActor`] on the in-process
//!   adapters (recovered through its ports, given stock once), `Reserve` (call) then `Release` (cast) of one unit
//!   under a fresh hold id per pair. Hold ids are generated before the timed part.
//!
//! Each is run with 1 caller task and with 64 caller tasks sharing the single
//! actor, on a 2-worker multi-thread tokio runtime. Callers are tasks spawned from
//! a worker (as a server's handler tasks are), and each sample ends with one extra
//! call so the last casts are handled inside the timed part. Each side calls the
//! way its callers do: the bare actor with ractor's `ActorRef::call(.., None)`,
//! the SKU actor with [`flashcore_actors::reply::ask`] (its leaner reply handle),
//! both without a timeout; the registry's timeout and gate are not measured.
//!
//! On a 2-core machine the figures can shift between runs by up to 2x (worker
//! park/unpark dynamics): compare bare and SKU from the same run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flashcore_actors::alarms::Alarms;
use flashcore_actors::flusher::Flusher;
use flashcore_actors::gate::Ticket;
use flashcore_actors::journal::JournalWriter;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::ports::Owner;
use flashcore_actors::ports::SnapshotStore;
use flashcore_actors::reply::ask;
use flashcore_actors::sku::{ReserveReq, SkuActor, SkuDeps, SkuMsg, StockChange};
use flashcore_domain::{Availability, CartId, HoldId, Sku};
use flashcore_persistence::memory::{LocalFeed, MemoryStores};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::runtime::Runtime;

/// The production binary's allocator, so the figures match what it runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Concurrent caller tasks in the contended variant.
const CALLERS: u64 = 64;
/// Long enough that no hold expires during the run.
const TTL: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// The bare actor.

struct Bare;

enum BareMsg {
    Call(RpcReplyPort<u64>),
    Cast,
}

impl Actor for Bare {
    type Msg = BareMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<BareMsg>, (): ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<BareMsg>,
        msg: BareMsg,
        state: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BareMsg::Call(reply) => {
                let _ = reply.send(*state);
            }
            BareMsg::Cast => *state += 1,
        }
        Ok(())
    }
}

async fn bare_call(actor: &ActorRef<BareMsg>) -> u64 {
    match actor.call(BareMsg::Call, None).await {
        Ok(CallResult::Success(n)) => n,
        _ => panic!("bare call failed"),
    }
}

async fn bare_pairs(actor: ActorRef<BareMsg>, n: u64) {
    for _ in 0..n {
        black_box(bare_call(&actor).await);
        if actor.cast(BareMsg::Cast).is_err() {
            panic!("bare cast failed");
        }
    }
}

// ---------------------------------------------------------------------------
// The SKU actor, on the real in-process adapters.

async fn start_sku() -> ActorRef<SkuMsg> {
    let stores = MemoryStores::default();
    let snapshots: Arc<dyn SnapshotStore> = stores.snapshots;
    let owner = Owner { node: "bench".into(), generation: 1 };
    let ownership = Ownership::hold(stores.leases, owner, LeaseConfig::default()).await;
    let (journal, _) = JournalWriter::start(stores.journal, Arc::clone(&ownership), 64, 1024);
    // The engine's default write-behind interval.
    let (flusher, _) = Flusher::start(Arc::clone(&snapshots), ownership, Duration::from_millis(50));
    let alarms = Arc::new(Alarms::default());
    let deps = SkuDeps {
        journal,
        feed: Arc::new(LocalFeed::default()),
        flusher,
        snapshots,
        alarms,
        parked: Default::default(),
    };
    let sku = Sku::parse("BENCH-SKU-1").expect("valid sku");
    let (actor, _) = Actor::spawn(None, SkuActor, (sku, deps)).await.expect("SKU actor starts");
    let stocked = ask(
        &actor,
        |reply| SkuMsg::Adjust { ticket: Ticket::untracked(), change: StockChange::SetTotal(1_000_000), reply },
        None,
    )
    .await;
    match stocked {
        Ok(Ok(a)) => assert_eq!(a.available, 1_000_000),
        _ => panic!("stocking the SKU failed"),
    }
    actor
}

async fn sku_get(actor: &ActorRef<SkuMsg>) -> Availability {
    match ask(actor, |reply| SkuMsg::Get { ticket: Ticket::untracked(), reply }, None).await {
        Ok(a) => a,
        _ => panic!("SKU get failed"),
    }
}

async fn sku_pairs(actor: ActorRef<SkuMsg>, cart: CartId, holds: Vec<HoldId>) {
    for hold in holds {
        let expires_at = flashcore_actors::clock::now().plus_millis(TTL.as_millis() as u64);
        let reserved = ask(
            &actor,
            |reply| ReserveReq { ticket: Ticket::untracked(), hold, cart, qty: 1, expires_at, reply }.into(),
            None,
        )
        .await;
        match reserved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("reserve refused: {e}"),
            _ => panic!("reserve call failed"),
        }
        if actor.cast(SkuMsg::Release { ticket: Ticket::untracked(), hold, reply: None }).is_err() {
            panic!("release cast failed");
        }
    }
}

// ---------------------------------------------------------------------------
// Drivers: `iters` pairs split over `callers` spawned tasks.

fn split(iters: u64, callers: u64) -> impl Iterator<Item = u64> {
    (0..callers).map(move |i| iters / callers + u64::from(i < iters % callers)).filter(|&n| n > 0)
}

async fn run_bare(actor: ActorRef<BareMsg>, iters: u64, callers: u64) -> Duration {
    // Spawned from a worker, as a server's handler tasks are.
    let driver = tokio::spawn(async move {
        let start = Instant::now();
        let tasks: Vec<_> = split(iters, callers).map(|n| tokio::spawn(bare_pairs(actor.clone(), n))).collect();
        for t in tasks {
            t.await.expect("caller task");
        }
        black_box(bare_call(&actor).await);
        start.elapsed()
    });
    driver.await.expect("driver task")
}

async fn run_sku(actor: ActorRef<SkuMsg>, iters: u64, callers: u64) -> Duration {
    // Hold ids (UUIDv7: a clock read and randomness each) are made before timing.
    let work: Vec<(CartId, Vec<HoldId>)> =
        split(iters, callers).map(|n| (CartId::new(), (0..n).map(|_| HoldId::new()).collect())).collect();
    // Spawned from a worker, as a server's handler tasks are.
    let driver = tokio::spawn(async move {
        let start = Instant::now();
        let tasks: Vec<_> =
            work.into_iter().map(|(cart, holds)| tokio::spawn(sku_pairs(actor.clone(), cart, holds))).collect();
        for t in tasks {
            t.await.expect("caller task");
        }
        let a = sku_get(&actor).await;
        let took = start.elapsed();
        assert_eq!(a.held, 0, "every hold was released");
        took
    });
    driver.await.expect("driver task")
}

fn pairs(c: &mut Criterion) {
    let rt: Runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
    let (bare, _) = rt.block_on(Actor::spawn(None, Bare, ())).expect("bare actor starts");
    let sku = rt.block_on(start_sku());

    let mut group = c.benchmark_group("actor_pairs");
    group.sample_size(20).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    for callers in [1, CALLERS] {
        group.bench_with_input(BenchmarkId::new("bare_actor/call_cast_pair", callers), &callers, |b, &callers| {
            b.to_async(&rt).iter_custom(|iters| run_bare(bare.clone(), iters, callers));
        });
        group.bench_with_input(BenchmarkId::new("sku_actor/reserve_release_pair", callers), &callers, |b, &callers| {
            b.to_async(&rt).iter_custom(|iters| run_sku(sku.clone(), iters, callers));
        });
    }
    group.finish();

    bare.stop(None);
    sku.stop(None);
}

criterion_group!(benches, pairs);
criterion_main!(benches);
