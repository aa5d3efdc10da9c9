//! Many buyers, little stock: exactly the stock is sold, never more, every
//! acknowledged order is in the journal, and the only refusals are out-of-stock.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use flashcore_tests::{TestApp, eventually, problem};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::Barrier;

/// What one buyer got.
#[derive(Debug)]
enum Outcome {
    /// An acknowledged order: its id and the units it holds.
    Ordered(String, u64),
    /// The cart was refused `wanted` units as out of stock, with `available` free.
    OutOfStock { wanted: u64, available: u64 },
    /// Anything else: a failure of the test's premise.
    Unexpected(String),
}

/// One buyer: a cart, `qty` units of `sku`, a checkout under `key`.
async fn buy(app: &TestApp, sku: &str, qty: u64, key: &str, start: Option<&Barrier>) -> Outcome {
    let cart = app.new_cart().await;
    if let Some(b) = start {
        b.wait().await;
    }
    let put = cart.set(sku, qty).await;
    match put.status() {
        StatusCode::OK => {}
        StatusCode::CONFLICT => {
            return match problem(put, 409, "out-of-stock").await {
                Ok(p) => Outcome::OutOfStock { wanted: qty, available: p["available"].as_u64().unwrap_or(u64::MAX) },
                Err(e) => Outcome::Unexpected(format!("setting {qty}: {e}")),
            };
        }
        s => return Outcome::Unexpected(format!("setting {qty}: {s} {}", put.text().await.unwrap_or_default())),
    }
    // The hold is the buyer's: with a card that pays, the checkout must succeed.
    let res = cart.checkout(key).await;
    match res.status() {
        StatusCode::CREATED => {
            let order: Value = res.json().await.unwrap();
            Outcome::Ordered(order["order_id"].as_str().unwrap().to_owned(), qty)
        }
        s => Outcome::Unexpected(format!("checkout of {qty}: {s} {}", res.text().await.unwrap_or_default())),
    }
}

/// Panics listing every outcome that is neither an order nor an out-of-stock refusal.
fn assert_only_orders_and_out_of_stock(outcomes: &[Outcome]) {
    let unexpected: Vec<&str> =
        outcomes.iter().filter_map(|o| if let Outcome::Unexpected(e) = o { Some(e.as_str()) } else { None }).collect();
    assert!(unexpected.is_empty(), "{} unexpected outcome(s):\n{}", unexpected.len(), unexpected.join("\n"));
}

/// The journal's orders of `sku`: their ids and the units they hold.
async fn journaled(app: &TestApp, sku: &str) -> (BTreeSet<String>, u64) {
    let orders = app.engine.orders(10_000, None).await.unwrap();
    let of_sku: Vec<_> = orders.iter().filter(|o| o.lines.iter().any(|l| l.sku.as_str() == sku)).collect();
    let sold = of_sku.iter().flat_map(|o| &o.lines).filter(|l| l.sku.as_str() == sku).map(|l| u64::from(l.qty)).sum();
    (of_sku.iter().map(|o| o.id.to_string()).collect(), sold)
}

/// Waits until the SKU actor counts exactly `sold` units sold and none held.
async fn settles_at(app: &TestApp, sku: &str, sold: u64) -> flashcore_domain::Availability {
    // Commits reach the SKU actor as messages right after each order is durable.
    let id = flashcore_domain::Sku::parse(sku).unwrap();
    eventually(Duration::from_secs(5), "sold to equal the journal with nothing held", || async {
        let stock = app.engine.availability(&id).await.unwrap();
        (stock.sold == sold && stock.held == 0).then_some(stock)
    })
    .await
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
        tokio::spawn(async move { buy(&app, &sku, 1, &format!("buyer-{i}"), Some(&start)).await })
    });
    let outcomes: Vec<Outcome> = join_all(tasks).await.into_iter().map(Result::unwrap).collect();

    // Assert: a hundred orders, nine hundred out-of-stock refusals, nothing else.
    assert_only_orders_and_out_of_stock(&outcomes);
    let acked: BTreeSet<String> =
        outcomes.iter().filter_map(|o| if let Outcome::Ordered(id, _) = o { Some(id.clone()) } else { None }).collect();
    assert_eq!(acked.len(), 100);
    let refused: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| if let Outcome::OutOfStock { available, .. } = o { Some(*available) } else { None })
        .collect();
    assert_eq!(refused.len(), buyers - 100);
    assert!(refused.iter().all(|a| *a == 0), "a one-unit buyer is only refused when nothing is free");
    let product = app.product(&sku).await;
    assert_eq!(product["available"], 0);
    assert_eq!(product["total"], 100);
    let (journal, sold) = journaled(&app, &sku).await;
    assert_eq!(journal, acked, "the journal holds exactly the acknowledged orders");
    assert_eq!(sold, 100, "journaled units equal the stock");
    settles_at(&app, &sku, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_of_mixed_quantities_sell_exactly_the_stock() {
    // Arrange: 97 units and demand for about 750 (1 to 4 units each).
    let app = Arc::new(TestApp::spawn().await);
    let stock = 97;
    let sku = app.add_product("DROP-MIX", 100, None, stock).await;

    // Act
    let tasks = (0..300u64).map(|i| {
        let (app, sku) = (Arc::clone(&app), sku.clone());
        tokio::spawn(async move { buy(&app, &sku, 1 + i % 4, &format!("k{i}"), None).await })
    });
    let outcomes: Vec<Outcome> = join_all(tasks).await.into_iter().map(Result::unwrap).collect();

    // Assert: only orders and out-of-stock refusals; every refusal was right.
    assert_only_orders_and_out_of_stock(&outcomes);
    let mut acked = BTreeSet::new();
    let mut ordered_units = 0;
    for o in &outcomes {
        match o {
            Outcome::Ordered(id, qty) => {
                acked.insert(id.clone());
                ordered_units += qty;
            }
            Outcome::OutOfStock { wanted, available } => {
                assert!(available < wanted, "refused {wanted} with {available} free");
            }
            Outcome::Unexpected(_) => {}
        }
    }
    let (journal, sold) = journaled(&app, &sku).await;
    assert_eq!(journal, acked, "the journal holds exactly the acknowledged orders");
    assert_eq!(sold, ordered_units, "every acknowledged unit is sold, and only those");
    assert!(sold <= stock);
    // Nothing is released during the sale (every hold is checked out), so what is
    // left now is at most what any refused buyer saw: too little for each of them.
    let left = app.available(&sku).await;
    assert_eq!(sold + left, stock, "the stock is sold or free, none lost");
    let smallest_refused = outcomes.iter().filter_map(|o| match o {
        Outcome::OutOfStock { wanted, .. } => Some(*wanted),
        _ => None,
    });
    assert!(smallest_refused.clone().count() > 0, "demand exceeded the stock");
    assert!(smallest_refused.min().is_some_and(|w| left < w), "{left} left, enough for a refused buyer");

    // Act: a last buyer takes exactly what is left.
    if left > 0 {
        assert!(matches!(buy(&app, &sku, left, "last", None).await, Outcome::Ordered(_, n) if n == left));
    }
    let refused = buy(&app, &sku, 1, "after", None).await;

    // Assert: the whole stock is sold, and then nothing more.
    assert!(matches!(refused, Outcome::OutOfStock { wanted: 1, available: 0 }), "{refused:?}");
    let (_, sold) = journaled(&app, &sku).await;
    assert_eq!(sold, stock);
    let settled = settles_at(&app, &sku, stock).await;
    assert_eq!((settled.total, settled.available), (stock, 0));
}
