//! Every migration is reversible: up, down to nothing, and up again, on both stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flashcore_persistence::postgres::PgStore;
use flashcore_persistence::sqlite::SqliteStore;
use flashcore_test_support::{TestDatabase, test_server_url};

#[tokio::test]
async fn sqlite_migrations_go_down_to_nothing_and_up_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("m.db").to_string_lossy()).await.unwrap();
    let migrator = sqlx::migrate!("../migrations/sqlite");
    let pool = store.write_pool();
    migrator.undo(pool, 0).await.expect("down migrations run");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_sqlx%' AND name NOT LIKE 'sqlite_%'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(tables, 0, "down removes every table");
    migrator.run(pool).await.expect("up again");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'orders'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn postgres_migrations_go_down_to_nothing_and_up_again() {
    let db = TestDatabase::create(&test_server_url()).await.unwrap();
    let store = PgStore::connect(&db.url).await.unwrap();
    let migrator = sqlx::migrate!("../migrations/postgres");
    let pool = store.pool();
    migrator.undo(pool, 0).await.expect("down migrations run");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(tables, 0, "down removes every table");
    migrator.run(pool).await.expect("up again");
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(tables, 1);
    pool.close().await;
}
