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

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The indexes `0..n`, each handed to whichever worker asks next.
#[derive(Clone)]
struct Shares {
    next: Arc<AtomicUsize>,
    n: usize,
}

impl Shares {
    fn take(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.n).then_some(i)
    }
}

/// Spawns `conns` workers over the shared indexes `0..n` and returns what each
/// returned.
async fn spawn_workers<T, F, Fut>(n: usize, conns: usize, worker: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Shares) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let shares = Shares { next: Arc::new(AtomicUsize::new(0)), n };
    let tasks: Vec<_> = (0..conns).map(|_| tokio::spawn(worker(shares.clone()))).collect();
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.expect("worker"));
    }
    all
}

/// Runs `work(i)` for every `i` in `0..n` on `conns` concurrent workers; returns
/// what each worker collected.
async fn on_workers<T, F, Fut>(n: usize, conns: usize, work: F) -> Vec<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send,
{
    let work = Arc::new(work);
    spawn_workers(n, conns, move |shares| {
        let work = Arc::clone(&work);
        async move {
            let mut out = Vec::new();
            while let Some(i) = shares.take() {
                out.push(work(i).await);
            }
            out
        }
    })
    .await
}

/// The body of every checkout.
const CHECKOUT_BODY: &[u8] = br#"{"payment":{"token":"tok_visa"}}"#;

/// Checks out `carts[0..n]` over `conns` HTTP/1.1 connections to `authority`
/// (`host:port`), one request at a time on each; returns (created?, latency µs).
async fn on_connections(
    n: usize,
    conns: usize,
    authority: String,
    carts: Arc<Vec<(String, String)>>,
) -> Vec<Vec<(bool, u64)>> {
    spawn_workers(n, conns, move |shares| {
        let (carts, authority) = (Arc::clone(&carts), authority.clone());
        async move {
            let stream = tokio::net::TcpStream::connect(&authority).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(conn);
            let mut out = Vec::new();
            while let Some(i) = shares.take() {
                let (id, token) = &carts[i];
                let req = hyper::Request::post(format!("/v1/carts/{id}/checkout"))
                    .header(hyper::header::HOST, authority.as_str())
                    .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
                    .header("idempotency-key", format!("co-{id}"))
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from_static(CHECKOUT_BODY)))
                    .expect("a valid request");
                let sent = Instant::now();
                let ok = match sender.send_request(req).await {
                    // Read the answer to its end: the connection is then free for the next.
                    Ok(res) => res.status() == StatusCode::CREATED && res.into_body().collect().await.is_ok(),
                    Err(_) => false,
                };
                out.push((ok, sent.elapsed().as_micros() as u64));
                if !ok && sender.ready().await.is_err() {
                    break; // the connection is gone; the other workers go on
                }
            }
            out
        }
    })
    .await
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

    // Timed: one checkout per cart, each worker on its own kept-alive HTTP/1.1
    // connection (hyper's connection API: no pool, no URL parsing), so the
    // driver spends as little of the shared cores as pgbench does.
    eprintln!("checking out {n} carts");
    let authority = base.strip_prefix("http://").expect("an http:// base URL").trim_end_matches('/').to_owned();
    let started = Instant::now();
    let results = on_connections(n, conns, authority, carts).await;
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
