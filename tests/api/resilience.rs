//! Dependency outages in the middle of a sale, through the chaos proxy: the
//! circuit breakers make checkouts fail fast (503 + `Retry-After`) once open,
//! carts stay live, the breaker closes within one probe interval of the
//! dependency returning, and no acknowledged order is lost. Each test prints its
//! measured times.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use flashcore_actors::ports::Journal;
use flashcore_persistence::postgres::PgStore;
use flashcore_tests::{
    ChaosProxy, Process, RedisPrefix, TEST_ADMIN_KEY, TestApp, TestCart, TestDatabase, assert_problem, data_dir,
    eventually, test_config, test_server_url,
};
use reqwest::StatusCode;
use serde_json::Value;

const SKU: &str = "FLASH-SNEAKER-01";
/// What "fast" means for a refusal by an open breaker (at the client, over HTTP).
const FAST: Duration = Duration::from_millis(50);
/// No refusal by an open breaker may come near waiting for the dependency (the
/// breaker's timeout is 1 s for the store, 250 ms for Redis); a single request
/// may be slowed past `FAST` by the machine itself (a loaded CI host).
const NEVER_WAITS: Duration = Duration::from_millis(150);

/// Asserts refusals by an open breaker are fast: nine in ten within [`FAST`]
/// (the median too), and none anywhere near a dependency's timeout.
fn assert_fast(what: &str, times: &[Duration]) {
    let mut sorted = times.to_vec();
    sorted.sort();
    let p90 = sorted[(sorted.len() * 9).div_ceil(10) - 1];
    let max = sorted[sorted.len() - 1];
    assert!(p90 <= FAST, "{what}: 90 % within {FAST:?}, but p90 is {p90:?}: {times:?}");
    assert!(max < NEVER_WAITS, "{what}: one waited {max:?}: {times:?}");
}

/// A checkout of `cart` under `key` with `token`: its status, how long it took, its body.
async fn timed_checkout(cart: &TestCart, key: &str, token: &str) -> (StatusCode, Duration, Option<u64>, Value) {
    let started = Instant::now();
    let res = cart.checkout_with(key, token).await;
    let took = started.elapsed();
    let status = res.status();
    let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, took, retry_after, res.json().await.unwrap_or(Value::Null))
}

