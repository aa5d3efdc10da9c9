//! Opens `carts` carts over the HTTP API, each with one line of one unit (the
//! SKUs taken round robin), for the RSS-per-active-cart figure of
//! `scripts/bench-scale.sh`.
//!
//! ```text
//! cart_rss <base_url> <carts> <conns> <sku>[,<sku>…]
//! ```
//!
//! Each of `conns` workers keeps one HTTP/1.1 connection (hyper's connection
//! API, as `checkout_load` does) and, per cart, sends `POST /v1/carts` and then
//! `PUT /v1/carts/{id}/items/{sku}` `{"quantity":1}` with the cart's token.
//! With `-` for the SKUs the carts stay empty (to tell the cost of a cart from
//! that of its line). Prints one line: `CARTS created=… lines=… failures=…
//! secs=…`; exits non-zero if any cart or line failed.

#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;

const LINE_BODY: &[u8] = br#"{"quantity":1}"#;

/// What one worker did.
#[derive(Debug, Default)]
struct Tally {
    created: usize,
    lines: usize,
    failures: usize,
    first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, what: String) {
        self.failures += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Sends `req` and reads the answer to its end.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((status, body))
}

async fn worker(authority: String, next: Arc<AtomicUsize>, n: usize, skus: Arc<Vec<String>>) -> Tally {
    let mut tally = Tally::default();
    let stream = match tokio::net::TcpStream::connect(&authority).await {
        Ok(s) => s,
        Err(e) => {
            tally.fail(format!("connect: {e}"));
            return tally;
        }
    };
    stream.set_nodelay(true).expect("nodelay");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            break;
        }
        let create = hyper::Request::post("/v1/carts")
            .header(hyper::header::HOST, authority.as_str())
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let (id, token) = match send(&mut sender, create).await {
            Ok((StatusCode::CREATED, body)) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match (v["cart_id"].as_str(), v["token"].as_str()) {
                    (Some(id), Some(token)) => (id.to_owned(), token.to_owned()),
                    _ => {
                        tally.fail(format!("POST /v1/carts answered {}", String::from_utf8_lossy(&body)));
                        continue;
                    }
                }
            }
            Ok((status, body)) => {
                tally.fail(format!("POST /v1/carts: {status} {}", String::from_utf8_lossy(&body)));
                continue;
            }
            Err(e) => {
                tally.fail(format!("POST /v1/carts: {e}"));
                break; // the connection is gone
            }
        };
        tally.created += 1;
        if skus.is_empty() {
            continue;
        }
        let sku = &skus[i % skus.len()];
        let put = hyper::Request::put(format!("/v1/carts/{id}/items/{sku}"))
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(LINE_BODY)))
            .expect("a valid request");
        match send(&mut sender, put).await {
            Ok((StatusCode::OK, _)) => tally.lines += 1,
            Ok((status, body)) => tally.fail(format!("PUT item: {status} {}", String::from_utf8_lossy(&body))),
            Err(e) => {
                tally.fail(format!("PUT item: {e}"));
                break;
            }
        }
    }
    tally
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, carts, conns, skus] = args.as_slice() else {
        eprintln!("usage: cart_rss <base_url> <carts> <conns> <sku>[,<sku>…]");
        std::process::exit(2);
    };
    let n: usize = carts.parse().expect("carts is a number");
    let conns: usize = conns.parse().expect("conns is a number");
    let skus: Vec<String> = skus.split(',').map(str::to_owned).filter(|s| !s.is_empty() && s != "-").collect();
    let lines = if skus.is_empty() { 0 } else { n };
    let skus = Arc::new(skus);
    let authority = base.strip_prefix("http://").expect("an http:// base URL").trim_end_matches('/').to_owned();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> =
        (0..conns).map(|_| tokio::spawn(worker(authority.clone(), Arc::clone(&next), n, Arc::clone(&skus)))).collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.expect("worker");
        all.created += t.created;
        all.lines += t.lines;
        all.failures += t.failures;
        if let Some(e) = t.first_error {
            all.first_error.get_or_insert(e);
        }
    }
    let took = started.elapsed();
    // Workers that lost their connection leave carts undone: count them too.
    let failures = all.failures.max(n - all.created).max(lines - all.lines);
    println!("CARTS created={} lines={} failures={failures} secs={:.2}", all.created, all.lines, took.as_secs_f64());
    if failures > 0 {
        eprintln!("cart_rss: {failures} failures; first: {}", all.first_error.unwrap_or_default());
        std::process::exit(1);
    }
}
