//! Idempotency keys (IETF draft) on every state-changing route, against the real
//! Redis and against the in-process fallback: replays, 422 on a changed request,
//! 409 while the first attempt runs, outcomes only (failures can be retried), per
//! client scope, and a retried checkout across a restart.

use std::time::Duration;

use flashcore_tests::{
    Process, RedisPrefix, TEST_ADMIN_KEY, TestApp, assert_problem, data_dir, test_config, test_redis_url,
};
use reqwest::{Client, StatusCode};
use serde_json::Value;

async fn spawn(redis: bool) -> (TestApp, Option<RedisPrefix>) {
    TestApp::spawn_shared(test_config(), redis).await
}

async fn replays_outcomes_and_refuses_a_changed_request(redis: bool) {
    let (app, backend) = spawn(redis).await;
    let sku = app.add_product("IDEM-1", 700, None, 10).await;

    // Creating a cart: a retry gets the same cart, not a second one.
    let create = || app.client.post(app.url("/v1/carts")).header("Idempotency-Key", "create-1").send();
    let first = create().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = create().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let buyer = app.cart(first["cart_id"].as_str().unwrap(), first["token"].as_str().unwrap());

    // A cart edit replays; stock is reserved once.
    let set = buyer.set_with_key(&sku, 2, "set-1").await;
    assert_eq!(set.status(), StatusCode::OK);
    let set: Value = set.json().await.unwrap();
    let replay = buyer.set_with_key(&sku, 2, "set-1").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), set);
    assert_eq!(app.available(&sku).await, 8);

    // The same key with another body is refused and changes nothing.
    assert_problem(buyer.set_with_key(&sku, 3, "set-1").await, 422, "idempotency-key-reused").await;
    assert_eq!(buyer.get().await["lines"][0]["quantity"], 2);
    assert_eq!(app.available(&sku).await, 8);

    // Checkout: one order, replayed byte for byte; a changed body is refused.
    let order = buyer.checkout("pay-1").await;
    assert_eq!(order.status(), StatusCode::CREATED);
    let order: Value = order.json().await.unwrap();
    let replay = buyer.checkout("pay-1").await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), order);
    assert_problem(buyer.checkout_with("pay-1", "tok_mastercard").await, 422, "idempotency-key-reused").await;
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 1);
    assert_eq!(app.available(&sku).await, 8);
    app.stop().await;
    if let Some(p) = backend {
        // Three keys and the availability hash were really kept in Redis.
        assert!(p.redis().delete_prefix().await.unwrap() >= 4, "the keys live in Redis");
    }
}

#[tokio::test]
async fn replays_outcomes_and_refuses_a_changed_request_with_redis() {
    replays_outcomes_and_refuses_a_changed_request(true).await;
}

#[tokio::test]
async fn replays_outcomes_and_refuses_a_changed_request_in_process() {
    replays_outcomes_and_refuses_a_changed_request(false).await;
}

async fn a_retry_while_the_first_runs_gets_409(redis: bool) {
    let (app, _backend) = spawn(redis).await;
    let sku = app.add_product("IDEM-2", 700, None, 10).await;
    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK);

    // `tok_slow` keeps the first attempt running for 2 s.
    let (a, b) = tokio::join!(buyer.checkout_with("slow-1", "tok_slow"), buyer.checkout_with("slow-1", "tok_slow"));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "one runs, the concurrent retry is told it is in progress");
    let (placed, busy) = if a.status() == StatusCode::CREATED { (a, b) } else { (b, a) };
    assert!(busy.headers().contains_key("retry-after"));
    let body = assert_problem(busy, 409, "idempotency-key-in-use").await;
    assert!(body["detail"].as_str().unwrap().contains("still running"));
    let placed: Value = placed.json().await.unwrap();

    // Once it has finished, the retry replays it.
    let later = buyer.checkout_with("slow-1", "tok_slow").await;
    assert_eq!(later.headers()["idempotent-replayed"], "true");
    assert_eq!(later.json::<Value>().await.unwrap(), placed);
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_retry_while_the_first_runs_gets_409_with_redis() {
    a_retry_while_the_first_runs_gets_409(true).await;
}

