//! Many buyers, little stock: exactly the stock is sold, never more.

use std::sync::Arc;

use std::time::Duration;

use flashcore_tests::{TestApp, eventually};
use futures::future::join_all;
use reqwest::StatusCode;
use tokio::sync::Barrier;

#[derive(Debug, Default)]
struct Outcome {
    ordered: u64,
    refused_at_cart: u64,
    refused_at_checkout: u64,
    server_errors: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_buyers_of_a_hundred_units_buy_exactly_a_hundred() {
    // Arrange
    let app = Arc::new(TestApp::spawn().await);
    let sku = app.add_product("DROP-100", 9_900, None, 100).await;
    let buyers = 1_000;
    let start = Arc::new(Barrier::new(buyers));

    // Act: every buyer opens a cart first, then all try to buy at once.
    let tasks = (0..buyers).map(|i| {
        let (app, sku, start) = (Arc::clone(&app), sku.clone(), Arc::clone(&start));
        tokio::spawn(async move {
            let (cart, token) = app.new_cart().await;
            start.wait().await;
            let put = app.set_item(&cart, &token, &sku, 1).await;
            match put.status() {
                StatusCode::OK => {}
                StatusCode::CONFLICT => return (0, 1, 0, 0),
                _ => return (0, 0, 0, 1),
            }
            let res = app.checkout(&cart, &token, &format!("buyer-{i}"), "tok_visa").await;
            match res.status() {
                StatusCode::CREATED => (1, 0, 0, 0),
                s if s.is_server_error() => (0, 0, 0, 1),
                _ => (0, 0, 1, 0),
            }
        })
    });
    let mut outcome = Outcome::default();
    for r in join_all(tasks).await {
        let (o, c, k, e) = r.unwrap();
        outcome.ordered += o;
        outcome.refused_at_cart += c;
        outcome.refused_at_checkout += k;
        outcome.server_errors += e;
    }

    // Assert
    assert_eq!(outcome.server_errors, 0, "{outcome:?}");
    assert_eq!(outcome.ordered, 100, "{outcome:?}");
    assert_eq!(outcome.ordered + outcome.refused_at_cart + outcome.refused_at_checkout, buyers as u64);
    let product = app.product(&sku).await;
    assert_eq!(product["available"], 0);
    assert_eq!(product["total"], 100);
    let orders = app.engine.orders(10_000, None).await.unwrap();
    let sold: u64 =
        orders.iter().flat_map(|o| &o.lines).filter(|l| l.sku.as_str() == sku).map(|l| u64::from(l.qty)).sum();
    assert_eq!(sold, 100, "journaled units equal the stock");
    // Commits reach the SKU actor as messages right after each order is durable:
    // the read model settles with every journaled unit sold and nothing held.
    let id = flashcore_domain::Sku::parse(&sku).unwrap();
    eventually(Duration::from_secs(5), "sold to equal the journal", || async {
        let stock = app.engine.availability(&id).await.unwrap();
        ((stock.sold, stock.held) == (100, 0)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_of_mixed_quantities_never_oversell() {
    let app = Arc::new(TestApp::spawn().await);
    let sku = app.add_product("DROP-MIX", 100, None, 97).await;
    let tasks = (0..300u64).map(|i| {
        let (app, sku) = (Arc::clone(&app), sku.clone());
        tokio::spawn(async move {
            let (cart, token) = app.new_cart().await;
            if app.set_item(&cart, &token, &sku, 1 + i % 4).await.status() == StatusCode::OK {
                let status = app.checkout(&cart, &token, &format!("k{i}"), "tok_visa").await.status();
                assert!(!status.is_server_error(), "{status}");
            }
        })
    });
    for r in join_all(tasks).await {
        r.unwrap();
    }
    let orders = app.engine.orders(10_000, None).await.unwrap();
    let sold: u64 = orders.iter().flat_map(|o| &o.lines).map(|l| u64::from(l.qty)).sum();
    assert!(sold <= 97);
    let id = flashcore_domain::Sku::parse(&sku).unwrap();
    let stock = eventually(Duration::from_secs(5), "sold to equal the journal with nothing held", || async {
        let stock = app.engine.availability(&id).await.unwrap();
        (stock.sold == sold && stock.held == 0).then_some(stock)
    })
    .await;
    assert_eq!(stock.total, stock.sold + stock.available);
}
