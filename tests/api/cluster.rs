//! Cluster mode (`FLASHCORE_NODE_ID`) with real processes on one Postgres
//! database: three nodes share the shards, and any node answers any request
//! (work on another node's shard goes to it over the node port). A flash sale
//! driven through all three at once, with carts on one node buying SKUs of the
//! others, sells exactly the stock; when one node is killed with SIGKILL
//! mid-sale the others take its shards over once their leases expire (every
//! epoch + 1) and sell the rest: every acknowledged order is in the journal and
//! no SKU sells more than its stock. A node frozen with SIGSTOP mid-sale is
//! taken over the same way; when it wakes it stops serving (nothing it writes
//! under the lost leases lands), stands by and takes a fresh share, and a
//! fourth node then takes its share (3 + 3 + 3 + 3) while the sale runs out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashcore_actors::ports::Journal;
use flashcore_domain::{Shards, Sku};
use flashcore_tests::{Process, eventually};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::ownership::Store;

const SHARDS: u64 = 12;
const SKUS: usize = 12;
const STOCK: u64 = 8;
const TTL_MS: u64 = 2_000;
const ADMIN: &str = "fck_ownership-test-admin-key-ownership-test";
const SECRET: &str = "cluster-test-secret-cluster-test-secret-0123";

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

fn sku(i: usize) -> String {
    format!("CLUSTER-{i}")
}

fn shard_of(sku: &str) -> u64 {
    u64::from(Shards::new(SHARDS).unwrap().of_sku(&Sku::parse(sku).unwrap()).get())
}

fn shard_of_cart(cart: &str) -> u64 {
    u64::from(Shards::new(SHARDS).unwrap().of_cart(flashcore_domain::CartId::parse(cart).unwrap()).get())
}

async fn get(url: &str) -> (StatusCode, Value) {
    let res = client().get(url).bearer_auth(ADMIN).send().await.unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

/// The shard map as `base` shows it: shard → (owner node id, epoch); `None`
/// while the node does not serve (moving shards, taking them over).
async fn try_shard_map(base: &str) -> Option<BTreeMap<u64, (Option<String>, u64)>> {
    let (status, view) = get(&format!("{base}/v1/admin/cluster")).await;
    (status == StatusCode::OK).then(|| shard_map_of(&view))
}

async fn shard_map(base: &str) -> BTreeMap<u64, (Option<String>, u64)> {
    try_shard_map(base).await.expect("the node serves its cluster view")
}

fn shard_map_of(view: &Value) -> BTreeMap<u64, (Option<String>, u64)> {
    view["shard_map"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let owner = s["owner"].as_str().map(|o| o.split('#').next().unwrap_or(o).to_owned());
            (s["shard"].as_u64().unwrap(), (owner, s["epoch"].as_u64().unwrap()))
        })
        .collect()
}

/// What one attempt to buy got.
enum Bought {
    /// Acknowledged: the order id.
    Order(String),
    /// 409: no stock free now (sold, or held by carts whose holds may lapse).
    NoStock,
    /// Nothing acknowledged within the attempt's deadline.
    GaveUp,
}

