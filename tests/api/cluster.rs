//! Cluster mode (`FLASHCORE_NODE_ID`) with real processes on one Postgres
//! database: two nodes share the shards (4 + 4 of 8), each sells only the
//! SKUs of its own shards and answers 503 `shard-elsewhere` for the others
//! (routing between nodes comes later), and when one is killed with SIGKILL
//! mid-sale the other takes its shards over once their leases expire (every
//! epoch + 1) and sells the rest: every acknowledged order is in the journal
//! and no SKU sells more than its stock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashcore_actors::ports::Journal;
use flashcore_domain::{Shards, Sku};
use flashcore_tests::{Process, eventually};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::ownership::Store;

const SHARDS: u64 = 8;
const SKUS: usize = 8;
const STOCK: u64 = 12;
const TTL_MS: u64 = 2_000;
const ADMIN: &str = "fck_ownership-test-admin-key-ownership-test";

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

/// One unit of `sku` through whichever node serves it: a cart there, the line,
/// the checkout; a 503 (`shard-elsewhere`, a node moving or gone) starts over
/// on the other node.
async fn buy_one(client: &Client, nodes: &[String], sku: &str, key: &str) -> Bought {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut at = 0;
    while Instant::now() < deadline {
        let node = &nodes[at % nodes.len()];
        at += 1;
        let Ok(res) = client.post(format!("{node}/v1/carts")).send().await else { continue };
        if res.status() != StatusCode::CREATED {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let cart: Value = res.json().await.unwrap_or_default();
        let (id, token) = (cart["cart_id"].as_str().unwrap_or_default(), cart["token"].as_str().unwrap_or_default());
        let put = client
            .put(format!("{node}/v1/carts/{id}/items/{sku}"))
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
        let checkout = client
            .post(format!("{node}/v1/carts/{id}/checkout"))
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
            _ => continue,
        }
    }
    Bought::GaveUp
}

