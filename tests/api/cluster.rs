//! Cluster mode (`FLASHCORE_NODE_ID`) with real processes on one Postgres
//! database: three nodes share the shards, and any node answers any request
//! (work on another node's shard goes to it over the node port). A flash sale
//! driven through all three at once, with carts on one node buying SKUs of the
//! others, sells exactly the stock; when one node is killed with SIGKILL
//! mid-sale the others take its shards over once their leases expire (every
//! epoch + 1) and sell the rest: every acknowledged order is in the journal and
//! no SKU sells more than its stock.

use std::collections::BTreeMap;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_sell_through_any_node_and_survive_a_killed_one() {
    // Arrange: node a alone (every shard is its share), the products through
    // it, then nodes b and c, which take their shares from it.
    let store = Store::postgres().await;
    let a = Process::start(&env(&store, "node-a")).await;
    for i in 0..SKUS {
        let res = client()
            .put(format!("{}/v1/admin/products/{}", a.base, sku(i)))
            .bearer_auth(ADMIN)
            .json(&json!({ "title": sku(i), "price": { "amount": 500, "currency": "EUR" }, "total": STOCK }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "product {}: {}", sku(i), res.status());
    }
    let b = Process::start(&env(&store, "node-b")).await;
    let mut c = Process::start(&env(&store, "node-c")).await;
    let bases = [a.base.clone(), b.base.clone(), c.base.clone()];

    // Assert: 4 + 4 + 4, all serving.
    eventually(Duration::from_secs(45), "the nodes to share the shards 4 + 4 + 4", || async {
        let map = try_shard_map(&a.base).await?;
        let of = |n: &str| map.values().filter(|(o, _)| o.as_deref() == Some(n)).count();
        for base in &bases {
            if get(&format!("{base}/ready")).await.0 != StatusCode::OK {
                return None;
            }
        }
        (of("node-a") == 4 && of("node-b") == 4 && of("node-c") == 4).then_some(())
    })
    .await;
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
