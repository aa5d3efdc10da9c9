//! The axum hello-world ceiling for `scripts/sidebyside.sh`: `GET /` answers
//! `ok`, on the same runtime (multi-thread tokio) and allocator (mimalloc) as the
//! `flashcore` binary, so the side-by-side compares flashcore's hot path with what
//! axum itself allows on this machine.
//!
//! Listens on `HELLO_ADDR` (default `127.0.0.1:0`, a free port) and prints
//! `listening on <addr>` once bound; stops on SIGINT or SIGTERM.

use axum::Router;
use axum::routing::get;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::var("HELLO_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().route("/", get(|| async { "ok" }));
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
