//! The storefront flow end to end, hold expiry, SSE, passivation, docs and metrics.

use std::time::Duration;

use flashcore_tests::{TestApp, assert_problem, eventually, test_config};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_buyer_browses_fills_a_cart_checks_out_and_reads_the_order() {
    // Arrange
    let app = TestApp::spawn().await;
    let page: Value = app.client.get(app.url("/v1/products?limit=10")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let next: Value = app
        .client
        .get(app.url(&format!("/v1/products?limit=100&cursor={}", page["next_cursor"].as_str().unwrap())))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let catalog = flashcore_http::demo::catalog().unwrap().len();
    assert_eq!(10 + next["items"].as_array().unwrap().len(), catalog, "two pages hold the whole demo catalog");
    assert!(next["next_cursor"].is_null());
    let before = app.available("MUG-RED").await;

    // Act: fill the cart, change a line, remove one.
    let cart = app.new_cart().await;
    assert_eq!(cart.set("MUG-RED", 3).await.status(), StatusCode::OK);
    assert_eq!(cart.set("CAP-BLUE", 1).await.status(), StatusCode::OK);
    let res = cart.set("MUG-RED", 2).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["item_count"], 3);
    assert_eq!(body["total"]["amount"], 2 * 999 + 1_499);
    assert!(body["lines"][1]["hold_expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.available("MUG-RED").await, before - 2);
    let res = cart.remove("CAP-BLUE").await;
    assert_eq!(res.status(), StatusCode::OK);
    let cap_before = app.product("CAP-BLUE").await;
    assert_eq!(cap_before["available"], cap_before["total"], "released stock is back");

    let res = cart.checkout("key-1").await;

    // Assert
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    assert_eq!(order["total"]["amount"], 2 * 999);
    assert_eq!(order["lines"][0]["sku"], "MUG-RED");
    assert_eq!(location, format!("/v1/orders/{}", order["order_id"].as_str().unwrap()));
    assert_eq!(app.available("MUG-RED").await, before - 2, "sold units stay gone");

    let fetched: Value =
        app.client.get(app.url(&location)).bearer_auth(&cart.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, order);
    let cart_now: Value = cart.get().await;
    assert_eq!(cart_now["status"], "checked_out");
    assert_eq!(cart_now["order_id"], order["order_id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_retried_checkout_replays_the_same_order_and_never_sells_twice() {
    let app = TestApp::spawn().await;
    let sku = app.add_product("RETRY-1", 500, None, 10).await;
    let cart = app.new_cart().await;
    cart.set(&sku, 4).await;

    let first = cart.checkout("same-key").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = cart.checkout("same-key").await;

    assert_eq!(again.status(), StatusCode::CREATED, "a replay repeats the stored status");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first, "and the stored body");
    assert_eq!(app.available(&sku).await, 6);
    assert_eq!(app.engine.orders(100, None).await.unwrap().len(), 1);

    // Another key on a checked-out cart is a conflict, and the cart is frozen.
    assert_problem(cart.checkout("other-key").await, 409, "cart-checked-out").await;
    assert_problem(cart.set(&sku, 1).await, 409, "cart-checked-out").await;
    assert_eq!(app.available(&sku).await, 6);
    app.stop().await;
}

#[tokio::test]
async fn holds_expire_and_return_their_stock() {
    let mut config = test_config();
    config.engine.hold_ttl = Duration::from_millis(300);
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("EXPIRE-1", 100, None, 5).await;
    let cart = app.new_cart().await;
    assert_eq!(cart.set(&sku, 5).await.status(), StatusCode::OK);
    assert_eq!(app.available(&sku).await, 0);

    eventually(Duration::from_secs(5), "the hold to expire", || async {
        (app.available(&sku).await == 5).then_some(())
    })
    .await;

    // The stock went to someone else, so the lapsed cart cannot check out.
    let other = app.new_cart().await;
    assert_eq!(other.set(&sku, 5).await.status(), StatusCode::OK);
    let body = assert_problem(cart.checkout("k").await, 409, "stock-lost").await;
    assert_eq!(body["sku"], sku);
    assert_eq!(app.engine.orders(10, None).await.unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_lapsed_hold_is_renewed_at_checkout_when_stock_remains() {
    let mut config = test_config();
    config.engine.hold_ttl = Duration::from_millis(200);
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("RENEW-1", 100, None, 5).await;
    let cart = app.new_cart().await;
    cart.set(&sku, 2).await;
    eventually(Duration::from_secs(5), "the hold to expire", || async {
        (app.available(&sku).await == 5).then_some(())
    })
    .await;

    let res = cart.checkout("k").await;

    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(app.available(&sku).await, 3);
    app.stop().await;
}

/// A product's availability stream (SSE), read as text.
struct Events {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    /// Everything read so far.
    seen: String,
}

impl Events {
    async fn open(app: &TestApp, sku: &str) -> Events {
        let res = app.client.get(app.url(&format!("/v1/products/{sku}/availability"))).send().await.unwrap();
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Events { stream: Box::pin(res.bytes_stream()), seen: String::new() }
    }

    /// Reads until `needle` has been seen (5 s per chunk at most).
    async fn read_until(&mut self, needle: &str) {
        while !self.seen.contains(needle) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.stream.next()).await.expect("event in time");
            self.seen.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
    }
}

#[tokio::test]
async fn the_availability_stream_reports_the_current_value_then_every_change() {
    let app = TestApp::spawn().await;
    let sku = app.add_product("SSE-1", 100, None, 7).await;
    let mut events = Events::open(&app, &sku).await;
    events.read_until("\"available\":7").await;
    assert!(events.seen.contains("event: availability"));

    let cart = app.new_cart().await;
    cart.set(&sku, 3).await;

    events.read_until("\"available\":4").await;
    app.stop().await;
}

#[tokio::test]
async fn an_idle_cart_is_passivated_and_comes_back_intact() {
    let mut config = test_config();
    config.engine.cart_idle = Duration::from_millis(200);
    let app = TestApp::spawn_with(config).await;
    let cart = app.new_cart().await;
    cart.set("SOCKS-RED", 2).await;

    eventually(Duration::from_secs(10), "the cart to be passivated", || async {
        let carts = app.engine.actor_stats(0).into_iter().find(|s| s.kind == "cart").unwrap();
        (carts.passivations >= 1 && carts.active == 0).then_some(())
    })
    .await;

    let body: Value = cart.get().await;
    assert_eq!(body["lines"][0]["sku"], "SOCKS-RED");
    assert_eq!(body["lines"][0]["quantity"], 2);
    assert_eq!(cart.checkout("k").await.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_cold_sku_is_passivated_keeps_serving_its_availability_and_comes_back_on_use() {
    let mut config = test_config();
    config.engine.sku_idle = Duration::from_millis(200);
    let app = TestApp::spawn_with(config).await;
    let cold = app.add_product("COLD-1", 100, None, 5).await;
    let held = app.add_product("HELD-1", 100, None, 4).await;
    // HELD-1 keeps a hold all along: a SKU with holds is never passivated.
    let holder = app.new_cart().await;
    assert_eq!(holder.set(&held, 1).await.status(), StatusCode::OK);
    // COLD-1 is used, then holds nothing.
    let cart = app.new_cart().await;
    assert_eq!(cart.set(&cold, 2).await.status(), StatusCode::OK);
    assert_eq!(cart.remove(&cold).await.status(), StatusCode::OK);
    let skus = || app.engine.actor_stats(0).into_iter().find(|s| s.kind == "sku").unwrap();
    let passivated_before = skus().passivations;

    // Only HELD-1 stays active.
    eventually(Duration::from_secs(10), "COLD-1 to be passivated", || async {
        let s = skus();
        (s.passivations > passivated_before && s.active == 1).then_some(())
    })
    .await;

    // Reads keep serving the parked SKU: the product, the list, the stream.
    assert_eq!(app.available(&cold).await, 5);
    assert_eq!(app.available(&held).await, 3, "the hold survived next to the passivation");
    let page: Value = app.client.get(app.url("/v1/products?limit=100")).send().await.unwrap().json().await.unwrap();
    let listed = page["items"].as_array().unwrap().iter().find(|p| p["sku"] == cold.as_str()).unwrap().clone();
    assert_eq!(listed["available"], 5);
    let mut events = Events::open(&app, &cold).await;
    events.read_until("\"available\":5").await;
    assert_eq!(skus().active, 1, "reads did not reactivate it");

    // First use reactivates it from the parked state: reserve, then check out.
    let starts = skus().starts;
    let buyer = app.new_cart().await;
    assert_eq!(buyer.set(&cold, 3).await.status(), StatusCode::OK);
    assert!(skus().starts > starts, "the SKU actor was started again");
    events.read_until("\"available\":2").await;
    assert_eq!(buyer.checkout("cold-k").await.status(), StatusCode::CREATED);
    assert_eq!(app.available(&cold).await, 2);
    assert_eq!(app.product(&cold).await["total"], 5);
    app.stop().await;
}

#[tokio::test]
async fn health_ready_openapi_docs_and_metrics_are_served() {
    let app = TestApp::spawn().await;
    for path in ["/health", "/ready"] {
        assert_eq!(app.client.get(app.url(path)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let doc: Value = app.client.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in
        ["/v1/products", "/v1/products/{sku}", "/v1/carts/{cart_id}/items/{sku}", "/v1/carts/{cart_id}/checkout"]
    {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let docs = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(docs.contains("/openapi.json"));

    app.product("TSHIRT-RED").await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("flashcore_http_request_duration_seconds_bucket"), "latency histogram");
    assert!(metrics.contains("route=\"/v1/products/{sku}\""), "labelled by route");
    assert!(metrics.contains("flashcore_actors_active{kind=\"sku\"}"), "actor counts by kind");
    app.stop().await;
}
