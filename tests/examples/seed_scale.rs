//! Seeds a store with the shape of issue 13's scale benchmark, fast: through the
//! store adapters' own batch paths, never through HTTP (see
//! [`flashcore_tests::scale`] for what it writes).
//!
//! ```text
//! seed_scale <store_url> <skus> <carts> <orders>
//! ```
//!
//! `store_url` is `postgres://…` or `sqlite://…`; the store is opened as the
//! binary opens it (`open_stores`, migrations included) and must be empty.
//! Prints `SEED phase=<name> items=<n> secs=<s>` per phase (and `phase=total`).

use anyhow::{Context, bail};
use flashcore_http::config::StoreKind;
use flashcore_tests::scale::{Shape, seed};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, skus, carts, orders] = args.as_slice() else {
        eprintln!("usage: seed_scale <postgres://…|sqlite://…> <skus> <carts> <orders>");
        std::process::exit(2);
    };
    let shape = Shape {
        skus: skus.parse().context("skus is a number")?,
        carts: carts.parse().context("carts is a number")?,
        orders: orders.parse().context("orders is a number")?,
    };
    let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        StoreKind::Postgres { url: url.clone(), migrate_url: None }
    } else if url.starts_with("sqlite:") {
        StoreKind::Sqlite { url: url.clone() }
    } else {
        bail!("the store URL must start with postgres:// or sqlite://");
    };
    seed(&store, shape, |phase, items, took| {
        println!("SEED phase={phase} items={items} secs={:.2}", took.as_secs_f64());
    })
    .await
}
