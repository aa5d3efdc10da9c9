//! Bulk recovery of a store shaped like the scale benchmark's (issue 13), with
//! small counts: SKUs with snapshots and orders before and after them, and many
//! cart snapshots. The real binary starts on it, after a `kill -9` and after a
//! graceful stop; every time every SKU's availability must be what the journal
//! says (`total − sold`), without an actor started per SKU.

use std::collections::HashMap;
use std::time::Duration;

use flashcore_http::config::StoreKind;
use flashcore_tests::Process;
use flashcore_tests::scale::{self, Shape};
use reqwest::StatusCode;
use serde_json::Value;

use crate::ownership::Store;

const SHAPE: Shape = Shape { skus: 240, carts: 1_500, orders: 1_000 };

/// Units sold per SKU, summed over every order in the journal.
async fn sold_per_sku(store: &Store) -> HashMap<String, u64> {
    let orders = store.journal().await.orders(100_000, None).await.unwrap();
    let mut sold = HashMap::new();
    for line in orders.iter().flat_map(|o| &o.lines) {
        *sold.entry(line.sku.to_string()).or_insert(0) += u64::from(line.qty);
    }
    sold
}

/// Every product, through the paged list (`limit` 100).
async fn all_products(p: &Process) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = p.url("/v1/products?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let res = p.client.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let page: Value = res.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// SKU actors running now.
async fn active_skus(p: &Process) -> u64 {
    let actors = p.admin_get("/v1/admin/actors").await;
    let sku = actors["supervisors"].as_array().unwrap().iter().find(|s| s["kind"] == "sku").unwrap().clone();
    sku["active"].as_u64().unwrap()
}

/// Every SKU's `available` and `total`, as served, agree with the journal and
/// with what was seeded plus `bought`; the seeded SKUs are all there.
async fn assert_every_sku_matches_the_journal(p: &Process, store: &Store, bought: &HashMap<String, u64>, when: &str) {
    let journal = sold_per_sku(store).await;
    let products = all_products(p).await;
    assert_eq!(products.len(), SHAPE.skus, "{when}: every seeded SKU is listed");
    for (i, product) in products.iter().enumerate() {
        let sku = scale::sku(i).to_string();
        assert_eq!(product["sku"], sku.as_str(), "{when}: listed in SKU order");
        let sold = journal.get(&sku).copied().unwrap_or(0);
        assert_eq!(sold, SHAPE.sold(i) + bought.get(&sku).copied().unwrap_or(0), "{when}: {sku} sold in the journal");
        assert_eq!(product["total"].as_u64(), Some(SHAPE.total()), "{when}: {sku} total");
        assert_eq!(product["available"].as_u64(), Some(SHAPE.total() - sold), "{when}: {sku} available = total − sold");
    }
}

/// Buys one unit of `sku` through a new cart; counts it in `bought`.
async fn buy_one(p: &Process, sku: &str, key: &str, bought: &mut HashMap<String, u64>) {
    let cart = p.new_cart().await;
    assert_eq!(cart.set(sku, 1).await.status(), StatusCode::OK, "reserve {sku}");
    assert_eq!(cart.checkout(key).await.status(), StatusCode::CREATED, "checkout {sku}");
    *bought.entry(sku.to_owned()).or_insert(0) += 1;
}

async fn stop(mut p: Process, signal: &str) {
    p.signal(signal);
    let status = tokio::time::timeout(Duration::from_secs(30), p.child.wait()).await.unwrap().unwrap();
    assert_eq!(status.success(), signal == "TERM", "exit status {status} after SIG{signal}");
}

async fn a_scale_shaped_store_recovers_in_bulk(store: Store) {
    // Arrange: the benchmark's shape, small.
    let kind = match store.kind {
        "sqlite" => StoreKind::Sqlite { url: store.url.clone() },
        _ => StoreKind::Postgres { url: store.url.clone(), migrate_url: None },
    };
    scale::seed(&kind, SHAPE, |_, _, _| {}).await.unwrap();
    let mut bought = HashMap::new();
    let env = store.with(&[("FLASHCORE_DEMO", "false")]);

    // Act + assert: the first start serves every SKU from the bulk recovery,
    // with no SKU actor started for it.
    let p = Process::start(&env).await;
    assert_every_sku_matches_the_journal(&p, &store, &bought, "first start").await;
    assert_eq!(active_skus(&p).await, 0, "recovery started no SKU actor");
    let recovered = p.logged("message", "SKUs recovered");
    assert_eq!(recovered.len(), 1, "one recovery line");
    assert_eq!(recovered[0]["fields"]["skus"].as_u64().or(recovered[0]["skus"].as_u64()), Some(SHAPE.skus as u64));

    // A parked SKU activates from what recovery loaded, on first use.
    for (n, i) in [0, 7, SHAPE.skus - 1].into_iter().enumerate() {
        buy_one(&p, scale::sku(i).as_str(), &format!("recovery-a-{n}"), &mut bought).await;
    }
    assert_eq!(active_skus(&p).await, 3, "only the SKUs bought from were activated");
    assert_every_sku_matches_the_journal(&p, &store, &bought, "after buying").await;

    // kill -9, then start again: the journal has the three orders no snapshot saw.
    stop(p, "KILL").await;
    let p = Process::start(&env).await;
    assert_every_sku_matches_the_journal(&p, &store, &bought, "after kill -9").await;
    buy_one(&p, scale::sku(7).as_str(), "recovery-b-0", &mut bought).await;

    // A graceful stop, then start again.
    stop(p, "TERM").await;
    let p = Process::start(&env).await;
    assert_every_sku_matches_the_journal(&p, &store, &bought, "after a graceful stop").await;
    assert_eq!(active_skus(&p).await, 0, "recovery started no SKU actor");
    stop(p, "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_shaped_sqlite_store_recovers_every_sku_from_the_journal() {
    a_scale_shaped_store_recovers_in_bulk(Store::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_shaped_postgres_store_recovers_every_sku_from_the_journal() {
    a_scale_shaped_store_recovers_in_bulk(Store::postgres().await).await;
}
