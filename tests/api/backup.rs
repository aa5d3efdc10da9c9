//! Backups: a `pg_dump` taken in the middle of a sale restores into a fresh
//! database, and flashcore started on it serves the orders the dump holds, with
//! the stock that agrees with them (deploy/README.md, "Backups and restore").

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_tests::{Process, TestDatabase, eventually, test_server_url};
use reqwest::StatusCode;
use serde_json::Value;

const SKU: &str = "FLASH-SNEAKER-01";
/// At most this many orders (the demo sneaker has 100 units).
const MAX_ORDERS: usize = 95;

fn pg_tool(tool: &str, args: &[&str]) {
    let out = std::process::Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn order_ids(p: &Process) -> HashSet<String> {
    let page = p.admin_get("/v1/admin/orders?limit=500").await;
    page["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_taken_mid_sale_restores_into_a_store_with_its_orders_and_stock() {
    // Arrange: a sale on Postgres, one buyer after another.
    let source = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    let (dir_a, dir_b) = (flashcore_tests::data_dir(), flashcore_tests::data_dir());
    let env = |db: &TestDatabase, dir: &tempfile::TempDir| {
        vec![
            ("FLASHCORE_STORE", "postgres".to_owned()),
            ("DATABASE_URL", db.url.clone()),
            ("FLASHCORE_DATA_DIR", dir.path().to_str().unwrap().to_owned()),
            ("FLASHCORE_LEASE_TTL_MS", "2000".to_owned()),
            ("FLASHCORE_ADMIN_KEY", flashcore_tests::TEST_ADMIN_KEY.to_owned()),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| v.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let env_a = as_refs(&env(&source, &dir_a));
    let env_a: Vec<(&str, &str)> = env_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Arc::new(Process::start(&env_a).await);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sale = tokio::spawn({
        let (a, acked, stop) = (Arc::clone(&a), Arc::clone(&acked), Arc::clone(&stop));
        async move {
            for n in 0..MAX_ORDERS {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let cart = a.new_cart().await;
                assert_eq!(cart.set(SKU, 1).await.status(), StatusCode::OK);
                let res = cart.checkout(&format!("backup-{n}")).await;
                assert_eq!(res.status(), StatusCode::CREATED);
                let order: Value = res.json().await.unwrap();
                acked.lock().unwrap().push(order["order_id"].as_str().unwrap().to_owned());
            }
        }
    });

    // Act: dump while it sells, restore into a fresh database, start there.
    eventually(Duration::from_secs(30), "the sale to be under way", || async {
        (acked.lock().unwrap().len() >= 10).then_some(())
    })
    .await;
    let before: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    let dump = dir_a.path().join("flashcore.dump");
    let dump_path = dump.to_str().unwrap().to_owned();
    let source_url = source.url.clone();
    tokio::task::spawn_blocking(move || pg_tool("pg_dump", &["--format=custom", "--file", &dump_path, &source_url]))
        .await
        .unwrap();
    let during = acked.lock().unwrap().len();
    // The sale goes on past the dump, then stops.
    eventually(Duration::from_secs(30), "orders after the dump", || async {
        (acked.lock().unwrap().len() >= during + 3).then_some(())
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sale.await.unwrap();
    let sold = acked.lock().unwrap().len();
    assert!(during < sold, "the dump was taken mid-sale ({during} of {sold} orders acknowledged by its end)");
    let restored = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    pg_tool("pg_restore", &["--no-owner", "--exit-on-error", "--dbname", &restored.url, dump.to_str().unwrap()]);
    let env_b = as_refs(&env(&restored, &dir_b));
    let env_b: Vec<(&str, &str)> = env_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // The dump holds the source's leases: the restored store is served once they lapse.
    let b = Process::start(&env_b).await;

    // Assert: every order acknowledged before the dump began is there, nothing
    // the source never sold, and the stock agrees with the orders.
    let in_restore = order_ids(&b).await;
    let in_source = order_ids(&a).await;
    assert_eq!(in_source.len(), sold);
    assert!(before.is_subset(&in_restore), "an order acknowledged before the dump is missing");
    assert!(in_restore.is_subset(&in_source), "the restore has an order the source never sold");
    let product = b.product(SKU).await;
    let out = product["total"].as_u64().unwrap() - product["available"].as_u64().unwrap();
    // Sold units, plus the one hold of the cart that was between reserve and checkout, if any.
    assert!(
        out == in_restore.len() as u64 || out == in_restore.len() as u64 + 1,
        "{out} units out of stock for {} orders",
        in_restore.len()
    );
    // And it sells on.
    let cart = b.new_cart().await;
    assert_eq!(cart.set(SKU, 1).await.status(), StatusCode::OK);
    assert_eq!(cart.checkout("after-restore").await.status(), StatusCode::CREATED);
    eprintln!(
        "backup: {} orders acknowledged when the dump began, {} in the restore, {sold} in the source",
        before.len(),
        in_restore.len()
    );
    drop(b);
    drop(a);
}
