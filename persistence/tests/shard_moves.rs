//! A cluster's shares change in place (DESIGN §9): when a node joins or
//! leaves, the others hand shards over or take them with their engines
//! running. The shards a node keeps keep their epochs and their state in
//! memory (carts' holds, SKU counts); the shards that leave are written and
//! dropped, then recovered by their next owner from the store. Nothing held
//! is lost across the moves and nothing is oversold.
//!
//! Real [`Node`]s with their engines and leases on the in-memory stores; only
//! the transport between them is in-process.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::node::Node;
use flashcore_actors::ownership::Phase;
use flashcore_actors::peers::{PeerAnswer, PeerCall, Peers};
use flashcore_actors::ports::{EntityKind, Journal, LeaseStore, Owner, Route, SnapshotStore};
use flashcore_actors::sku::StockChange;
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, EngineError};
use flashcore_domain::{Cart, ShardId, Shards, Sku};
use flashcore_persistence::memory::MemoryStores;
use support::eventually;
use tokio::sync::oneshot;

const STOCK: u64 = 10;
const WITHIN: Duration = Duration::from_secs(20);

/// Books a checked-out cart's lines: no longer held, sold.
fn sell(cart: &Cart, held: &mut BTreeMap<Sku, u64>, sold: &mut BTreeMap<Sku, u64>) {
    for line in cart.lines.values() {
        *held.get_mut(&line.sku).unwrap() -= u64::from(line.qty);
        *sold.entry(line.sku.clone()).or_default() += u64::from(line.qty);
    }
}

fn shards() -> Shards {
    Shards::new(4).unwrap()
}

/// The nodes by address.
#[derive(Default)]
struct Wire {
    nodes: Mutex<HashMap<String, Arc<Node>>>,
}

#[async_trait]
impl Peers for Wire {
    async fn call(&self, route: &Route, call: PeerCall, deadline: Duration) -> Result<PeerAnswer, EngineError> {
        let unavailable = |why: &str| EngineError::Unavailable { retry_after_secs: 1, reason: why.into() };
        let node = self.nodes.lock().unwrap().get(&route.address).cloned().ok_or_else(|| unavailable("no node"))?;
        let elsewhere = EngineError::Elsewhere { shard: call.shard };
        let shard = shards().shard(call.shard).ok_or(EngineError::Elsewhere { shard: call.shard })?;
        let (Ok(_admitted), Some(engine)) = (node.ownership().admit_peer(shard), node.engine()) else {
            return Err(elsewhere);
        };
        tokio::time::timeout(deadline, engine.serve_peer(call)).await.unwrap_or_else(|_| Err(unavailable("timed out")))
    }
}

struct Cluster {
    stores: MemoryStores,
    wire: Arc<Wire>,
    nodes: Vec<Arc<Node>>,
    stops: Vec<Option<oneshot::Sender<()>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    async fn new(skus: &[Sku]) -> Cluster {
        let stores = support::cluster_stores(skus).await;
        Cluster { stores, wire: Arc::new(Wire::default()), nodes: Vec::new(), stops: Vec::new(), tasks: Vec::new() }
    }

    fn add(&mut self, name: &str) {
        let (stop, stopped) = oneshot::channel::<()>();
        let peers: Arc<dyn Peers> = self.wire.clone();
        let (node, task) = support::cluster_node(&self.stores, peers, name, shards(), EngineConfig::default(), async {
            let _ = stopped.await;
        });
        self.wire.nodes.lock().unwrap().insert(name.into(), Arc::clone(&node));
        self.tasks.push(task);
        self.nodes.push(node);
        self.stops.push(Some(stop));
    }

    /// Nodes a and b serving 2 shards each, 8 SKUs `{prefix}-0` to `-7`.
    async fn of_two(prefix: &str) -> (Vec<Sku>, Cluster) {
        let skus: Vec<Sku> = (0..8).map(|i| Sku::parse(&format!("{prefix}-{i}")).unwrap()).collect();
        let mut cluster = Cluster::new(&skus).await;
        cluster.add("a");
        cluster.add("b");
        cluster.settle(&[0, 1], &[2, 2], "a and b to serve 2 shards each").await;
        (skus, cluster)
    }

