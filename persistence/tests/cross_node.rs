//! Checkout across nodes (DESIGN §9) with two nodes in one process on the
//! in-memory stores: node a's cart buys node b's SKU (reserve, prepare and
//! commit on b, the order journaled by a under b's lease), and when the cart's
//! node never tells the SKU's node how the order ended (a commit or an abort
//! lost on the way: the node died, froze or was cut off), the SKU's node
//! settles the prepared hold itself from the journal once the order's deadline
//! has passed: sold if the order is there, back to the cart (and then to stock)
//! if not.
//!
//! The nodes are real [`Node`]s with their engines and leases (share mode);
//! only the transport between them is in-process, and it can lose a kind of
//! call on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::node::Node;
use flashcore_actors::ownership::Phase;
use flashcore_actors::peers::{PeerAnswer, PeerCall, PeerOp, Peers, SkuAt};
use flashcore_actors::ports::{Journal, Route};
use flashcore_actors::sku::StockChange;
use flashcore_actors::waiting_room::{RoomConfig, RoomControl, TicketState};
use flashcore_actors::{CheckoutRequest, Engine, EngineConfig, EngineError};
use flashcore_domain::{Currency, Money, Product, Shards, Sku};
use flashcore_persistence::memory::MemoryStores;
use support::eventually;

const STOCK: u64 = 10;

fn shards() -> Shards {
    Shards::new(4).unwrap()
}

/// The nodes by address, the kinds of call (`PeerOp::name`) lost on the way,
/// every call sent (to which address), and a detour: the next call of a kind
/// to one address delivered to another node instead, as if the caller's route
/// named the node the shard just left.
#[derive(Default)]
struct Wire {
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    lost: Mutex<Vec<&'static str>>,
    sent: Mutex<Vec<(String, PeerCall)>>,
    detour: Mutex<Option<(&'static str, String, String)>>,
}

impl Wire {
    /// The calls of kind `op` sent so far, with their addresses.
    fn sent(&self, op: &str) -> Vec<(String, PeerCall)> {
        self.sent.lock().unwrap().iter().filter(|(_, c)| c.op.name() == op).cloned().collect()
    }
}

#[async_trait]
impl Peers for Wire {
    async fn call(&self, route: &Route, call: PeerCall, deadline: Duration) -> Result<PeerAnswer, EngineError> {
        let unavailable = |why: &str| EngineError::Unavailable { retry_after_secs: 1, reason: why.into() };
        self.sent.lock().unwrap().push((route.address.clone(), call.clone()));
        if self.lost.lock().unwrap().contains(&call.op.name()) {
            return Err(unavailable("lost on the way"));
        }
        let mut address = route.address.clone();
        {
            let mut detour = self.detour.lock().unwrap();
            if detour.as_ref().is_some_and(|(op, from, _)| *op == call.op.name() && *from == address) {
                address = detour.take().map(|(_, _, to)| to).unwrap_or(address);
            }
        }
        let node = self.nodes.lock().unwrap().get(&address).cloned().ok_or_else(|| unavailable("no node"))?;
        let elsewhere = EngineError::Elsewhere { shard: call.shard };
        let (Ok(_admitted), Some(engine)) = (node.ownership().admit(), node.engine()) else { return Err(elsewhere) };
        tokio::time::timeout(deadline, engine.serve_peer(call)).await.unwrap_or_else(|_| Err(unavailable("timed out")))
    }
}

struct Cluster {
    stores: MemoryStores,
    wire: Arc<Wire>,
    nodes: Vec<Arc<Node>>,
}

impl Cluster {
    /// Nodes `a` and `b` sharing the shards of `stores`, whose catalog has `skus`.
    async fn start(skus: &[Sku]) -> Cluster {
        let stores = support::cluster_stores(skus).await;
        let wire = Arc::new(Wire::default());
        let mut cluster = Cluster { stores, wire, nodes: Vec::new() };
        for name in ["a", "b"] {
            cluster.add(name);
        }
        eventually(Duration::from_secs(20), "both nodes to serve 2 shards each", || async {
            let serving = cluster.nodes.iter().all(|n| {
                n.ownership().phase() == Phase::Serving && n.ownership().held().len() == 2 && n.engine().is_some()
            });
            serving.then_some(())
        })
        .await;
        cluster
    }