#[tokio::test]
async fn a_retry_while_the_first_runs_gets_409_in_process() {
    a_retry_while_the_first_runs_gets_409(false).await;
}

async fn failures_are_not_kept_and_keys_are_per_client(redis: bool) {
    let (app, _backend) = spawn(redis).await;
    let sku = app.add_product("IDEM-3", 700, None, 10).await;
    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&sku, 1).await.status(), StatusCode::OK);

    // A provider failure (5xx) is not an outcome: the same key may try again.
    assert_problem(buyer.checkout_with("k", "tok_error").await, 502, "payment-provider-error").await;
    let retry = buyer.checkout_with("k", "tok_error").await;
    assert!(retry.headers().get("idempotent-replayed").is_none(), "ran again rather than replayed");
    assert_problem(retry, 502, "payment-provider-error").await;
    assert_eq!(buyer.get().await["status"], "open");

    // A declined payment is an outcome: replayed, not charged again.
    assert_problem(buyer.checkout_with("d", "tok_decline").await, 402, "payment-declined").await;
    let replay = buyer.checkout_with("d", "tok_decline").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_problem(replay, 402, "payment-declined").await;

    // Another client's identical key is its own: both edits run.
    let other = app.new_cart().await;
    assert!(buyer.set_with_key(&sku, 2, "shared").await.headers().get("idempotent-replayed").is_none());
    assert!(other.set_with_key(&sku, 2, "shared").await.headers().get("idempotent-replayed").is_none());
    assert_eq!(app.available(&sku).await, 6);
    app.stop().await;
}

#[tokio::test]
async fn failures_are_not_kept_and_keys_are_per_client_with_redis() {
    failures_are_not_kept_and_keys_are_per_client(true).await;
}

#[tokio::test]
async fn failures_are_not_kept_and_keys_are_per_client_in_process() {
    failures_are_not_kept_and_keys_are_per_client(false).await;
}

/// Orders in the store, read through the operator API.
async fn order_count(base: &str) -> usize {
    let res = Client::new().get(format!("{base}/v1/admin/orders?limit=500")).bearer_auth(TEST_ADMIN_KEY).send().await;
    let page: Value = res.unwrap().json().await.unwrap();
    page["items"].as_array().unwrap().len()
}

/// The real binary on SQLite is stopped between a checkout and its retry; the
/// retry gets the same order (from Redis, or from the journal's unique key when
/// the in-process keys died with the process) and no second order exists.
async fn a_retried_checkout_survives_a_restart(redis: bool) {
    let dir = data_dir();
    let prefix = if redis { Some(RedisPrefix::new().await) } else { None };
    let url = test_redis_url();
    let mut env = vec![("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap()), ("FLASHCORE_ADMIN_KEY", TEST_ADMIN_KEY)];
    if let Some(p) = &prefix {
        env.extend([("REDIS_URL", url.as_str()), ("FLASHCORE_REDIS_PREFIX", p.prefix.as_str())]);
    }
    let p = Process::start(&env).await;
    let buyer = p.new_cart().await;
    assert_eq!(buyer.set("FLASH-SNEAKER-01", 1).await.status(), StatusCode::OK);
    let first = buyer.checkout("restart-1").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    p.signal("TERM");
    let mut child = p.child;
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
    assert!(status.success());

    let p = Process::start(&env).await;
    let retry = buyer.on(&p);
    // The cart comes back checked out: placed orders are not written behind, the
    // journal is their record and recovery reads the cart's state from it.
    let cart = retry.get().await;
    assert_eq!(cart["status"], "checked_out");
    assert_eq!(cart["order_id"], first["order_id"]);
    let again = retry.checkout("restart-1").await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order_id"], first["order_id"]);
    assert_eq!(order_count(&p.base).await, 1);
    assert_eq!(p.available("FLASH-SNEAKER-01").await, 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_checkout_survives_a_restart_with_redis() {
    a_retried_checkout_survives_a_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_checkout_survives_a_restart_in_process() {
    a_retried_checkout_survives_a_restart(false).await;
}
