//! State the nodes share through Redis: rate limits (real Redis and the
//! in-process fallback), availability fan-out to other nodes, and how the
//! HTTP layer degrades and recovers when Redis goes away (through a proxy the test
//! cuts; the machine's Redis is never stopped).

use std::time::Duration;

use flashcore_actors::ports::AvailabilityFeed;
use flashcore_domain::Sku;
use flashcore_http_ports::Quota;
use flashcore_persistence::redis::RedisFeed;
use flashcore_tests::{ChaosProxy, RedisPrefix, TestApp, assert_problem, eventually, test_config};
use reqwest::StatusCode;
use serde_json::Value;

async fn spawn(redis: bool, client: Option<Quota>, sku: Option<Quota>) -> (TestApp, Option<RedisPrefix>) {
    let mut config = test_config();
    config.http.client_quota = client;
    config.http.sku_quota = sku;
    TestApp::spawn_shared(config, redis).await
}

async fn clients_are_limited_one_by_one(redis: bool) {
    let (app, _prefix) = spawn(redis, Some(Quota { per_second: 1, burst: 4 }), None).await;
    // Two carts use two of this address's four.
    let a = app.new_cart().await;
    let b = app.new_cart().await;
    for _ in 0..2 {
        assert_eq!(app.client.get(app.url("/v1/products")).send().await.unwrap().status(), StatusCode::OK);
    }
    let res = app.client.get(app.url("/v1/products")).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1", "one request a second: the next is due within a second");
    let body = assert_problem(res, 429, "rate-limited").await;
    assert_eq!(body["limit"], "client");

    // A cart is a client of its own: cart A spends its burst, cart B is untouched.
    for _ in 0..4 {
        assert_eq!(a.get().await["cart_id"], a.id.as_str());
    }
    let url = app.url(&a.path(""));
    assert_problem(app.client.get(url).bearer_auth(&a.token).send().await.unwrap(), 429, "rate-limited").await;
    assert_eq!(b.get().await["cart_id"], b.id.as_str());

    // Operational endpoints are never limited.
    for _ in 0..10 {
        assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), StatusCode::OK);
    }
    app.stop().await;
}

#[tokio::test]
async fn clients_are_limited_one_by_one_with_redis() {
    clients_are_limited_one_by_one(true).await;
}

#[tokio::test]
async fn clients_are_limited_one_by_one_in_process() {
    clients_are_limited_one_by_one(false).await;
}

async fn a_hot_sku_admits_at_its_rate(redis: bool) {
    let (app, _prefix) = spawn(redis, None, Some(Quota { per_second: 1, burst: 2 })).await;
    let sku = app.add_product("HOT-1", 100, None, 10).await;
    let other = app.add_product("COLD-1", 100, None, 10).await;
    let mut buyers = Vec::new();
    for _ in 0..3 {
        buyers.push(app.new_cart().await);
    }
    assert_eq!(buyers[0].set(&sku, 1).await.status(), StatusCode::OK);
    assert_eq!(buyers[1].set(&sku, 1).await.status(), StatusCode::OK);
    let body = assert_problem(buyers[2].set(&sku, 1).await, 429, "rate-limited").await;
    assert_eq!(body["limit"], "sku");
    assert_eq!(app.available(&sku).await, 8, "the refused edit reserved nothing");
    assert_eq!(buyers[2].set(&other, 1).await.status(), StatusCode::OK, "other SKUs have their own budget");
    app.stop().await;
}

#[tokio::test]
async fn a_hot_sku_admits_at_its_rate_with_redis() {
    a_hot_sku_admits_at_its_rate(true).await;
}

#[tokio::test]
async fn a_hot_sku_admits_at_its_rate_in_process() {
    a_hot_sku_admits_at_its_rate(false).await;
}

/// Another node's view: a feed on the same Redis prefix.
fn other_node(prefix: &RedisPrefix) -> std::sync::Arc<RedisFeed> {
    RedisFeed::start(prefix.redis())
}

async fn seen_by(feed: &RedisFeed, sku: &str, available: u64) {
    let sku = Sku::parse(sku).unwrap();
    eventually(Duration::from_secs(10), "the other node to see the availability", || async {
        (feed.latest(&sku).map(|a| a.available) == Some(available)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn availability_fans_out_to_other_edge_nodes() {
    let (app, prefix) = spawn(true, None, None).await;
    let prefix = prefix.unwrap();
    let sku = app.add_product("FAN-1", 100, None, 10).await;
    let node_b = other_node(&prefix);
    seen_by(&node_b, &sku, 10).await;

    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&sku, 3).await.status(), StatusCode::OK);
    seen_by(&node_b, &sku, 7).await;
    let mut changes = node_b.subscribe(&Sku::parse(&sku).unwrap());
    assert_eq!(buyer.set(&sku, 5).await.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(10), changes.wait_for(|a| a.is_some_and(|a| a.available == 5)))
        .await
        .expect("node B's subscribers hear of the change")
        .unwrap();
    node_b.shutdown().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_cut_checkout_fails_closed_limits_go_local_and_all_recovers() {
    let prefix = RedisPrefix::new().await;
    let proxy = ChaosProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let mut config = test_config();
    prefix.configure(&mut config, &format!("redis://127.0.0.1:{}", proxy.port));
    config.http.client_quota = Some(Quota { per_second: 1_000, burst: 1_000 });
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("OUT-1", 100, None, 10).await;
    let spare = app.add_product("OUT-2", 100, None, 10).await;
    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&sku, 2).await.status(), StatusCode::OK);

    // Act: Redis goes away.
    proxy.cut();

    // Checkout fails closed, at once, and changes nothing.
    let started = std::time::Instant::now();
    let res = buyer.checkout("during-outage").await;
    assert!(started.elapsed() < Duration::from_secs(3), "fails fast: {:?}", started.elapsed());
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 503, "idempotency-unavailable").await;
    assert_eq!(buyer.get().await["status"], "open");
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 0);
    assert_eq!(app.available(&sku).await, 8, "the hold is kept");

    // Without a key, carts and reads keep working under local limits.
    assert_eq!(buyer.set(&spare, 1).await.status(), StatusCode::OK);
    assert_eq!(app.available(&spare).await, 9, "reads are served from this node's feed");
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["shared_state"], "degraded");

    // Redis returns: the same retry places exactly one order.
    proxy.restore();
    let order = eventually(Duration::from_secs(15), "checkout to succeed once Redis is back", || async {
        let res = buyer.checkout("during-outage").await;
        (res.status() == StatusCode::CREATED).then_some(res)
    })
    .await;
    let order: Value = order.json().await.unwrap();
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 1);
    let replay = buyer.checkout("during-outage").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["order_id"], order["order_id"]);
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["shared_state"], "ok");

    // What was published during the outage reached Redis afterwards.
    let node_b = other_node(&prefix);
    seen_by(&node_b, &spare, 9).await;
    node_b.shutdown().await;
    app.stop().await;
}
