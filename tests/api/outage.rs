//! Store outages and shutdown: what keeps working, what fails fast, and that
//! nothing acknowledged or written behind is lost.

use std::time::{Duration, Instant};

use flashcore_actors::ports::Journal;
use flashcore_persistence::postgres::PgStore;
use flashcore_tests::{ChaosProxy, Process, TestDatabase, data_dir, eventually, test_server_url};
use reqwest::{Client, StatusCode};
use serde_json::Value;

const SKU: &str = "FLASH-SNEAKER-01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_cut_checkout_fails_fast_carts_keep_working_and_all_catches_up() {
    // Arrange: flashcore reaches its own database through a proxy we control.
    let db = TestDatabase::create(&test_server_url()).await.unwrap();
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = db.url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(via_proxy, db.url, "the database URL names 127.0.0.1:5432");
    let dir = data_dir();
    let p = Process::start(&[("DATABASE_URL", &via_proxy), ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap())]).await;
    let buyer = p.new_cart().await;
    assert_eq!(buyer.set(SKU, 1).await.status(), StatusCode::OK);

    // Act: Postgres goes away.
    proxy.cut();
    let started = Instant::now();
    let res = buyer.checkout("outage-1").await;

    // Assert: a fast, honest 503 that changed nothing.
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(8), "failed fast: {:?}", started.elapsed());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert_eq!(buyer.get().await["status"], "open", "the hold is kept for a retry");
    assert_eq!(p.available(SKU).await, 99);
    // Carts keep working from memory meanwhile.
    assert_eq!(buyer.set("MUG-RED", 2).await.status(), StatusCode::OK);
    assert_eq!(buyer.get().await["item_count"], 3);

    // Postgres returns: the same retry succeeds and everything is written.
    proxy.restore();
    let order: Value = eventually(Duration::from_secs(20), "checkout to succeed again", || async {
        let res = buyer.checkout("outage-1").await;
        (res.status() == StatusCode::CREATED).then_some(res.json::<Value>().await.ok()?)
    })
    .await;
    assert_eq!(order["lines"].as_array().unwrap().len(), 2);
    let stored = PgStore::connect(&db.url).await.unwrap().orders(10, None).await.unwrap();
    assert_eq!(stored.len(), 1, "exactly one order, none half-written");
    assert_eq!(p.available(SKU).await, 99);
    drop(p);
}

#[tokio::test]
async fn graceful_shutdown_writes_all_dirty_state_before_exiting() {
    // Arrange: a flush interval so long that only the shutdown flush can save the cart.
    let dir = data_dir();
    let env = [
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()),
        ("FLASHCORE_FLUSH_INTERVAL_MS", "3600000"),
        ("FLASHCORE_TOKEN_SECRET", "shutdown-test-secret-shutdown-test"),
    ];
    let mut p = Process::start(&env).await;
    let buyer = p.new_cart().await;
    assert_eq!(buyer.set(SKU, 2).await.status(), StatusCode::OK);

    // Act
    p.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), p.child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let p = Process::start(&env).await;

    // Assert: the cart and its hold came back.
    let buyer = buyer.on(&p);
    let cart = buyer.get().await;
    assert_eq!(cart["lines"][0]["sku"], SKU);
    assert_eq!(cart["lines"][0]["quantity"], 2);
    assert_eq!(p.available(SKU).await, 98);
    assert_eq!(buyer.checkout("after-restart").await.status(), StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_store_cannot_be_reached_at_start_health_answers_ready_says_503_and_the_process_fails_clearly() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    // Arrange: Postgres "hangs" (connections accepted, nothing answered).
    let db = TestDatabase::create(&test_server_url()).await.unwrap();
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    proxy.hang();
    let via_proxy = db.url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    let dir = data_dir();
    let mut child = tokio::process::Command::new(flashcore_tests::flashcore_binary())
        .env("FLASHCORE_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", &via_proxy)
        .env("FLASHCORE_DATA_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    let mut log = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "flashcore listening"
        {
            addr = v["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let base = format!("http://{}", addr.expect("listening"));
    let client = Client::new();

    // Assert: live but not ready, and the API says so too.
    assert_eq!(client.get(format!("{base}/health")).send().await.unwrap().status(), StatusCode::OK);
    let ready = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["code"], "not-ready");
    let api = client.get(format!("{base}/v1/products")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(api.headers().contains_key("retry-after"));

    // Start-up gives up with a clear message and a failing exit status.
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
    assert!(log.contains("cannot connect to Postgres"), "{log}");
}