    fn add(&mut self, name: &str) {
        let engine_cfg = EngineConfig {
            hold_ttl: Duration::from_secs(3),
            remote_prepare_ttl: Duration::from_millis(800),
            settle_margin: Duration::from_millis(200),
            ..EngineConfig::default()
        };
        let peers: Arc<dyn Peers> = self.wire.clone();
        let (node, _) = support::cluster_node(&self.stores, peers, name, shards(), engine_cfg, std::future::pending());
        self.wire.nodes.lock().unwrap().insert(name.into(), Arc::clone(&node));
        self.nodes.push(node);
    }

    /// Waits until every node serves a share and the shares add up.
    async fn settled(&self) {
        eventually(Duration::from_secs(30), "every node to serve a share", || async {
            let serving = self.nodes.iter().all(|n| {
                n.ownership().phase() == Phase::Serving && !n.ownership().held().is_empty() && n.engine().is_some()
            });
            let held: usize = self.nodes.iter().map(|n| n.ownership().held().len()).sum();
            (serving && held == shards().count() as usize).then_some(())
        })
        .await;
    }

    fn engine(&self, i: usize) -> Arc<Engine> {
        self.nodes[i].engine().expect("serving")
    }

    /// The node serving `sku`'s shard.
    fn owner_of(&self, sku: &Sku) -> usize {
        let shard = shards().of_sku(sku);
        self.nodes.iter().position(|n| n.ownership().held().contains(&shard)).expect("an owner")
    }
}

/// A SKU of each node's: `(on a, on b)` by the shard map now.
fn skus() -> Vec<Sku> {
    (0..16).map(|i| Sku::parse(&format!("XN-{i}")).unwrap()).collect()
}

async fn setup() -> (Cluster, Sku) {
    let all = skus();
    let cluster = Cluster::start(&all).await;
    let on_b = all.iter().find(|s| cluster.owner_of(s) == 1).expect("a SKU on node b").clone();
    cluster.engine(1).adjust_stock(&on_b, StockChange::SetTotal(STOCK)).await.unwrap();
    (cluster, on_b)
}

fn checkout(key: &str, token: &str) -> CheckoutRequest {
    CheckoutRequest { payment_token: token.into(), email: None, idempotency_key: key.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_on_one_node_buys_a_sku_of_the_other() {
    // Arrange: a cart on node a, a line of node b's SKU.
    let (cluster, sku) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    let cart = a.create_cart().await.unwrap();
    a.set_quantity(cart.id, sku.clone(), 3).await.unwrap();
    // The actor publishes its counts just after it answers: poll.
    eventually(Duration::from_secs(5), "the hold on node b, read through both nodes", || async {
        let (x, y) = (a.availability(&sku).await.ok()?, b.availability(&sku).await.ok()?);
        (x.held == 3 && y.held == 3).then_some(())
    })
    .await;
    let mut stream = a.subscribe(&sku).await.unwrap();

    // Act: checked out through node b (which forwards it to the cart's node a).
    let (order, replay) = b.checkout(cart.id, checkout("k1", "tok_visa")).await.unwrap();

    // Assert: journaled by node a under node b's lease, sold on node b.
    assert!(!replay);
    assert_eq!(cluster.stores.journal.order_for_cart(cart.id).await.unwrap().unwrap().id, order.id);
    eventually(Duration::from_secs(5), "node b to count the units sold", || async {
        let stock = b.availability(&sku).await.ok()?;
        ((stock.sold, stock.held, stock.available) == (3, 0, STOCK - 3)).then_some(())
    })
    .await;
    assert_eq!(b.remote_prepares(), 0, "the commit settled the prepared hold");
    // Node a's stream of node b's SKU follows the sale.
    tokio::time::timeout(Duration::from_secs(5), stream.wait_for(|a| a.is_some_and(|a| a.sold == 3)))
        .await
        .expect("node a's stream shows the units sold")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_never_arrives_is_settled_from_the_journal_after_the_deadline() {
    // Arrange: node a's commits to node b are lost on the way.
    let (cluster, sku) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    let cart = a.create_cart().await.unwrap();
    a.set_quantity(cart.id, sku.clone(), 2).await.unwrap();
    cluster.wire.lost.lock().unwrap().push("commit");

    // Act
    let (order, _) = a.checkout(cart.id, checkout("k2", "tok_visa")).await.unwrap();

    // Assert: prepared on b until the deadline, then sold from the journal.
    assert_eq!(b.remote_prepares(), 1, "node b waits for the order's outcome");
    assert_eq!(cluster.stores.journal.order(order.id).await.unwrap().map(|o| o.id), Some(order.id));
    eventually(Duration::from_secs(10), "node b to settle the hold as sold", || async {
        let stock = b.availability(&sku).await.ok()?;
        ((stock.sold, stock.held, stock.available) == (2, 0, STOCK - 2) && b.remote_prepares() == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_that_never_arrives_returns_the_hold_after_the_deadline() {
    // Arrange: node a's aborts to node b are lost; the payment is declined
    // after the prepare, so the order is never written.
    let (cluster, sku) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    let cart = a.create_cart().await.unwrap();
    a.set_quantity(cart.id, sku.clone(), 4).await.unwrap();
    cluster.wire.lost.lock().unwrap().push("abort");

    // Act
    let err = a.checkout(cart.id, checkout("k3", "tok_decline")).await.unwrap_err();

    // Assert: nothing journaled; node b returns the prepared hold to the cart
    // after the deadline, and its units to stock when the hold lapses.
    assert_eq!(err.code(), "payment-declined");
    assert_eq!(cluster.stores.journal.order_for_cart(cart.id).await.unwrap(), None);
    assert_eq!(b.remote_prepares(), 1, "node b waits for the order's outcome");
    eventually(Duration::from_secs(10), "node b to settle the hold as aborted", || async {
        (b.remote_prepares() == 0).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the units back in stock once the hold lapses", || async {
        let stock = b.availability(&sku).await.ok()?;
        ((stock.sold, stock.held, stock.available) == (0, 0, STOCK)).then_some(())
    })
    .await;
    // The cart can still buy once the way is clear again.
    cluster.wire.lost.lock().unwrap().clear();
    a.set_quantity(cart.id, sku.clone(), 1).await.unwrap();
    a.checkout(cart.id, checkout("k4", "tok_visa")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_created_on_one_node_is_sold_through_the_other() {
    // Arrange: both nodes serving; a product neither has seen, on a SKU of
    // node b's shards, created through node a (which tells node b).
    let (cluster, _) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    let sku = (100..200)
        .map(|i| Sku::parse(&format!("NEW-{i}")).unwrap())
        .find(|s| cluster.owner_of(s) == 1)
        .expect("a new SKU of node b's");
    let price = Money::new(900, Currency::EUR).unwrap();
    a.upsert_product(Product::new(sku.clone(), "new", "", price, None, None).unwrap()).await.unwrap();

    // Act: its stock set through node a (done on node b), bought through node b.
    let stock = a.adjust_stock(&sku, StockChange::SetTotal(5)).await.unwrap();
    let cart = b.create_cart().await.unwrap();
    b.set_quantity(cart.id, sku.clone(), 2).await.unwrap();
    b.checkout(cart.id, checkout("new-1", "tok_visa")).await.unwrap();

    // Assert: both nodes know the product and its counts.
    assert_eq!(stock.total, 5);
    assert_eq!(b.product(&sku).await.unwrap().product.price, price);
    eventually(Duration::from_secs(5), "both nodes to count the sale", || async {
        let (x, y) = (a.availability(&sku).await.ok()?, b.availability(&sku).await.ok()?);
        (x == y && (y.sold, y.available) == (2, 3)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_room_set_through_one_node_guards_cart_edits_on_every_node() {
    // Arrange
    let (cluster, sku) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    assert_eq!(a.waiting_room(&sku), None);

    // Act: node b's SKU gets a room through node a (done on node b).
    let room = RoomConfig::new(5, 60).unwrap();
    a.configure_waiting_room(&sku, Some(room)).await.unwrap();

    // Assert: both nodes know it (the edge asks every cart edit for a pass by
    // it), and both forget it when it is turned off.
    assert_eq!(b.waiting_room(&sku), Some(room), "the SKU's node runs the room");
    assert_eq!(a.waiting_room(&sku), Some(room), "node a was told");
    assert!(b.room_stats(&sku).is_ok());

    // A cart of node a joins node b's line through node a, reads its ticket
    // there, and an operator pauses the room through node a.
    let cart = a.create_cart().await.unwrap();
    let joined = a.join_queue(&sku, cart.id).await.unwrap();
    assert!(joined.created);
    assert_eq!(a.queue_ticket(&sku, joined.ticket, cart.id).await.unwrap().ticket, joined.ticket);
    // The room publishes its figures once a tick: poll.
    eventually(Duration::from_secs(5), "the ticket in node b's line", || async {
        (b.room_stats(&sku).ok()?.joined == 1).then_some(())
    })
    .await;
    let other = a.create_cart().await.unwrap();
    assert_eq!(a.queue_ticket(&sku, joined.ticket, other.id).await.unwrap_err().to_string(), "ticket not found");
    assert!(a.control_room(&sku, RoomControl::Pause).await.unwrap().paused);
    eventually(Duration::from_secs(5), "node b's room paused", || async {
        b.room_stats(&sku).ok()?.paused.then_some(())
    })
    .await;
    a.configure_waiting_room(&sku, None).await.unwrap();
    assert_eq!((a.waiting_room(&sku), b.waiting_room(&sku)), (None, None));
}

/// Sets every SKU's total to a figure of its own (its index + 1), through
/// node a (each on its SKU's node), and waits until node a's product list
/// shows them all.
async fn distinct_stock(cluster: &Cluster) -> HashMap<Sku, u64> {
    let a = cluster.engine(0);
    let want: HashMap<Sku, u64> = skus().into_iter().zip(1..).collect();
    for (sku, total) in &want {
        a.adjust_stock(sku, StockChange::SetTotal(*total)).await.unwrap();
    }
    // Each SKU actor publishes its counts just after it answers: poll.
    eventually(Duration::from_secs(5), "node a's list to show every total", || async {
        let list = cluster.engine(0).products(100, None).await.ok()?;
        list.iter().all(|p| want.get(&p.product.sku) == Some(&p.availability.total)).then_some(())
    })
    .await;
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_list_asks_the_other_node_once_for_all_its_skus() {
    // Arrange: 16 SKUs spread over both nodes, each with a total of its own.
    let all = skus();
    let cluster = Cluster::start(&all).await;
    let want = distinct_stock(&cluster).await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    let on_b = all.iter().filter(|s| cluster.owner_of(s) == 1).count();
    assert!(on_b > 0 && on_b < all.len(), "a list mixing both nodes' SKUs");
    cluster.wire.sent.lock().unwrap().clear();

    // Act
    let list = a.products(100, None).await.unwrap();

    // Assert: every count right, node b asked once for all of its SKUs.
    assert_eq!(list.len(), all.len());
    for p in &list {
        assert_eq!(p.availability.total, want[&p.product.sku], "{}", p.product.sku);
        assert_eq!(p.availability.available, want[&p.product.sku], "{}", p.product.sku);
    }
    let batches = cluster.wire.sent("availability_batch");
    assert_eq!(batches.len(), 1, "one call to the other node");
    assert_eq!(batches[0].0, "b");
    let PeerOp::AvailabilityBatch { skus } = &batches[0].1.op else { unreachable!() };
    assert_eq!(skus.len(), on_b, "carrying every SKU of node b's on the page");
    assert!(cluster.wire.sent("availability").is_empty(), "no call per SKU");

    // Node b answers each entry under its own lease: one whose epoch is not
    // the one it holds the shard under, or of a shard it does not hold, is
    // refused on its own.
    let mine = skus[0].clone();
    let stale = SkuAt { epoch: mine.epoch + 1, ..mine.clone() };
    let of_a = all.iter().find(|s| cluster.owner_of(s) == 0).unwrap().clone();
    let foreign = SkuAt { shard: shards().of_sku(&of_a).get(), epoch: mine.epoch, sku: of_a };
    let call =
        PeerCall { shard: 0, epoch: 0, op: PeerOp::AvailabilityBatch { skus: vec![mine.clone(), stale, foreign] } };
    let PeerAnswer::Availabilities { results } = b.serve_peer(call).await.unwrap() else { unreachable!() };
    assert_eq!(results[0].as_ref().map(|a| a.total).ok(), Some(want[&mine.sku]));
    assert!(matches!(results[1], Err(EngineError::Elsewhere { .. })), "{:?}", results[1]);
    assert!(matches!(results[2], Err(EngineError::Elsewhere { .. })), "{:?}", results[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_list_survives_a_moved_shard() {
    // Arrange: node c joins nodes a and b and takes a shard from one of them.
    let all = skus();
    let mut cluster = Cluster::start(&all).await;
    let want = distinct_stock(&cluster).await;
    cluster.add("c");
    cluster.settled().await;
    let on_c: Vec<&Sku> = all.iter().filter(|s| cluster.owner_of(s) == 2).collect();
    assert!(!on_c.is_empty(), "some SKUs moved to node c");
    // Each list asks every other node that serves a SKU once.
    let serving: std::collections::HashSet<usize> = all.iter().map(|s| cluster.owner_of(s)).collect();
    let calls_per_list = |i: usize| serving.iter().filter(|n| **n != i).count();

    // Act: node a's next call for node c reaches node b, as when node a's
    // route still names the node the shard left.
    let mut lists = Vec::new();
    for i in 0..3 {
        eventually(Duration::from_secs(10), "a list through every node", || async {
            cluster.engine(i).products(100, None).await.ok()
        })
        .await;
    }
    cluster.wire.sent.lock().unwrap().clear();
    *cluster.wire.detour.lock().unwrap() = Some(("availability_batch", "c".into(), "b".into()));
    lists.push(cluster.engine(0).products(100, None).await.unwrap());
    let refused = cluster.wire.sent("availability");
    lists.push(cluster.engine(1).products(100, None).await.unwrap());
    lists.push(cluster.engine(2).products(100, None).await.unwrap());

    // Assert: every node's list is right; node b refused node c's entries,
    // which node a asked node c for again, one by one.
    for list in &lists {
        assert_eq!(list.len(), all.len());
        for p in list {
            assert_eq!(p.availability.total, want[&p.product.sku], "{}", p.product.sku);
        }
    }
    assert!(cluster.wire.detour.lock().unwrap().is_none(), "the detour was taken");
    assert_eq!(refused.len(), on_c.len(), "each refused entry asked again: {refused:?}");
    assert!(refused.iter().all(|(to, _)| to == "c"), "of node c: {refused:?}");
    // The other lists: one call per other node.
    let batches = cluster.wire.sent("availability_batch");
    assert_eq!(batches.len(), calls_per_list(0) + calls_per_list(1) + calls_per_list(2), "{batches:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_of_a_room_on_the_other_node_streams_through_this_one() {
    // Arrange: a paused room on node b's SKU, two carts of node a in line.
    let (cluster, sku) = setup().await;
    let (a, b) = (cluster.engine(0), cluster.engine(1));
    b.configure_waiting_room(&sku, Some(RoomConfig::new(50, 60).unwrap())).await.unwrap();
    a.control_room(&sku, RoomControl::Pause).await.unwrap();
    let (first, second) = (a.create_cart().await.unwrap(), a.create_cart().await.unwrap());
    let t1 = a.join_queue(&sku, first.id).await.unwrap().ticket;
    let t2 = a.join_queue(&sku, second.id).await.unwrap().ticket;

    // Act: both followed through node a; then the room admits.
    let mut one = a.follow_ticket(&sku, t1, first.id).await.unwrap();
    let mut two = a.follow_ticket(&sku, t2, second.id).await.unwrap();
    assert_eq!((one.view().state, one.view().position), (TicketState::Waiting, Some(1)));
    assert_eq!((two.view().state, two.view().position), (TicketState::Waiting, Some(2)));
    // Someone else's ticket cannot be followed.
    let stranger = a.create_cart().await.unwrap();
    assert_eq!(a.follow_ticket(&sku, t1, stranger.id).await.unwrap_err().to_string(), "ticket not found");
    cluster.wire.sent.lock().unwrap().clear();
    b.control_room(&sku, RoomControl::Resume).await.unwrap();

    // Assert: both streams see their ticket admitted, with its pass.
    for follow in [&mut one, &mut two] {
        tokio::time::timeout(Duration::from_secs(5), async {
            while follow.view().state == TicketState::Waiting {
                follow.changed().await.expect("the stream goes on while the ticket waits");
            }
        })
        .await
        .expect("the admission relayed in time");
        assert_eq!(follow.view().state, TicketState::Admitted);
        assert!(follow.view().pass_expires_at.is_some());
    }
    // One call per period carried both tickets, to node b.
    let polls = cluster.wire.sent("tickets");
    assert!(!polls.is_empty());
    for (to, call) in &polls {
        let PeerOp::Tickets { tickets, .. } = &call.op else { unreachable!() };
        assert_eq!((to.as_str(), tickets.len()), ("b", 2), "{call:?}");
    }
}
