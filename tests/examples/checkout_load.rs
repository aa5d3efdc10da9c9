//! Durable checkouts per second, like for like with pgbench's hot-row transaction
//! (one stock update + one order insert): the carts are created and filled
//! *before* the clock starts, then `CONNS` workers check them out, each checkout
//! answered 201 only once its journal batch has committed.
//!
//! ```text
//! checkout_load <base_url> <sku> <carts> [conns]
//! ```
//!
//! Prints one line: `SIDEBYSIDE checkout_only orders=… failures=… duration_us=…
//! p50_us=… p99_us=… max_us=…` (used by `scripts/sidebyside.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// Runs `work(i)` for every `i` in `0..n` on `conns` concurrent workers; returns
/// what each worker collected.
async fn on_workers<T, F, Fut>(n: usize, conns: usize, work: F) -> Vec<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (next, work) = (Arc::clone(&next), Arc::clone(&work));
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return out;
                    }
                    out.push(work(i).await);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("worker"));
    }
    all
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, sku, carts, rest @ ..] = args.as_slice() else {
        eprintln!("usage: checkout_load <base_url> <sku> <carts> [conns]");
        std::process::exit(2);
    };
    let n: usize = carts.parse().expect("carts is a number");
    let conns: usize = rest.first().map_or(64, |c| c.parse().expect("conns is a number"));
    let client = Client::builder().pool_max_idle_per_host(conns).build().unwrap();

    // Untimed: n carts, each holding one unit of the SKU.
    let (c, b, s) = (client.clone(), base.clone(), sku.clone());
    let filled = on_workers(n, conns, move |_| {
        let (client, base, sku) = (c.clone(), b.clone(), s.clone());
        async move {
            let cart: Value = client.post(format!("{base}/v1/carts")).send().await.unwrap().json().await.unwrap();
            let (id, token) =
                (cart["cart_id"].as_str().unwrap().to_owned(), cart["token"].as_str().unwrap().to_owned());
            let res = client
                .put(format!("{base}/v1/carts/{id}/items/{sku}"))
                .bearer_auth(&token)
                .json(&json!({ "quantity": 1 }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK, "filling a cart");
            (id, token)
        }
    })
    .await;
    let carts: Arc<Vec<(String, String)>> = Arc::new(filled.into_iter().flatten().collect());

    // Timed: one checkout per cart.
    eprintln!("checking out {n} carts");
    let (c, b) = (client.clone(), base.clone());
    let started = Instant::now();
    let results = on_workers(n, conns, move |i| {
        let (client, base, carts) = (c.clone(), b.clone(), Arc::clone(&carts));
        async move {
            let (id, token) = &carts[i];
            let sent = Instant::now();
            let res = client
                .post(format!("{base}/v1/carts/{id}/checkout"))
                .bearer_auth(token)
                .header("Idempotency-Key", format!("co-{id}"))
                .json(&json!({ "payment": { "token": "tok_visa" } }))
                .send()
                .await;
            // Read the body to its end, so the connection goes back to the pool
            // instead of being closed (as pgbench keeps its connections).
            let ok = match res {
                Ok(r) => r.status() == StatusCode::CREATED && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (ok, sent.elapsed().as_micros() as u64)
        }
    })
    .await;
    let took = started.elapsed();
    let mut lat: Vec<u64> = results.iter().flatten().filter(|(ok, _)| *ok).map(|(_, us)| *us).collect();
    let failures = n - lat.len();
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
    println!(
        "SIDEBYSIDE checkout_only orders={} failures={failures} duration_us={} p50_us={} p99_us={} max_us={}",
        lat.len(),
        took.as_micros(),
        pct(0.50),
        pct(0.99),
        lat.last().copied().unwrap_or(0)
    );
}
