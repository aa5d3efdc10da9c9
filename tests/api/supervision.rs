//! Supervision: a failed SKU actor is restarted and serves the next request.

use std::time::Duration;

use flashcore_domain::Sku;
use flashcore_tests::{TestApp, assert_problem, eventually, test_config};
use reqwest::StatusCode;

fn sku_stats(app: &TestApp) -> flashcore_actors::registry::RegistryStats {
    app.engine.actor_stats(5).into_iter().find(|s| s.kind == "sku").unwrap()
}

#[tokio::test]
async fn a_panicking_sku_actor_is_restarted_and_the_next_request_succeeds() {
    // Arrange: one hold placed and flushed to the snapshot store.
    let app = TestApp::spawn().await;
    let sku = app.add_product("CRASH-1", 100, None, 10).await;
    let cart = app.new_cart().await;
    assert_eq!(cart.set(&sku, 3).await.status(), StatusCode::OK);
    let written = app.engine.flush_stats().written;
    eventually(Duration::from_secs(5), "the hold to be flushed", || async {
        (app.engine.flush_stats().written > written).then_some(())
    })
    .await;
    let before = sku_stats(&app);

    // Act
    app.engine.inject_sku_failure(&Sku::parse(&sku).unwrap()).await.unwrap();

    // Assert: counted, restarted from its snapshot, and serving.
    eventually(Duration::from_secs(5), "the restart", || async {
        let s = sku_stats(&app);
        (s.failures == before.failures + 1 && s.restarts == before.restarts + 1).then_some(())
    })
    .await;
    let other = app.new_cart().await;
    assert_eq!(other.set(&sku, 2).await.status(), StatusCode::OK);
    assert_eq!(app.available(&sku).await, 5, "the recovered actor still knows the first cart's hold");
    assert_eq!(cart.checkout("k1").await.status(), StatusCode::CREATED);
    assert_eq!(other.checkout("k2").await.status(), StatusCode::CREATED);
    assert_eq!(app.available(&sku).await, 5);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("flashcore_actor_restarts_total{kind=\"sku\"}"));
    assert!(metrics.contains("flashcore_actor_failures_total{kind=\"sku\"}"));
    app.stop().await;
}

#[tokio::test]
async fn an_actor_failing_past_its_restart_intensity_is_quarantined_with_retry_after() {
    let mut config = test_config();
    config.engine.max_restarts = 1;
    config.engine.restart_period = Duration::from_secs(30);
    let app = TestApp::spawn_with(config).await;
    let sku = app.add_product("CRASH-2", 100, None, 10).await;
    let id = Sku::parse(&sku).unwrap();

    app.engine.inject_sku_failure(&id).await.unwrap();
    eventually(Duration::from_secs(5), "the first restart", || async { (sku_stats(&app).restarts == 1).then_some(()) })
        .await;
    app.engine.inject_sku_failure(&id).await.unwrap();
    eventually(Duration::from_secs(5), "the quarantine", || async { (sku_stats(&app).quarantined == 1).then_some(()) })
        .await;

    let cart = app.new_cart().await;
    let res = cart.set(&sku, 1).await;
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after));
    assert_problem(res, 503, "unavailable").await;
    // Other SKUs are unaffected (one_for_one).
    assert_eq!(cart.set("MUG-RED", 1).await.status(), StatusCode::OK);
    app.stop().await;
}