    /// Stops every node still running and waits for them to finish.
    async fn stop(mut self) {
        for stop in self.stops.iter_mut().filter_map(Option::take) {
            let _ = stop.send(());
        }
        for t in self.tasks.drain(..) {
            tokio::time::timeout(WITHIN, t).await.expect("the nodes stop").unwrap();
        }
    }

    fn engine(&self, i: usize) -> Arc<Engine> {
        self.nodes[i].engine().expect("serving")
    }

    /// Waits until the nodes `which` serve `want` shards each (in that order).
    async fn settle(&self, which: &[usize], want: &[usize], what: &str) {
        eventually(WITHIN, what, || async {
            let held: Vec<usize> = which
                .iter()
                .map(|&i| {
                    let n = &self.nodes[i];
                    let serving = n.ownership().phase() == Phase::Serving && n.engine().is_some();
                    if serving { n.ownership().held().len() } else { usize::MAX }
                })
                .collect();
            (held == want).then_some(())
        })
        .await;
    }

    /// Every shard's epoch and owner node, from the lease table.
    async fn shard_map(&self) -> BTreeMap<ShardId, (String, u64)> {
        let rows = self.stores.leases.leases().await.unwrap();
        rows.into_iter().filter_map(|r| r.owner.map(|o| (r.shard, (o.node, r.epoch)))).collect()
    }
}

fn checkout(key: &str) -> CheckoutRequest {
    CheckoutRequest { payment_token: "tok_visa".into(), email: None, idempotency_key: key.into() }
}