/// Units of `sku` in the journal's orders.
async fn sold(journal: &dyn Journal, sku: &str) -> u64 {
    let orders = journal.orders(100_000, None).await.unwrap();
    orders.iter().flat_map(|o| &o.lines).filter(|l| l.sku.as_str() == sku).map(|l| u64::from(l.qty)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_shards_and_one_takes_over_a_killed_ones() {
    // Arrange: node a alone (every shard is its share), the products through it,
    // then node b, which takes half of the shards from it.
    let store = Store::postgres().await;
    let env = |id: &'static str| {
        store.with(&[("FLASHCORE_NODE_ID", id), ("FLASHCORE_SHARDS", "8"), ("FLASHCORE_DEMO", "false")])
    };
    let a = Process::start(&env("node-a")).await;
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
    let mut b = Process::start(&env("node-b")).await;

    // Assert: 4 + 4, both serving.
    eventually(Duration::from_secs(30), "the nodes to share the shards 4 + 4", || async {
        let map = try_shard_map(&a.base).await?;
        let of = |n: &str| map.values().filter(|(o, _)| o.as_deref() == Some(n)).count();
        let ready = get(&format!("{}/ready", a.base)).await.0 == StatusCode::OK
            && get(&format!("{}/ready", b.base)).await.0 == StatusCode::OK;
        (of("node-a") == 4 && of("node-b") == 4 && ready).then_some(())
    })
    .await;
    let map = shard_map(&a.base).await;
    let owner = |s: &str| map[&shard_of(s)].0.clone().unwrap();
    let on_b: Vec<String> = (0..SKUS).map(sku).filter(|s| owner(s) == "node-b").collect();
    assert!(!on_b.is_empty() && on_b.len() < SKUS, "8 SKUs land on both nodes: {map:?}");

    // Each node sells its own SKUs and refuses the other's.
    for s in (0..SKUS).map(sku) {
        let (mine, theirs) = if owner(&s) == "node-a" { (&a.base, &b.base) } else { (&b.base, &a.base) };
        let (status, p) = get(&format!("{mine}/v1/products/{s}")).await;
        assert_eq!((status, p["available"].as_u64()), (StatusCode::OK, Some(STOCK)), "{s} on its owner: {p}");
        let cart = flashcore_tests::Api::new(theirs.clone()).new_cart().await;
        let res = client()
            .put(format!("{theirs}/v1/carts/{}/items/{s}", cart.id))
            .bearer_auth(&cart.token)
            .json(&json!({ "quantity": 1 }))
            .send()
            .await
            .unwrap();
        flashcore_tests::assert_problem(res, 503, "shard-elsewhere").await;
    }

    // Act: buyers for every SKU through both nodes; node b is killed mid-sale.
    // A buyer stops when the journal has sold the SKU's stock (a 409 may only
    // mean that carts hold it, until their holds lapse), or after 90 s.
    let nodes = Arc::new(vec![a.base.clone(), b.base.clone()]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
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
                match buy_one(&c, &nodes, &sku(i), &format!("buyer-{i}-{round}")).await {
                    Bought::Order(order) => acked.lock().unwrap().push((sku(i), order)),
                    Bought::NoStock if sold(&*journal, &sku(i)).await >= STOCK => return,
                    Bought::NoStock => tokio::time::sleep(Duration::from_millis(100)).await,
                    Bought::GaveUp => {}
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), "orders on node b's SKUs", || async {
        let n = acked.lock().unwrap().iter().filter(|(s, _)| on_b.contains(s)).count();
        (n >= on_b.len()).then_some(())
    })
    .await;
    let epochs_before = shard_map(&a.base).await;
    b.signal("KILL");
    let killed = Instant::now();
    let _ = b.child.wait().await;
    let before = acked.lock().unwrap().len();
    assert!(before < SKUS * STOCK as usize, "the kill came mid-sale ({before} orders so far)");

    // Assert: node a takes every shard over (b's with epoch + 1) and sells the rest.
    eventually(Duration::from_secs(30), "node a to hold every shard", || async {
        let map = try_shard_map(&a.base).await?;
        let all = map.values().all(|(o, _)| o.as_deref() == Some("node-a"));
        (all && get(&format!("{}/ready", a.base)).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    eprintln!(
        "cluster: node a serves node b's shards {} ms after the kill (TTL {TTL_MS} ms)",
        killed.elapsed().as_millis()
    );
    let after = shard_map(&a.base).await;
    for (shard, (owner, epoch)) in &epochs_before {
        if owner.as_deref() == Some("node-b") {
            assert!(after[shard].1 > *epoch, "shard {shard}: taken over with a new epoch");
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > before, "node a sold after taking over");

    // Every acknowledged order is in the journal; every SKU sold exactly its stock.
    let orders = store.journal().await.orders(100_000, None).await.unwrap();
    let ids: std::collections::HashSet<String> = orders.iter().map(|o| o.id.to_string()).collect();
    for (_, order) in &acked {
        assert!(ids.contains(order), "acknowledged order {order} is not in the journal");
    }
    for s in (0..SKUS).map(sku) {
        assert_eq!(sold(&*store.journal().await, &s).await, STOCK, "{s}: the journal sold exactly the stock");
        eventually(Duration::from_secs(20), "node a's count to match the journal", || async {
            let p = get(&format!("{}/v1/products/{s}", a.base)).await.1;
            (p["available"].as_u64() == Some(0)).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn cluster_mode_needs_postgres_and_a_valid_node_id() {
    for (env, says) in [
        (vec![("FLASHCORE_NODE_ID", "node-a")], "needs the Postgres store"),
        (vec![("FLASHCORE_NODE_ID", "node-a"), ("FLASHCORE_STORE", "memory")], "needs the Postgres store"),
        (vec![("FLASHCORE_NODE_ID", "no spaces"), ("DATABASE_URL", "postgres://127.0.0.1/x")], "FLASHCORE_NODE_ID"),
    ] {
        let said = flashcore_tests::refused_start(&env).await;
        assert!(said.contains(says), "{env:?}: {said}");
    }
}
