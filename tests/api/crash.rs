//! Crash recovery: `kill -9` the real binary in the middle of a flash sale, start
//! it again on the same store, and check that nothing acknowledged was lost and
//! nothing was oversold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_actors::ports::Journal;
use flashcore_tests::{Process, eventually};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const SKU: &str = "FLASH-SNEAKER-01";
const STOCK: u64 = 100;

/// An order a client saw acknowledged: (order id, its cart's token).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

async fn buyer(client: Client, base: String, i: usize, acked: Acked) {
    let Ok(res) = client.post(format!("{base}/v1/carts")).send().await else { return };
    let Ok(cart) = res.json::<Value>().await else { return };
    let (id, token) = (cart["cart_id"].as_str().unwrap_or_default(), cart["token"].as_str().unwrap_or_default());
    let put = client
        .put(format!("{base}/v1/carts/{id}/items/{SKU}"))
        .bearer_auth(token)
        .json(&json!({ "quantity": 1 + i % 2 }))
        .send()
        .await;
    if !put.is_ok_and(|r| r.status() == StatusCode::OK) {
        return;
    }
    let res = client
        .post(format!("{base}/v1/carts/{id}/checkout"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("crash-{i}"))
        .json(&json!({ "payment": { "token": "tok_visa" } }))
        .send()
        .await;
    if let Ok(res) = res
        && res.status() == StatusCode::CREATED
        && let Ok(order) = res.json::<Value>().await
    {
        let order_id = order["order_id"].as_str().unwrap_or_default().to_owned();
        acked.lock().unwrap().push((order_id, token.to_owned()));
    }
}

/// Runs a flash sale against `env`'s store, kills the process once `kill_after`
/// orders were acknowledged, restarts it and checks the store.
async fn kill_during_a_flash_sale_and_recover(
    env: Vec<(&str, String)>,
    journal: impl AsyncFnOnce() -> Box<dyn Journal>,
) {
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Arrange: a live sale, many buyers in flight.
    let p = Process::start(&env_ref).await;
    let acked: Acked = Arc::default();
    let buyers: Vec<_> =
        (0..400).map(|i| tokio::spawn(buyer(client.clone(), p.base.clone(), i, Arc::clone(&acked)))).collect();

    // Act: SIGKILL once a good number of orders were acknowledged.
    eventually(Duration::from_secs(30), "orders to be acknowledged", || async {
        (acked.lock().unwrap().len() >= 15).then_some(())
    })
    .await;
    p.signal("KILL");
    let mut p = p;
    let _ = p.child.wait().await;
    for b in buyers {
        let _ = b.await;
    }
    let acked = acked.lock().unwrap().clone();

    // Assert: restart on the same store.
    let p = Process::start(&env_ref).await;
    for (order_id, token) in &acked {
        let res = client.get(format!("{}/v1/orders/{order_id}", p.base)).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "acknowledged order {order_id} must survive kill -9");
    }
    let stored = journal().await.orders(10_000, None).await.unwrap();
    let sold: u64 =
        stored.iter().flat_map(|o| &o.lines).filter(|l| l.sku.as_str() == SKU).map(|l| u64::from(l.qty)).sum();
    let ids: std::collections::HashSet<String> = stored.iter().map(|o| o.id.to_string()).collect();
    for (order_id, _) in &acked {
        assert!(ids.contains(order_id), "acknowledged order {order_id} is in the journal");
    }
    assert!(sold <= STOCK, "sold {sold} > stock {STOCK}");
    // Once the recovered holds of unfinished carts lapse, what is left is exactly
    // the stock minus what the journal says was sold.
    eventually(Duration::from_secs(20), "recovered holds to lapse", || async {
        let product: Value =
            client.get(format!("{}/v1/products/{SKU}", p.base)).send().await.ok()?.json().await.ok()?;
        (product["available"].as_u64() == Some(STOCK - sold) && product["total"] == STOCK).then_some(())
    })
    .await;
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sqlite_node_loses_no_acknowledged_order_and_never_oversells() {
    let dir = flashcore_tests::data_dir();
    let data = dir.path().to_str().unwrap().to_owned();
    let db = format!("sqlite://{data}/flashcore.db");
    let env = vec![
        ("FLASHCORE_DATA_DIR", data.clone()),
        ("FLASHCORE_HOLD_TTL_MS", "1500".to_owned()),
        ("FLASHCORE_TOKEN_SECRET", "crash-test-secret-crash-test-secret".to_owned()),
    ];
    kill_during_a_flash_sale_and_recover(env, async || {
        Box::new(flashcore_persistence::sqlite::SqliteStore::open(&db).await.unwrap()) as Box<dyn Journal>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_postgres_node_loses_no_acknowledged_order_and_never_oversells() {
    use flashcore_persistence::postgres::PgStore;
    use flashcore_tests::{TestDatabase, test_server_url};
    let db = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    let dir = flashcore_tests::data_dir();
    let env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
        ("FLASHCORE_HOLD_TTL_MS", "1500".to_owned()),
        ("FLASHCORE_TOKEN_SECRET", "crash-test-secret-crash-test-secret".to_owned()),
    ];
    let url = db.url.clone();
    kill_during_a_flash_sale_and_recover(env, async || {
        Box::new(PgStore::connect(&url).await.unwrap()) as Box<dyn Journal>
    })
    .await;
}
