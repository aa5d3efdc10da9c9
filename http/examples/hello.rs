//! The axum hello-world ceiling for `scripts/sidebyside.sh`: `GET /` answers
//! `ok`, on the same runtime (multi-thread tokio) and allocator (mimalloc) as the
//! `flashcore` binary, so the side-by-side compares flashcore's hot path with what
//! axum itself allows on this machine.
//!
//! Listens on `HELLO_ADDR` (default `127.0.0.1:0`, a free port) and prints
//! `listening on <addr>` once bound; stops on SIGINT or SIGTERM.
//!
//! `HELLO_SPIN=<n>` makes each answer first spin through `n` rounds of
//! arithmetic: how the ceiling falls as a server spends more CPU per request
//! (README, Measuring), with nothing else about the server changed.

use axum::Router;
use axum::routing::get;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("HELLO_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let spin: u64 = std::env::var("HELLO_SPIN").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let app = Router::new().route(
        "/",
        get(move || async move {
            let mut x = 0u64;
            for i in 0..spin {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            std::hint::black_box(x);
            "ok"
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
}