/// Every SKU's counts read through every node agree, and add up to its stock
/// with the holds `held` and the units `sold`.
async fn counts_agree(cluster: &Cluster, live: &[usize], held: &BTreeMap<Sku, u64>, sold: &BTreeMap<Sku, u64>) {
    for (sku, &h) in held {
        let s = sold.get(sku).copied().unwrap_or(0);
        for &i in live {
            let engine = cluster.engine(i);
            eventually(WITHIN, &format!("{sku} through node {i}: {h} held, {s} sold"), || async {
                let a = engine.availability(sku).await.ok()?;
                ((a.held, a.sold, a.available) == (h, s, STOCK - h - s)).then_some(())
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_change_in_place_and_carts_keep_their_holds_across_the_moves() {
    // Arrange: nodes a and b, 2 shards each; 8 SKUs over all 4 shards, and
    // 8 carts each holding 2 units of one SKU and 1 of another.
    let (skus, mut cluster) = Cluster::of_two("MV").await;
    let covered: std::collections::BTreeSet<ShardId> = skus.iter().map(|s| shards().of_sku(s)).collect();
    assert!(covered.len() >= 3, "the SKUs spread over the shards: {covered:?}");
    for sku in &skus {
        cluster.engine(0).adjust_stock(sku, StockChange::SetTotal(STOCK)).await.unwrap();
    }
    let mut held: BTreeMap<Sku, u64> = skus.iter().map(|s| (s.clone(), 0)).collect();
    let mut carts: Vec<Cart> = Vec::new();
    for i in 0..8 {
        let engine = cluster.engine(i % 2);
        let cart = engine.create_cart().await.unwrap();
        engine.set_quantity(cart.id, skus[i].clone(), 2).await.unwrap();
        let cart = engine.set_quantity(cart.id, skus[(i + 3) % 8].clone(), 1).await.unwrap();
        *held.get_mut(&skus[i]).unwrap() += 2;
        *held.get_mut(&skus[(i + 3) % 8]).unwrap() += 1;
        carts.push(cart);
    }
    let sold = BTreeMap::new();
    counts_agree(&cluster, &[0, 1], &held, &sold).await;
    let (engine_a, engine_b) = (cluster.engine(0), cluster.engine(1));
    let before = cluster.shard_map().await;

    // Act 1: node c joins (4 shards over 3 nodes: 2, 1, 1).
    cluster.add("c");
    eventually(WITHIN, "c to take a share", || async {
        let held: Vec<usize> = cluster.nodes.iter().map(|n| n.ownership().held().len()).collect();
        let serving = cluster.nodes.iter().all(|n| n.ownership().phase() == Phase::Serving && n.engine().is_some());
        (serving && held.iter().sum::<usize>() == 4 && held[2] >= 1 && held.iter().all(|&h| h >= 1)).then_some(())
    })
    .await;

    // Assert: a and b moved in place (the same engines), the shards they kept
    // kept their epochs, the ones c took have new ones.
    assert!(Arc::ptr_eq(&engine_a, &cluster.engine(0)), "node a kept its engine");
    assert!(Arc::ptr_eq(&engine_b, &cluster.engine(1)), "node b kept its engine");
    let after = cluster.shard_map().await;
    for (shard, (owner, epoch)) in &after {
        let (was, old) = &before[shard];
        if owner == was {
            assert_eq!(epoch, old, "shard {shard} stayed on node {owner}: same epoch");
        } else {
            assert_eq!(owner, "c", "only the newcomer takes shards");
            assert!(epoch > old, "shard {shard} moved to c: a new epoch");
        }
    }
    assert!(after.values().any(|(o, _)| o == "c"));
    // Every cart and every hold is still there, read through any node.
    counts_agree(&cluster, &[0, 1, 2], &held, &sold).await;
    for cart in &carts {
        for i in 0..3 {
            let read = cluster.engine(i).cart(cart.id).await.unwrap();
            assert_eq!(read.lines, cart.lines, "cart {} through node {i}", cart.id);
        }
    }

    // Act 2: half the carts check out through c, then c stops gracefully and
    // a and b take its shards back, still in place.
    let mut sold: BTreeMap<Sku, u64> = BTreeMap::new();
    for (n, cart) in carts.iter().enumerate().take(4) {
        cluster.engine(2).checkout(cart.id, checkout(&format!("k{n}"))).await.unwrap();
        sell(cart, &mut held, &mut sold);
    }
    counts_agree(&cluster, &[0, 1, 2], &held, &sold).await;
    let _ = cluster.stops[2].take().unwrap().send(());
    cluster.settle(&[0, 1], &[2, 2], "a and b to take c's shards").await;
    assert!(Arc::ptr_eq(&engine_a, &cluster.engine(0)), "node a kept its engine");
    assert!(Arc::ptr_eq(&engine_b, &cluster.engine(1)), "node b kept its engine");

    // Assert: the other half checks out through a and b; every SKU sold
    // exactly its orders' lines, nothing held, nothing oversold.
    for (n, cart) in carts.iter().enumerate().skip(4) {
        cluster.engine(n % 2).checkout(cart.id, checkout(&format!("k{n}"))).await.unwrap();
        sell(cart, &mut held, &mut sold);
    }
    counts_agree(&cluster, &[0, 1], &held, &sold).await;
    let orders = cluster.stores.journal.orders(100, None).await.unwrap();
    assert_eq!(orders.len(), 8, "every checkout journaled once");
    let mut journaled: BTreeMap<Sku, u64> = BTreeMap::new();
    for o in &orders {
        for l in &o.lines {
            *journaled.entry(l.sku.clone()).or_default() += u64::from(l.qty);
        }
    }
    assert_eq!(journaled, sold, "sold = the journal's order lines");
    for n in &cluster.nodes {
        assert_eq!(n.ownership().view().losses, 0, "no node lost its leases on the way");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_one_shard_stops_serving_it_and_keeps_its_others() {
    // Arrange: a and b, 2 shards each; a cart on a holding a SKU of each of
    // a's shards, its state written behind.
    let (skus, cluster) = Cluster::of_two("LS").await;
    let (engine_a, engine_b) = (cluster.engine(0), cluster.engine(1));
    let a_leases = cluster.nodes[0].ownership().fence().unwrap().leases();
    let (stolen, kept) = (a_leases[0], a_leases[1]);
    let on = |shard: ShardId| skus.iter().find(|s| shards().of_sku(s) == shard).cloned();
    let (Some(x), Some(y)) = (on(stolen.shard), on(kept.shard)) else {
        panic!("the SKUs cover both of a's shards: {a_leases:?}");
    };
    for sku in [&x, &y] {
        engine_a.adjust_stock(sku, StockChange::SetTotal(STOCK)).await.unwrap();
    }
    let cart = engine_b.create_cart().await.unwrap();
    engine_b.set_quantity(cart.id, x.clone(), 2).await.unwrap();
    engine_b.set_quantity(cart.id, y.clone(), 3).await.unwrap();
    eventually(WITHIN, "a's holds written behind", || async {
        for sku in [&x, &y] {
            let stored = cluster.stores.snapshots.load(EntityKind::Sku, sku.as_str()).await.ok()??;
            stored.state.as_str().contains(&cart.id.to_string()).then_some(())?;
        }
        Some(())
    })
    .await;

    // Act: another process takes one of a's shards behind its back (its
    // lease released on a's behalf and taken, epoch + 1).
    let a_owner = cluster.nodes[0].ownership().owner().clone();
    cluster.stores.leases.release(&a_owner, &[stolen]).await.unwrap();
    let intruder = Owner { node: "intruder".into(), generation: 1 };
    let ttl = Duration::from_millis(900);
    let taken = cluster.stores.leases.acquire(&intruder, &[stolen.shard], shards(), ttl).await.unwrap();
    let taken = taken.expect("the released shard is free");
    assert!(taken[0].epoch > stolen.epoch);

    // Assert: a stops serving that shard only (its next renewal is refused,
    // it checks which leases it still holds), keeps its engine and its other
    // shard, and the SKU of that shard is still sold through a.
    eventually(WITHIN, "a to give up the lost shard and keep the other", || async {
        let own = cluster.nodes[0].ownership();
        let held = own.held();
        (own.phase() == Phase::Serving && held == vec![kept.shard] && own.view().losses == 1).then_some(())
    })
    .await;
    assert!(Arc::ptr_eq(&engine_a, &cluster.engine(0)), "node a kept its engine");
    assert!(!engine_a.serves_sku(&x), "a no longer serves the lost shard's SKU");
    assert!(engine_a.serves_sku(&y));
    assert_eq!(cluster.nodes[0].ownership().fence().unwrap().epoch(kept.shard), kept.epoch, "same epoch");
    assert_eq!(engine_a.availability(&y).await.unwrap().held, 3, "the kept shard's state stayed in memory");
    assert!(Arc::ptr_eq(&engine_b, &cluster.engine(1)), "node b was not disturbed");
    assert_eq!(cluster.nodes[1].ownership().view().losses, 0);

    // Once the intruder's lease lapses, the cluster takes the shard back in
    // place (a new epoch), recovering the hold a wrote behind; the cart
    // checks out whole and nothing is oversold.
    eventually(WITHIN, "the lost shard served again", || async {
        let held: usize = cluster.nodes.iter().map(|n| n.ownership().held().len()).sum();
        let serving = cluster.nodes.iter().all(|n| n.ownership().phase() == Phase::Serving);
        (held == 4 && serving).then_some(())
    })
    .await;
    let (order, _) = engine_b.checkout(cart.id, checkout("lost-1")).await.unwrap();
    assert_eq!(order.lines.len(), 2);
    let sold: BTreeMap<Sku, u64> = [(x.clone(), 2), (y.clone(), 3)].into();
    let held: BTreeMap<Sku, u64> = [(x.clone(), 0), (y.clone(), 0)].into();
    counts_agree(&cluster, &[0, 1], &held, &sold).await;
    assert!(Arc::ptr_eq(&engine_a, &cluster.engine(0)) && Arc::ptr_eq(&engine_b, &cluster.engine(1)));
    cluster.stop().await;
}