/// One unit of `sku`: a cart on one node, the line through the next, the
/// checkout through the one after (each forwards to whoever serves the cart,
/// which reserves and prepares on whoever serves the SKU); a 503 (a node
/// moving or gone) starts over on another node.
async fn buy_one(client: &Client, nodes: &[String], sku: &str, key: &str, start: usize) -> Bought {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at = start;
    while Instant::now() < deadline {
        let first = at;
        at += 1;
        let node = |k: usize| &nodes[(first + k) % nodes.len()];
        let Ok(res) = client.post(format!("{}/v1/carts", node(0))).send().await else { continue };
        if res.status() != StatusCode::CREATED {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let cart: Value = res.json().await.unwrap_or_default();
        let (id, token) = (cart["cart_id"].as_str().unwrap_or_default(), cart["token"].as_str().unwrap_or_default());
        let put = client
            .put(format!("{}/v1/carts/{id}/items/{sku}", node(1)))
            .bearer_auth(token)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await;
        let Ok(put) = put else { continue };
        match put.status() {
            StatusCode::OK => {}
            StatusCode::CONFLICT => return Bought::NoStock,
            _ => continue,
        }
        // The checkout is retried with its key on the same cart (through any
        // node) until it is answered: a 503 may hide a written order.
        for k in 2..8 {
            let checkout = client
                .post(format!("{}/v1/carts/{id}/checkout", node(k)))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&json!({ "payment": { "token": "tok_visa" } }))
                .send()
                .await;
            let Ok(checkout) = checkout else { continue };
            match checkout.status() {
                StatusCode::CREATED => {
                    let order: Value = checkout.json().await.unwrap_or_default();
                    return order["order_id"].as_str().map_or(Bought::GaveUp, |o| Bought::Order(o.to_owned()));
                }
                StatusCode::CONFLICT => return Bought::NoStock,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Bought::GaveUp
}

/// Units of `sku` in the journal's orders.
async fn sold(journal: &dyn Journal, sku: &str) -> u64 {
    let orders = journal.orders(100_000, None).await.unwrap();
    orders.iter().flat_map(|o| &o.lines).filter(|l| l.sku.as_str() == sku).map(|l| u64::from(l.qty)).sum()
}

fn env<'a>(store: &'a Store, id: &'a str) -> Vec<(&'a str, &'a str)> {
    store.with(&[
        ("FLASHCORE_NODE_ID", id),
        ("FLASHCORE_SHARDS", "12"),
        ("FLASHCORE_DEMO", "false"),
        ("FLASHCORE_CLUSTER_ADDR", "127.0.0.1:0"),
        ("FLASHCORE_CLUSTER_SECRET", SECRET),
    ])
}

/// Nodes a, b and c on `store`, sharing the shards 4 + 4 + 4, all serving:
/// node a alone first (every shard is its share) with the products (`stock`
/// units each) made through it, then nodes b and c, which take their shares
/// from it.
async fn three_nodes(store: &Store, stock: u64) -> (Process, Process, Process) {
    let a = Process::start(&env(store, "node-a")).await;
    for i in 0..SKUS {
        let res = client()
            .put(format!("{}/v1/admin/products/{}", a.base, sku(i)))
            .bearer_auth(ADMIN)
            .json(&json!({ "title": sku(i), "price": { "amount": 500, "currency": "EUR" }, "total": stock }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "product {}: {}", sku(i), res.status());
    }
    let b = Process::start(&env(store, "node-b")).await;
    let c = Process::start(&env(store, "node-c")).await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    eventually(Duration::from_secs(45), "the nodes to share the shards 4 + 4 + 4", || async {
        let map = try_shard_map(&a.base).await?;
        for base in &bases {
            if get(&format!("{base}/ready")).await.0 != StatusCode::OK {
                return None;
            }
        }
        (held_by(&map, "node-a") == 4 && held_by(&map, "node-b") == 4 && held_by(&map, "node-c") == 4).then_some(())
    })
    .await;
    (a, b, c)
}

/// Shards `node` holds in `map`.
fn held_by(map: &BTreeMap<u64, (Option<String>, u64)>, node: &str) -> usize {
    map.values().filter(|(o, _)| o.as_deref() == Some(node)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_through_any_node_and_survive_a_killed_one() {
    // Arrange: 4 + 4 + 4, all serving.
    let store = Store::postgres().await;
    let (a, b, mut c) = three_nodes(&store, STOCK).await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];
    let map = shard_map(&a.base).await;
    let owner = |s: &str| map[&shard_of(s)].0.clone().unwrap();
    let on_c: Vec<String> = (0..SKUS).map(sku).filter(|s| owner(s) == "node-c").collect();
    assert!(!on_c.is_empty(), "some SKUs land on node c: {map:?}");

    // Any node answers for any SKU: its product, from whichever node serves it.
    for s in (0..SKUS).map(sku) {
        for base in &bases {
            let (status, p) = get(&format!("{base}/v1/products/{s}")).await;
            assert_eq!((status, p["available"].as_u64()), (StatusCode::OK, Some(STOCK)), "{s} via {base}: {p}");
        }
    }

    // One cart, made on node a, with a line of a SKU of every node, checked
    // out through node b: one order across the three.
    let spread: Vec<String> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| (0..SKUS).map(sku).find(|s| owner(s) == *n).expect("a SKU on every node"))
        .collect();
    let cart = flashcore_tests::Api::new(a.base.clone()).new_cart().await;
    for (s, base) in spread.iter().zip(bases.iter().cycle().skip(1)) {
        let res = client()
            .put(format!("{base}/v1/carts/{}/items/{s}", cart.id))
            .bearer_auth(&cart.token)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "line {s} via {base}: {}", res.text().await.unwrap_or_default());
    }
    let res = client()
        .post(format!("{}/v1/carts/{}/checkout", b.base, cart.id))
        .bearer_auth(&cart.token)
        .header("Idempotency-Key", "across-three-nodes")
        .json(&json!({ "payment": { "token": "tok_visa" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CREATED,
        "the checkout across nodes: {}",
        res.text().await.unwrap_or_default()
    );
    for s in &spread {
        eventually(Duration::from_secs(10), "the order's unit to show as sold on every node", || async {
            for base in &bases {
                let p = get(&format!("{base}/v1/products/{s}")).await.1;
                if p["available"].as_u64() != Some(STOCK - 1) {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let order: Value = client()
        .get(format!("{}/v1/carts/{}", c.base, cart.id))
        .bearer_auth(&cart.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order["status"], "checked_out", "the cart, read through node c: {order}");

    // Act: buyers for every SKU through all three nodes; node c is killed
    // mid-sale. A buyer stops when the journal has sold the SKU's stock (a 409
    // may only mean that carts hold it, until their holds lapse), or after 90 s.
    let nodes = Arc::new(bases.to_vec());
    let mut workers = Vec::new();
    for i in 0..SKUS {
        let (nodes, acked, journal) = (Arc::clone(&nodes), Arc::clone(&acked), store.journal().await);
        workers.push(tokio::spawn(async move {
            let c = client();
            let until = Instant::now() + Duration::from_secs(90);
            for round in 0.. {
                if Instant::now() > until {
                    return;
                }
                match buy_one(&c, &nodes, &sku(i), &format!("buyer-{i}-{round}"), i + round).await {
                    Bought::Order(order) => acked.lock().unwrap().push((sku(i), order)),
                    Bought::NoStock if sold(&*journal, &sku(i)).await >= STOCK => return,
                    Bought::NoStock => tokio::time::sleep(Duration::from_millis(100)).await,
                    Bought::GaveUp => {}
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), "orders on node c's SKUs", || async {
        let n = acked.lock().unwrap().iter().filter(|(s, _)| on_c.contains(s)).count();
        (n >= on_c.len()).then_some(())
    })
    .await;
    let epochs_before = shard_map(&a.base).await;
    c.signal("KILL");
    let killed = Instant::now();
    let _ = c.child.wait().await;
    let before = acked.lock().unwrap().len();
    assert!(before < SKUS * STOCK as usize - spread.len(), "the kill came mid-sale ({before} orders so far)");

    // Assert: nodes a and b take every shard over (c's with epoch + 1) and sell the rest.
    eventually(Duration::from_secs(30), "nodes a and b to hold every shard", || async {
        let map = try_shard_map(&a.base).await?;
        let all = map.values().all(|(o, _)| matches!(o.as_deref(), Some("node-a" | "node-b")));
        let ready = get(&format!("{}/ready", a.base)).await.0 == StatusCode::OK
            && get(&format!("{}/ready", b.base)).await.0 == StatusCode::OK;
        (all && ready).then_some(())
    })
    .await;
    eprintln!(
        "cluster: nodes a and b serve node c's shards {} ms after the kill (TTL {TTL_MS} ms)",
        killed.elapsed().as_millis()
    );
    let after = shard_map(&a.base).await;
    for (shard, (owner, epoch)) in &epochs_before {
        if owner.as_deref() == Some("node-c") {
            assert!(after[shard].1 > *epoch, "shard {shard}: taken over with a new epoch");
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before, "the cluster sold after the kill");

    // Every acknowledged order is in the journal; every SKU sold exactly its stock.
    let journal = store.journal().await;
    let orders = journal.orders(100_000, None).await.unwrap();
    let ids: std::collections::HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    for (_, order) in &acked {
        assert!(ids.contains(order), "acknowledged order {order} is not in the journal");
    }
    let live = [a.base.clone(), b.base.clone()];
    for s in (0..SKUS).map(sku) {
        assert_eq!(sold(&*journal, &s).await, STOCK, "{s}: the journal sold exactly the stock");
        for base in &live {
            eventually(Duration::from_secs(40), "every node's count to match the journal", || async {
                let p = get(&format!("{base}/v1/products/{s}")).await.1;
                (p["available"].as_u64() == Some(0)).then_some(())
            })
            .await;
        }
    }
}

/// Full owner ("node#generation") of every shard in a `/v1/admin/cluster` view.
fn owners_of(view: &Value) -> Vec<(u64, u64, Option<String>)> {
    view["shard_map"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|s| {
                    (s["shard"].as_u64().unwrap(), s["epoch"].as_u64().unwrap(), s["owner"].as_str().map(str::to_owned))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A cart made on `node` (so it lives in one of its shards) with a unit of
/// the first of `skus` that has one free, checked out with a slow payment
/// (`tok_slow`, 2 s): returns the cart's id and the checkout's answer to come,
/// once the checkout is inside the node's cart actor.
async fn slow_checkout(
    node: &Process,
    skus: &[String],
) -> (String, tokio::task::JoinHandle<reqwest::Result<StatusCode>>) {
    let res = client().post(format!("{}/v1/carts", node.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let cart: Value = res.json().await.unwrap();
    let (id, token) = (cart["cart_id"].as_str().unwrap().to_owned(), cart["token"].as_str().unwrap().to_owned());
    let mut put = false;
    for s in skus {
        let res = client()
            .put(format!("{}/v1/carts/{id}/items/{s}", node.base))
            .bearer_auth(&token)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::OK {
            put = true;
            break;
        }
    }
    assert!(put, "none of {skus:?} had a unit free for the slow checkout");
    let request = client()
        .post(format!("{}/v1/carts/{id}/checkout", node.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", "slow-on-the-frozen-node")
        .json(&json!({ "payment": { "token": "tok_slow" } }))
        .timeout(Duration::from_secs(40));
    let slow = tokio::spawn(async move { request.send().await.map(|r| r.status()) });
    eventually(Duration::from_secs(10), "the slow checkout to be in the cart's actor", || async {
        let actors = get(&format!("{}/v1/admin/actors", node.base)).await.1;
        let carts = actors["supervisors"].as_array()?.iter().find(|k| k["kind"] == "cart")?.clone();
        carts["hot"].as_array()?.iter().any(|h| h[0] == id.as_str()).then_some(())
    })
    .await;
    (id, slow)
}

/// Samples the `/v1/admin/cluster` of every node in `rotation` until `stop`:
/// every owner each (shard, epoch) was ever seen with.
fn watch_shard_maps(
    rotation: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<(u64, u64), BTreeSet<String>>> {
    tokio::spawn(async move {
        let quick = Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let mut seen: BTreeMap<(u64, u64), BTreeSet<String>> = BTreeMap::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let nodes = rotation.lock().unwrap().clone();
            for base in nodes {
                let Ok(res) = quick.get(format!("{base}/v1/admin/cluster")).bearer_auth(ADMIN).send().await else {
                    continue;
                };
                let Ok(view) = res.json::<Value>().await else { continue };
                for (shard, epoch, owner) in owners_of(&view) {
                    if let Some(owner) = owner {
                        seen.entry((shard, epoch)).or_default().insert(owner);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        seen
    })
}

/// A buyer per SKU, each buying through the nodes in `rotation` (what a load
/// balancer sends traffic to) and only with a ticket (one per order, given
/// back when the attempt sold nothing), until the journal has sold its SKU's
/// stock or 120 s have passed.
async fn ticketed_buyers(
    store: &Store,
    rotation: &Arc<Mutex<Vec<String>>>,
    tickets: &Arc<tokio::sync::Semaphore>,
    acked: &Arc<Mutex<Vec<(String, String)>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut workers = Vec::new();
    for i in 0..SKUS {
        let (rotation, tickets, acked) = (Arc::clone(rotation), Arc::clone(tickets), Arc::clone(acked));
        let journal = store.journal().await;
        workers.push(tokio::spawn(async move {
            let c = client();
            let until = Instant::now() + Duration::from_secs(120);
            for round in 0.. {
                let Ok(Ok(ticket)) = tokio::time::timeout_at(until.into(), tickets.acquire()).await else { return };
                let nodes = rotation.lock().unwrap().clone();
                match buy_one(&c, &nodes, &sku(i), &format!("frozen-{i}-{round}"), i + round).await {
                    Bought::Order(order) => {
                        ticket.forget();
                        acked.lock().unwrap().push((sku(i), order));
                    }
                    Bought::NoStock if sold(&*journal, &sku(i)).await >= STOCK => return,
                    Bought::NoStock => tokio::time::sleep(Duration::from_millis(100)).await,
                    Bought::GaveUp => {}
                }
            }
        }));
    }
    workers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_is_fenced_and_a_fourth_node_takes_a_share() {
    // Arrange: 4 + 4 + 4, and a sale through the three, ticket by ticket.
    let store = Store::postgres().await;
    let (a, b, c) = three_nodes(&store, STOCK).await;
    let at_start = shard_map(&a.base).await;
    let of_c: BTreeSet<u64> =
        at_start.iter().filter(|(_, (o, _))| o.as_deref() == Some("node-c")).map(|(s, _)| *s).collect();
    let on_c: Vec<String> = (0..SKUS).map(sku).filter(|s| of_c.contains(&shard_of(s))).collect();
    assert!(!on_c.is_empty(), "some SKUs land on node c: {at_start:?}");
    let rotation = Arc::new(Mutex::new(vec![a.base.clone(), b.base.clone(), c.base.clone()]));
    let tickets = Arc::new(tokio::sync::Semaphore::new(0));
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let workers = ticketed_buyers(&store, &rotation, &tickets, &acked).await;
    let acked_on = |skus: &[String], from: usize| {
        acked.lock().unwrap().iter().skip(from).filter(|(s, _)| skus.contains(s)).count()
    };
    tickets.add_permits(3 * SKUS);
    eventually(Duration::from_secs(30), "orders on node c's SKUs", || async {
        (acked_on(&on_c, 0) >= on_c.len()).then_some(())
    })
    .await;
    // A checkout on node c, of its own cart and SKU, waits on a slow payment.
    let (slow_cart, slow) = slow_checkout(&c, &on_c).await;
    assert!(of_c.contains(&shard_of_cart(&slow_cart)), "a cart made on node c lives in one of its shards");

    // Act: freeze node c mid-sale (the load balancer takes it out of rotation).
    let held_by_c: BTreeMap<u64, u64> = eventually(Duration::from_secs(10), "node c's leases", || async {
        let map = try_shard_map(&a.base).await?;
        Some(map.into_iter().filter(|(_, (o, _))| o.as_deref() == Some("node-c")).map(|(s, (_, e))| (s, e)).collect())
    })
    .await;
    assert_eq!(held_by_c.keys().copied().collect::<BTreeSet<u64>>(), of_c, "node c's shards before the freeze");
    rotation.lock().unwrap().retain(|n| *n != c.base);
    c.signal("STOP");
    let frozen = Instant::now();
    let before = acked.lock().unwrap().len();
    assert!(before < SKUS * STOCK as usize, "the freeze came mid-sale ({before} orders so far)");
    let stop_watching = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_shard_maps(Arc::clone(&rotation), Arc::clone(&stop_watching));
    tickets.add_permits(2 * SKUS);

    // Assert: once node c's leases lapse, nodes a and b hold every shard (node
    // c's with a higher epoch) and sell, node c's SKUs too.
    let taken = eventually(Duration::from_secs(30), "nodes a and b to hold every shard", || async {
        let map = try_shard_map(&a.base).await?;
        let all = map.values().all(|(o, _)| matches!(o.as_deref(), Some("node-a" | "node-b")));
        let ready = get(&format!("{}/ready", a.base)).await.0 == StatusCode::OK
            && get(&format!("{}/ready", b.base)).await.0 == StatusCode::OK;
        (all && ready).then_some(map)
    })
    .await;
    let takeover = frozen.elapsed();
    let after_takeover = Mark::now(&store).await;
    eprintln!(
        "cluster: nodes a and b serve frozen node c's shards {} ms after SIGSTOP (TTL {TTL_MS} ms)",
        takeover.as_millis()
    );
    // Node c renewed at most a third of the TTL before it froze: not before then.
    assert!(takeover >= Duration::from_millis(TTL_MS - TTL_MS / 3), "node c's leases were taken before they lapsed");
    for s in &of_c {
        assert!(taken[s].1 > held_by_c[s], "shard {s}: taken over from node c with a new epoch ({taken:?})");
    }
    eventually(Duration::from_secs(30), "nodes a and b to sell node c's SKUs while it is frozen", || async {
        (acked_on(&on_c, before) >= 1 && acked.lock().unwrap().len() >= before + SKUS).then_some(())
    })
    .await;
    let during = acked.lock().unwrap().len() - before;

    // Act: node c wakes up and goes back into rotation.
    c.signal("CONT");
    let resumed = Instant::now();
    rotation.lock().unwrap().push(c.base.clone());
    tickets.add_permits(SKUS);

    // Assert: node c's late checkout is not acknowledged and never reaches the
    // journal; node c loses its leases, stands by, and takes a fresh share
    // (new epochs) from nodes a and b.
    let late = slow.await.unwrap();
    assert!(
        matches!(late, Ok(StatusCode::SERVICE_UNAVAILABLE)),
        "the frozen node's checkout must not be acknowledged: {late:?}"
    );
    let slow_order =
        store.journal().await.order_for_cart(flashcore_domain::CartId::parse(&slow_cart).unwrap()).await.unwrap();
    assert!(slow_order.is_none(), "the frozen node's late order reached the journal: {slow_order:?}");
    let fresh = eventually(Duration::from_secs(30), "node c to serve a fresh share", || async {
        let (status, view) = get(&format!("{}/v1/admin/cluster", c.base)).await;
        let map = (status == StatusCode::OK).then(|| shard_map_of(&view))?;
        let ready = get(&format!("{}/ready", c.base)).await.0 == StatusCode::OK;
        (ready && held_by(&map, "node-c") > 0 && view["this_node"]["losses"].as_u64() >= Some(1)).then_some(map)
    })
    .await;
    eprintln!("cluster: node c serves a fresh share {} ms after SIGCONT", resumed.elapsed().as_millis());
    for (s, (owner, epoch)) in &fresh {
        if owner.as_deref() == Some("node-c") {
            assert!(*epoch > taken[s].1, "shard {s}: node c took it with a new epoch ({fresh:?})");
        }
    }
    // Whether node c tries a write at all once it wakes is a race (its own
    // deadline may stop it first, or its cart calls time out and the engine is
    // dropped before the slow checkout gets to the journal); any it tries is
    // refused, by itself or by the store (see the journal checks at the end).
    let by_node = c.metric("flashcore_fenced_writes_total", &[("by", "node")]).await;
    let by_store = c.metric("flashcore_fenced_writes_total", &[("by", "store")]).await;
    eprintln!("cluster: node c's late writes fenced: {by_node} by the node itself, {by_store} by the store");
    assert!(c.metric("flashcore_lease_losses_total", &[]).await >= 1.0, "node c counted its lease loss");
    // In its log: the loss, the engine dropped, standing by, then the new share taken and served.
    let steps = [
        "lease lost: this node stops serving",
        "engine dropped; standing by",
        "leases acquired; recovering",
        "serving",
    ];
    let lost = last_logged(&c, steps[0]).expect("node c logged its lease loss");
    let mut at = lost;
    for step in &steps[1..] {
        at = logged_after(&c, step, at).unwrap_or_else(|| panic!("node c did not log {step:?} after losing its lease"));
    }
    eprintln!("cluster: node c lost its lease: {}", c.logs.lock().unwrap()[lost]);

    // Act: a fourth node joins.
    let d = Process::start(&env(&store, "node-d")).await;
    rotation.lock().unwrap().push(d.base.clone());
    let joined = Instant::now();

    // Assert: the four share the shards 3 + 3 + 3 + 3 (placement's quotas), all serving.
    let bases = [a.base.clone(), b.base.clone(), c.base.clone(), d.base.clone()];
    eventually(Duration::from_secs(45), "the four nodes to share the shards 3 + 3 + 3 + 3", || async {
        let map = try_shard_map(&d.base).await?;
        for base in &bases {
            if get(&format!("{base}/ready")).await.0 != StatusCode::OK {
                return None;
            }
        }
        ["node-a", "node-b", "node-c", "node-d"].iter().all(|n| held_by(&map, n) == 3).then_some(())
    })
    .await;
    eprintln!("cluster: node d holds its 3 shards {} ms after it started", joined.elapsed().as_millis());

    // The sale runs to its end.
    tickets.add_permits(SKUS * STOCK as usize);
    for w in workers {
        w.await.unwrap();
    }
    stop_watching.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = watcher.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "cluster: {before} orders before the freeze, {during} while node c was frozen, {} after; {} (shard, epoch) pairs seen",
        acked.len() - before - during,
        seen.len()
    );
    assert!(during >= SKUS && acked.len() > before + during, "the cluster sold while node c was frozen and after");

    // Never two owners of one shard at one epoch, as any node showed it.
    let doubled: Vec<_> = seen.iter().filter(|(_, owners)| owners.len() > 1).collect();
    assert!(doubled.is_empty(), "one shard, one epoch, two owners: {doubled:?}");
    // Every acknowledged order is in the journal; every SKU sold exactly its stock.
    let journal = store.journal().await;
    let orders = journal.orders(100_000, None).await.unwrap();
    let ids: std::collections::HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    for (_, order) in &acked {
        assert!(ids.contains(order), "acknowledged order {order} is not in the journal");
    }
    // Nothing written under node c's lost leases landed after the take-over,
    // and no write of a shard's older epoch after one of its newer epoch.
    after_takeover.assert_nothing_landed_under(&held_by_c).await;
    assert_epochs_never_go_back(&store).await;
    for s in (0..SKUS).map(sku) {
        assert_eq!(sold(&*journal, &s).await, STOCK, "{s}: the journal sold exactly the stock");
        for base in &bases {
            eventually(Duration::from_secs(40), "every node's count to match the journal", || async {
                let p = get(&format!("{base}/v1/products/{s}")).await.1;
                (p["available"].as_u64() == Some(0)).then_some(())
            })
            .await;
        }
    }
}

/// True when the JSON log `line` has `message` (at the top or in `fields`, as [`Process::logged`] reads).
fn is_message(line: &str, message: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["message"] == message || v["fields"]["message"] == message)
}

/// Where `p` last logged `message` (a line of [`Process::logs`]).
fn last_logged(p: &Process, message: &str) -> Option<usize> {
    p.logs.lock().unwrap().iter().rposition(|l| is_message(l, message))
}

/// Where `p` first logged `message` after line `after`.
fn logged_after(p: &Process, message: &str, after: usize) -> Option<usize> {
    p.logs.lock().unwrap().iter().skip(after + 1).position(|l| is_message(l, message)).map(|i| i + after + 1)
}

/// Where the store stood at one instant: the journal's last position and the
/// database's clock (ms).
struct Mark<'a> {
    store: &'a Store,
    pos: i64,
    at_ms: i64,
}

impl<'a> Mark<'a> {
    async fn now(store: &'a Store) -> Mark<'a> {
        let pool = sqlx::PgPool::connect(&store.url).await.unwrap();
        let (pos, at_ms): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT last_value FROM journal_pos_seq), floor(extract(epoch FROM clock_timestamp()) * 1000)::int8",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        Mark { store, pos, at_ms }
    }

    /// No journal entry (order, stock fact) nor snapshot written since this
    /// mark carries the epoch of a lease in `lost` (shard → epoch): whatever
    /// its holder wrote under them late never landed.
    async fn assert_nothing_landed_under(&self, lost: &BTreeMap<u64, u64>) {
        let pool = sqlx::PgPool::connect(&self.store.url).await.unwrap();
        let facts: Vec<(String, i64)> = sqlx::query_as("SELECT sku, epoch FROM stock_facts WHERE pos > $1")
            .bind(self.pos)
            .fetch_all(&pool)
            .await
            .unwrap();
        let orders: Vec<(String, i64)> = sqlx::query_as("SELECT cart_id::text, epoch FROM orders WHERE pos > $1")
            .bind(self.pos)
            .fetch_all(&pool)
            .await
            .unwrap();
        let snapshots: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT kind, id, epoch FROM snapshots WHERE floor(extract(epoch FROM updated_at) * 1000)::int8 >= $1",
        )
        .bind(self.at_ms)
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        let written = facts
            .iter()
            .map(|(sku, e)| (format!("stock fact of {sku}"), shard_of(sku), *e))
            .chain(orders.iter().map(|(cart, e)| (format!("order of cart {cart}"), shard_of_cart(cart), *e)))
            .chain(snapshots.iter().map(|(kind, id, e)| {
                let shard = if kind == "cart" { shard_of_cart(id) } else { shard_of(id) };
                (format!("{kind} snapshot {id}"), shard, *e)
            }));
        let late: Vec<_> =
            written.filter(|(_, shard, e)| lost.get(shard).is_some_and(|l| i64::try_from(*l) == Ok(*e))).collect();
        assert!(late.is_empty(), "written under a lost lease after the take-over: {late:?}");
    }
}

/// In journal order, each SKU's stock facts and each cart shard's orders were
/// written under epochs that never go back: nothing a node wrote under a lease
/// it had lost landed after the new owner's first write.
async fn assert_epochs_never_go_back(store: &Store) {
    let pool = sqlx::PgPool::connect(&store.url).await.unwrap();
    let facts: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT sku, epoch, pos FROM stock_facts ORDER BY pos").fetch_all(&pool).await.unwrap();
    let orders: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT cart_id::text, epoch, pos FROM orders ORDER BY pos").fetch_all(&pool).await.unwrap();
    pool.close().await;
    let by_cart_shard =
        orders.into_iter().map(|(cart, epoch, pos)| (format!("cart shard {}", shard_of_cart(&cart)), epoch, pos));
    let mut last: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (key, epoch, pos) in facts.into_iter().map(|(s, e, p)| (format!("SKU {s}"), e, p)).chain(by_cart_shard) {
        if let Some((was, at)) = last.get(&key) {
            assert!(epoch >= *was, "{key}: epoch {epoch} at {pos} after epoch {was} at {at}");
        }
        last.insert(key, (epoch, pos));
    }
}

/// The next `event: ticket` of an SSE body (its JSON data), within 10 s.
async fn next_ticket(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
) -> Value {
    use futures::StreamExt;
    loop {
        if let Some(end) = seen.find("\n\n") {
            let event: String = seen.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                assert!(event.contains("event: ticket"), "{event}");
                return serde_json::from_str(data.trim()).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next()).await.expect("an event in time");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on").unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_ticket_streams_work_through_any_node() {
    // Arrange: 4 + 4 + 4, all serving.
    let store = Store::postgres().await;
    let (a, b, c) = three_nodes(&store, STOCK).await;
    let map = shard_map(&a.base).await;
    let owner = |s: &str| map[&shard_of(s)].0.clone().unwrap();

    // A product list through any node: every count, one call per other node.
    for (node, name) in [(&a, "node-a"), (&b, "node-b"), (&c, "node-c")] {
        let others: BTreeSet<String> = (0..SKUS).map(|k| owner(&sku(k))).filter(|o| o != name).collect();
        let calls = |text: &str, op: &str| {
            flashcore_tests::metric_sum(text, "flashcore_forwarded_requests_total", &[("op", op)])
        };
        // Every list is right; once the node's routes are those of the
        // settled map (read every renewal round), a list costs one call per
        // other node and none per SKU.
        eventually(Duration::from_secs(10), &format!("a list via {name} to ask each other node once"), || async {
            let before = node.metrics().await;
            let (status, page) = get(&format!("{}/v1/products?limit=100", node.base)).await;
            let after = node.metrics().await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let items = page["items"].as_array().unwrap();
            assert_eq!(items.len(), SKUS, "{page}");
            assert!(items.iter().all(|p| p["available"].as_u64() == Some(STOCK)), "via {name}: {page}");
            let batches = calls(&after, "availability_batch") - calls(&before, "availability_batch");
            let singles = calls(&after, "availability") - calls(&before, "availability");
            (batches == others.len() as f64 && singles == 0.0).then_some(())
        })
        .await;
    }

    // A waiting room on a SKU of node c's, made and paused through node a.
    let room_sku = (0..).map(|i| format!("ROOM-{i}")).find(|s| owner(s) == "node-c").unwrap();
    let res = client()
        .put(format!("{}/v1/admin/products/{room_sku}", a.base))
        .bearer_auth(ADMIN)
        .json(&json!({ "title": "room", "price": { "amount": 500, "currency": "EUR" }, "total": 5,
            "waiting_room": { "admit_per_second": 50, "pass_ttl_secs": 60 } }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "product with a room: {}", res.status());
    let admin_post = |base: &str, what: &str| {
        client().post(format!("{base}/v1/admin/products/{room_sku}/queue/{what}")).bearer_auth(ADMIN).send()
    };
    assert_eq!(admin_post(&a.base, "pause").await.unwrap().status(), StatusCode::OK);
    let cart = flashcore_tests::Api::new(a.base.clone()).new_cart().await;
    let res = client()
        .post(format!("{}/v1/products/{room_sku}/queue", a.base))
        .bearer_auth(&cart.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let ticket = res.json::<Value>().await.unwrap()["ticket_id"].as_str().unwrap().to_owned();

    // Act: the ticket's stream through node b (neither the cart's nor the
    // room's node); the room resumes through node c. (A client without a
    // whole-request timeout: the stream stays open; each event has its own.)
    let res = Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{}/v1/products/{room_sku}/queue/{ticket}/events", b.base))
        .bearer_auth(&cart.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let (mut body, mut seen) = (Box::pin(res.bytes_stream()), String::new());
    let first = next_ticket(&mut body, &mut seen).await;
    assert_eq!((first["state"].as_str(), first["position"].as_u64()), (Some("waiting"), Some(1)), "{first}");
    assert_eq!(admin_post(&c.base, "resume").await.unwrap().status(), StatusCode::OK);

    // Assert: the stream shows the admission, with a pass that buys through node a.
    let admitted = loop {
        let t = next_ticket(&mut body, &mut seen).await;
        if t["state"] != "waiting" {
            break t;
        }
    };
    assert_eq!(admitted["state"], "admitted", "{admitted}");
    let pass = admitted["pass"].as_str().expect("an admitted ticket carries its pass");
    let res = client()
        .put(format!("{}/v1/carts/{}/items/{room_sku}", a.base, cart.id))
        .bearer_auth(&cart.token)
        .header("Waiting-Room-Pass", pass)
        .json(&json!({ "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap_or_default());
}

#[tokio::test]
async fn cluster_mode_needs_postgres_a_valid_node_id_and_the_node_port() {
    for (env, says) in [
        (vec![("FLASHCORE_NODE_ID", "node-a")], "needs the Postgres store"),
        (vec![("FLASHCORE_NODE_ID", "node-a"), ("FLASHCORE_STORE", "memory")], "needs the Postgres store"),
        (vec![("FLASHCORE_NODE_ID", "no spaces"), ("DATABASE_URL", "postgres://127.0.0.1/x")], "FLASHCORE_NODE_ID"),
        (vec![("FLASHCORE_NODE_ID", "node-a"), ("DATABASE_URL", "postgres://127.0.0.1/x")], "FLASHCORE_CLUSTER_ADDR"),
    ] {
        let said = flashcore_tests::refused_start(&env).await;
        assert!(said.contains(says), "{env:?}: {said}");
    }
}

/// What the buyers of the rolling restart saw: requests sent, and those that
/// failed (a 5xx, a 503 with `Retry-After` included, or no answer).
#[derive(Default)]
struct Seen {
    requests: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    /// The failures by status (0: no answer) and problem code.
    why: Mutex<BTreeMap<String, u64>>,
    /// Requests in flight by node, as a load balancer counts them to drain a
    /// node it takes out of the rotation.
    busy: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    /// Sends `req` to the node at `base`, counted in flight until answered,
    /// then counted as by [`Seen::count`].
    async fn send(&self, what: &str, base: &str, req: reqwest::RequestBuilder) -> Option<reqwest::Response> {
        *self.busy.lock().unwrap().entry(base.to_owned()).or_default() += 1;
        let res = req.send().await;
        *self.busy.lock().unwrap().entry(base.to_owned()).or_default() -= 1;
        self.count(what, res).await
    }

    /// Waits until nothing is in flight to the node at `base` (a load
    /// balancer's connection draining).
    async fn drained(&self, base: &str) {
        eventually(Duration::from_secs(30), "the node out of the rotation drained", || async {
            (self.busy.lock().unwrap().get(base).copied().unwrap_or(0) == 0).then_some(())
        })
        .await;
    }

    /// Counts `res`; `Some` with the answer when it was not a failure.
    async fn count(&self, what: &str, res: Result<reqwest::Response, reqwest::Error>) -> Option<reqwest::Response> {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        let why = match res {
            Ok(r) if !r.status().is_server_error() => return Some(r),
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                format!(
                    "{what}: {status} {} {}",
                    body["code"].as_str().unwrap_or(""),
                    body["detail"].as_str().unwrap_or("")
                )
            }
            Err(e) => format!("{what}: no answer ({})", if e.is_connect() { "connect" } else { "other" }),
        };
        self.failed.fetch_add(1, Relaxed);
        *self.why.lock().unwrap().entry(why).or_default() += 1;
        None
    }
}

/// One buyer of the rolling restart: a cart through one node, a line through
/// the next, the checkout through the one after, retried with its key until
/// it is answered. Every request is counted in `seen`.
async fn buy_counted(
    c: &Client,
    nodes: &std::sync::RwLock<Vec<String>>,
    sku: &str,
    key: &str,
    at: usize,
    seen: &Seen,
) -> Option<String> {
    // Each request goes to a node of the rotation as it is at that moment.
    let node = |k: usize| {
        let nodes = nodes.read().unwrap();
        nodes[(at + k) % nodes.len()].clone()
    };
    let base = node(0);
    let cart: Value = seen.send("create cart", &base, c.post(format!("{base}/v1/carts"))).await?.json().await.ok()?;
    let (id, token) = (cart["cart_id"].as_str()?, cart["token"].as_str()?);
    let base = node(1);
    let put = c.put(format!("{base}/v1/carts/{id}/items/{sku}")).bearer_auth(token).json(&json!({ "quantity": 1 }));
    if seen.send("add line", &base, put).await?.status() != StatusCode::OK {
        return None;
    }
    for k in 2..40 {
        let base = node(k);
        let checkout = c
            .post(format!("{base}/v1/carts/{id}/checkout"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({ "payment": { "token": "tok_visa" } }));
        match seen.send("checkout", &base, checkout).await {
            Some(r) if r.status() == StatusCode::CREATED => {
                return r.json::<Value>().await.ok()?["order_id"].as_str().map(str::to_owned);
            }
            Some(_) => return None,
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_acknowledged_order() {
    // Arrange: 4 + 4 + 4, and buyers through all three nodes.
    const PLENTY: u64 = 1_000;
    let store = Store::postgres().await;
    let (a, b, c) = three_nodes(&store, PLENTY).await;
    let names = ["node-a", "node-b", "node-c"];
    let mut procs = [a, b, c];
    let nodes = Arc::new(std::sync::RwLock::new(procs.iter().map(|p| p.base.clone()).collect::<Vec<_>>()));
    let seen = Arc::new(Seen::default());
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (nodes, seen, acked, stop) = (Arc::clone(&nodes), Arc::clone(&seen), Arc::clone(&acked), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let c = client();
            for round in 0.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let key = format!("rolling-{w}-{round}");
                if let Some(order) = buy_counted(&c, &nodes, &sku((w + round) % SKUS), &key, w + round, &seen).await {
                    acked.lock().unwrap().push(order);
                }
            }
        }));
    }
    // And shoppers reading products through every node of the rotation (a
    // product's counts come from its SKU's node), paced at ~500 reads/s each.
    for r in 0..8 {
        let (nodes, seen, stop) = (Arc::clone(&nodes), Arc::clone(&seen), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut pace = tokio::time::interval(Duration::from_millis(2));
            for i in r.. {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                pace.tick().await;
                let node = {
                    let nodes = nodes.read().unwrap();
                    nodes[i % nodes.len()].clone()
                };
                let read = c.get(format!("{node}/v1/products/{}", sku(i % SKUS)));
                let _ = seen.send("read product", &node, read).await;
            }
        }));
    }
    let orders_now = || acked.lock().unwrap().len();
    eventually(Duration::from_secs(20), "the sale under way", || async { (orders_now() >= 20).then_some(()) }).await;

    // Act: each node in turn stops gracefully (hands its shards off) and
    // starts again under the same name, while the buyers go on; twice round.
    let mut gone = Vec::new();
    for i in (0..names.len()).cycle().take(2 * names.len()) {
        let before = orders_now();
        // As a load balancer does: the node leaves the rotation first, and
        // comes back once it is ready again.
        let others: Vec<String> =
            procs.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| p.base.clone()).collect();
        *nodes.write().unwrap() = others;
        seen.drained(&procs[i].base).await;
        procs[i].signal("TERM");
        let _ = tokio::time::timeout(Duration::from_secs(30), procs[i].child.wait()).await.expect("a graceful stop");
        gone.push(Arc::clone(&procs[i].logs));
        procs[i] = Process::start(&env(&store, names[i])).await;
        let bases: Vec<String> = procs.iter().map(|p| p.base.clone()).collect();
        *nodes.write().unwrap() = bases.clone();
        eventually(Duration::from_secs(45), "the restarted node back in its share", || async {
            let map = try_shard_map(&bases[0]).await?;
            for base in &bases {
                if get(&format!("{base}/ready")).await.0 != StatusCode::OK {
                    return None;
                }
            }
            names.iter().all(|n| held_by(&map, n) == 4).then_some(())
        })
        .await;
        eventually(Duration::from_secs(20), "orders after the restart", || async {
            (orders_now() > before + 5).then_some(())
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // Assert: every acknowledged order is in the journal, nothing oversold.
    let journal = store.journal().await;
    let orders = journal.orders(100_000, None).await.unwrap();
    let ids: std::collections::HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    let acked = acked.lock().unwrap().clone();
    for order in &acked {
        assert!(ids.contains(order), "acknowledged order {order} is not in the journal");
    }
    for s in (0..SKUS).map(sku) {
        assert!(sold(&*journal, &s).await <= PLENTY, "{s}: oversold");
    }
    let (requests, failed) = (
        seen.requests.load(std::sync::atomic::Ordering::Relaxed),
        seen.failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    let why = seen.why.lock().unwrap().clone();
    eprintln!(
        "rolling restart: {} orders acknowledged, {requests} requests, {failed} failed ({:.2} %): {why:?}",
        acked.len(),
        100.0 * failed as f64 / requests.max(1) as f64,
    );
    // DEBUG_ROLLING=1: the nodes' lines about shards and leases, and their
    // warnings and errors, in time order (what a failure needs explained).
    if failed > 0 && std::env::var("DEBUG_ROLLING").is_ok() {
        let mut all: Vec<String> = Vec::new();
        for logs in gone.iter().chain(procs.iter().map(|p| &p.logs)) {
            all.extend(logs.lock().unwrap().iter().cloned());
        }
        all.sort();
        for l in all {
            if l.contains("WARN")
                || l.contains("ERROR")
                || l.contains("shard")
                || l.contains("lease")
                || l.contains("serving")
                || l.contains("handed")
            {
                eprintln!("LOG {}", &l[..l.len().min(400)]);
            }
        }
    }
    assert!(requests >= 1_000, "enough requests for a rate: {requests}");
    assert!(failed * 1_000 <= requests, "at most 0.1 % of requests failed: {failed} of {requests}: {why:?}");
}