/// The state of `dependency` in a `/ready` or admin body.
fn circuit(body: &Value, dependency: &str) -> String {
    body["dependencies"]
        .as_array()
        .and_then(|deps| deps.iter().find(|d| d["dependency"] == dependency))
        .and_then(|d| d["state"].as_str())
        .unwrap_or("missing")
        .to_owned()
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_mid_sale_fails_checkouts_fast_keeps_carts_and_loses_no_acknowledged_order() {
    // Arrange: flashcore reaches its database through a proxy; probes every 0.5–1 s.
    let db = TestDatabase::create(&test_server_url()).await.unwrap();
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let via_proxy = db.url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    let dir = data_dir();
    let p = Process::start(&[
        ("DATABASE_URL", &via_proxy),
        ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()),
        ("FLASHCORE_ADMIN_KEY", TEST_ADMIN_KEY),
        ("FLASHCORE_BREAKER_PROBE_MS", "500"),
        ("FLASHCORE_BREAKER_PROBE_MAX_MS", "1000"),
        ("FLASHCORE_BREAKER_TIMEOUT_MS", "1000"),
    ])
    .await;
    let ready: Value = p.client.get(p.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(circuit(&ready, "store"), "closed");
    let mut acknowledged = BTreeSet::new();
    for i in 0..5 {
        let buyer = p.new_cart().await;
        assert_eq!(buyer.set(SKU, 1).await.status(), StatusCode::OK);
        let (status, _, _, order) = timed_checkout(&buyer, &format!("before-{i}"), "tok_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        acknowledged.insert(order["order_id"].as_str().unwrap().to_owned());
    }

    // Act: Postgres goes away mid-sale; buyers keep checking out until the breaker opens.
    proxy.cut();
    let cut = Instant::now();
    let mut waiting: Vec<(TestCart, String)> = Vec::new();
    let mut before_open = Vec::new();
    let opened = loop {
        assert!(cut.elapsed() < Duration::from_secs(30), "the store breaker never opened");
        let buyer = p.new_cart().await;
        assert_eq!(buyer.set(SKU, 1).await.status(), StatusCode::OK, "carts stay live");
        let key = format!("outage-{}", waiting.len());
        let (status, took, retry_after, body) = timed_checkout(&buyer, &key, "tok_visa").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After on every 503");
        waiting.push((buyer, key));
        before_open.push(took);
        let ready: Value = p.client.get(p.url("/ready")).send().await.unwrap().json().await.unwrap();
        if circuit(&ready, "store") == "open" {
            break cut.elapsed();
        }
    };

    // Assert: once open, every checkout is refused at once, and carts stay live.
    let admin = p.admin_get("/v1/admin/dependencies").await;
    assert_eq!(circuit(&admin, "store"), "open");
    let mut open_times = Vec::new();
    for i in 0..20 {
        let buyer = p.new_cart().await;
        assert_eq!(buyer.set(SKU, 1).await.status(), StatusCode::OK, "carts stay live");
        assert_eq!(buyer.set("MUG-RED", 2).await.status(), StatusCode::OK);
        assert_eq!(buyer.get().await["item_count"], 3);
        let key = format!("open-{i}");
        let (status, took, retry_after, body) = timed_checkout(&buyer, &key, "tok_visa").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "unavailable");
        assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After on every 503");
        open_times.push(took);
        waiting.push((buyer, key));
    }

    assert_fast("store breaker open", &open_times);

    // Act: Postgres returns.
    proxy.restore();
    let back = Instant::now();
    eventually(Duration::from_secs(10), "the store breaker to close", || async {
        let ready: Value = p.client.get(p.url("/ready")).send().await.ok()?.json().await.ok()?;
        (circuit(&ready, "store") == "closed").then_some(())
    })
    .await;
    let recovered = back.elapsed();

    // Assert: closed within one probe interval (at most 1 s, plus a reconnect).
    assert!(recovered < Duration::from_millis(2_000), "recovery took {recovered:?}");
    // Every buyer refused during the outage succeeds on retrying with its key.
    for (buyer, key) in &waiting {
        let order = eventually(Duration::from_secs(10), "a refused checkout to succeed on retry", || async {
            let (status, _, _, body) = timed_checkout(buyer, key, "tok_visa").await;
            (status == StatusCode::CREATED).then_some(body)
        })
        .await;
        acknowledged.insert(order["order_id"].as_str().unwrap().to_owned());
    }
    for i in 0..5 {
        let buyer = p.new_cart().await;
        assert_eq!(buyer.set(SKU, 1).await.status(), StatusCode::OK);
        let (status, _, _, order) = timed_checkout(&buyer, &format!("after-{i}"), "tok_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        acknowledged.insert(order["order_id"].as_str().unwrap().to_owned());
    }
    // 0 acknowledged orders lost, none extra: the journal holds exactly them.
    let stored = PgStore::connect(&db.url).await.unwrap().orders(1_000, None).await.unwrap();
    let stored: BTreeSet<String> = stored.iter().map(|o| o.id.to_string()).collect();
    assert_eq!(stored, acknowledged);
    let units = acknowledged.len() as u64;
    eventually(Duration::from_secs(10), "every sold unit to be counted once", || async {
        (p.available(SKU).await == 100 - units).then_some(())
    })
    .await;
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    println!(
        "postgres outage: breaker open {:.0} ms after the cut ({} checkouts before it, slowest {:.0} ms); \
         {} checkouts while open: median {:.1} ms, slowest {:.1} ms; closed {:.0} ms after Postgres returned; \
         {} orders acknowledged (5 before, {} retried, 5 after), {} in the journal",
        millis(opened),
        before_open.len(),
        millis(max(&before_open)),
        open_times.len(),
        millis(median(&open_times)),
        millis(max(&open_times)),
        millis(recovered),
        acknowledged.len(),
        waiting.len(),
        stored.len(),
    );
    drop(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_hanging_mid_sale_fails_idempotent_checkouts_closed_and_fast_then_recovers() {
    // Arrange: Redis behind a proxy; a few acknowledged orders.
    let prefix = RedisPrefix::new().await;
    let proxy = ChaosProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let mut config = test_config();
    prefix.configure(&mut config, &format!("redis://127.0.0.1:{}", proxy.port));
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("RES-REDIS-1", 100, None, 100).await;
    let mut acknowledged = BTreeSet::new();
    for i in 0..3 {
        let buyer = app.new_cart().await;
        assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK);
        let (status, _, _, order) = timed_checkout(&buyer, &format!("r-before-{i}"), "tok_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{order}");
        acknowledged.insert(order["order_id"].as_str().unwrap().to_owned());
    }

    // Act: Redis hangs (connections accepted, nothing answered).
    proxy.hang();
    let mut waiting = Vec::new();
    let mut times = Vec::new();
    for i in 0..12 {
        let buyer = app.new_cart().await;
        assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK, "carts stay live");
        let key = format!("r-outage-{i}");
        let (status, took, retry_after, body) = timed_checkout(&buyer, &key, "tok_visa").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "idempotency-unavailable", "fails closed");
        assert!(retry_after.is_some(), "Retry-After on every 503");
        times.push(took);
        waiting.push((buyer, key));
    }

    // Assert: the first few wait for Redis's timeout; once the breaker opened
    // (three failures), every later one is refused at once.
    let slow = times.iter().take_while(|t| **t > NEVER_WAITS).count();
    assert!(slow <= 3, "at most the failures that open the breaker wait for Redis: {times:?}");
    assert_fast("redis breaker open", &times[slow..]);
    assert_eq!(app.engine.orders(100, None).await.unwrap().len(), acknowledged.len(), "nothing ordered meanwhile");

    // Act: Redis answers again.
    proxy.restore();
    let back = Instant::now();
    let first = &waiting[0];
    let order = eventually(Duration::from_secs(10), "checkout to succeed once Redis is back", || async {
        let (status, _, _, body) = timed_checkout(&first.0, &first.1, "tok_visa").await;
        (status == StatusCode::CREATED).then_some(body)
    })
    .await;
    let recovered = back.elapsed();
    acknowledged.insert(order["order_id"].as_str().unwrap().to_owned());

    // Assert: back within one probe interval of the redis breaker (at most 4 s);
    // every refused buyer's retry places exactly one order.
    assert!(recovered < Duration::from_secs(5), "recovery took {recovered:?}");
    for (buyer, key) in &waiting[1..] {
        let (status, _, _, body) = timed_checkout(buyer, key, "tok_visa").await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        acknowledged.insert(body["order_id"].as_str().unwrap().to_owned());
        let (again, _, _, replay) = timed_checkout(buyer, key, "tok_visa").await;
        assert!(again.is_success(), "{again}");
        assert_eq!(replay["order_id"], body["order_id"], "a replay, not a second order");
    }
    let stored: BTreeSet<String> =
        app.engine.orders(100, None).await.unwrap().iter().map(|o| o.id.to_string()).collect();
    assert_eq!(stored, acknowledged);
    println!(
        "redis outage: first refusals {:?} ms (Redis timeout), then {} refusals, median {:.1} ms, slowest {:.1} ms; \
         recovered {:.0} ms after Redis returned",
        times.iter().take(slow).map(|t| millis(*t).round()).collect::<Vec<_>>(),
        times.len() - slow,
        millis(median(&times[slow..])),
        millis(times[slow..].iter().max().copied().unwrap_or_default()),
        millis(recovered)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_payment_provider_is_cut_off_at_its_budget_then_refused_fast_until_it_answers() {
    // Arrange: a payment budget below tok_slow's 2 s.
    let mut config = test_config();
    config.engine.budget.payment = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("RES-PAY-1", 100, None, 10).await;

    // Act: three buyers hit the hanging provider.
    let mut times = Vec::new();
    let mut carts = Vec::new();
    for i in 0..3 {
        let buyer = app.new_cart().await;
        assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK);
        let (status, took, retry_after, body) = timed_checkout(&buyer, &format!("slow-{i}"), "tok_slow").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "unavailable");
        assert!(retry_after.is_some());
        // Cut off at the budget, not after the provider's 2 s.
        assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1_500), "{took:?}");
        assert_eq!(buyer.get().await["status"], "open", "the hold is kept for a retry");
        times.push(took);
        carts.push(buyer);
    }
    assert_eq!(app.available(&sku).await, 7, "holds kept, nothing sold");
    assert!(app.engine.orders(10, None).await.unwrap().is_empty());
    // The authorizations whose outcome is unknown are listed for an operator.
    let deps = app.admin_get("/v1/admin/dependencies").await;
    let unvoided = deps["unvoided_authorizations"].as_array().unwrap();
    assert_eq!(unvoided.len(), 3, "{deps}");
    assert!(unvoided.iter().all(|u| u["reference"].is_null()));

    // Assert: the breaker is open: the next checkout (any token) is refused at once.
    let (status, fast, _, body) = timed_checkout(&carts[0], "visa-0", "tok_visa").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(fast < NEVER_WAITS, "refused at once while open: {fast:?}");

    // Once the probe interval (at most 1 s) has passed, an answering provider closes it.
    let open = Instant::now();
    let order = eventually(Duration::from_secs(5), "a checkout to succeed after the probe interval", || async {
        let (status, _, _, body) = timed_checkout(&carts[0], "visa-1", "tok_visa").await;
        (status == StatusCode::CREATED).then_some(body)
    })
    .await;
    let recovered = open.elapsed();
    assert!(recovered < Duration::from_millis(1_500), "{recovered:?}");
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 1);
    assert_eq!(order["lines"][0]["quantity"], 1);
    println!(
        "payment hang: checkouts cut off at {:?} ms (budget 300 ms, provider 2000 ms); refused in {:.1} ms once open; \
         succeeded {:.0} ms later",
        times.iter().map(|t| millis(*t).round()).collect::<Vec<_>>(),
        millis(fast),
        millis(recovered)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_checkout_problem_while_the_payment_breaker_is_open_is_a_plain_503() {
    // The problem document of a fast refusal is the same `unavailable` as any outage.
    let mut config = test_config();
    config.engine.budget.payment = Duration::from_millis(100);
    config.engine.breaker.failures = 1;
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("RES-PAY-2", 100, None, 10).await;
    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK);
    let _ = buyer.checkout_with("p2", "tok_slow").await;
    let res = buyer.checkout_with("p2-again", "tok_visa").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "unavailable").await;
    app.stop().await;
}
