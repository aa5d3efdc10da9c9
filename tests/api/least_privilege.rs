//! Least privilege on Postgres: the migrations run as a role that owns the
//! schema (`FLASHCORE_MIGRATE_DATABASE_URL`), the service as one that can only
//! read and write the tables, both made by `deploy/postgres/roles.sql`.

use std::time::Duration;

use flashcore_persistence::postgres::PgStore;
use flashcore_tests::{Process, TestDatabase, test_server_url};
use reqwest::StatusCode;
use sqlx::{Connection, Executor, PgConnection};

/// Two login roles of this test's own, dropped (after the database that uses them) on drop.
struct Roles {
    owner: String,
    app: String,
}

impl Roles {
    fn new() -> Roles {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..10];
        Roles { owner: format!("lp_owner_{tag}"), app: format!("lp_app_{tag}") }
    }

    /// Runs `deploy/postgres/roles.sql` on `db`, as the deploy README says.
    fn apply(&self, db: &TestDatabase) {
        let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/postgres/roles.sql");
        let out = std::process::Command::new("psql")
            .args([db.url.as_str(), "-q", "-v", &format!("owner={}", self.owner), "-v", &format!("app={}", self.app)])
            .args(["-f", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "roles.sql: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([test_server_url().as_str(), "-q", "-c"])
            .arg(format!("DROP ROLE IF EXISTS \"{}\", \"{}\"", self.app, self.owner))
            .status();
    }
}

/// `url` with `role` as its user (trust auth: no password).
fn as_role(url: &str, role: &str) -> String {
    let start = url.find("://").expect("a URL") + 3;
    let rest = &url[start..];
    let host = rest.find('@').map_or(rest, |at| &rest[at + 1..]);
    format!("{}{role}@{host}", &url[..start])
}

/// The SQLSTATE `sql` fails with, run as `url`'s role.
async fn refused(url: &str, sql: &str) -> String {
    let mut conn = PgConnection::connect(url).await.expect("connects");
    let err = conn.execute(sql).await.expect_err(sql);
    err.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_as_a_role_that_cannot_change_the_schema() {
    // Arrange: the two roles on a fresh database (declared first: dropped last).
    let roles = Roles::new();
    let db = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    roles.apply(&db);
    let (owner_url, app_url) = (as_role(&db.url, &roles.owner), as_role(&db.url, &roles.app));
    let dir = flashcore_tests::data_dir();
    let data = dir.path().to_str().unwrap();

    // Act: migrate as the owner, serve as the app role, and sell.
    let mut p = Process::start(&[
        ("FLASHCORE_STORE", "postgres"),
        ("DATABASE_URL", &app_url),
        ("FLASHCORE_MIGRATE_DATABASE_URL", &owner_url),
        ("FLASHCORE_DATA_DIR", data),
    ])
    .await;
    let cart = p.new_cart().await;
    assert_eq!(cart.set("FLASH-SNEAKER-01", 2).await.status(), StatusCode::OK);
    let placed = cart.checkout("least-privilege-1").await;
    assert_eq!(placed.status(), StatusCode::CREATED);
    let order: serde_json::Value = placed.json().await.unwrap();

    // Assert: the owner owns every table; the app role cannot create, alter or drop.
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&mut admin)
            .await
            .unwrap();
    assert_eq!(owners, vec![roles.owner.clone()]);
    let sold: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&mut admin).await.unwrap();
    assert_eq!(sold, 1, "the order is in the journal");
    admin.close().await.unwrap();
    for ddl in [
        "CREATE TABLE intruder (i int)",
        "ALTER TABLE orders ADD COLUMN intruder int",
        "DROP TABLE orders",
        "TRUNCATE orders",
    ] {
        assert_eq!(refused(&app_url, ddl).await, "42501", "{ddl} must be refused (insufficient_privilege)");
    }

    // A restart as the app role alone: every migration is applied, none is tried.
    p.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(15), p.child.wait()).await.expect("stops");
    let p =
        Process::start(&[("FLASHCORE_STORE", "postgres"), ("DATABASE_URL", &app_url), ("FLASHCORE_DATA_DIR", data)])
            .await;
    let again = p
        .client
        .get(p.url(&format!("/v1/orders/{}", order["order_id"].as_str().unwrap())))
        .bearer_auth(&cart.token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the order survives the restart");
    drop(p);
    drop(db);
    drop(roles);
}

#[tokio::test]
async fn a_role_without_schema_rights_cannot_migrate_and_says_what_to_set() {
    let roles = Roles::new();
    let db = TestDatabase::create(&test_server_url()).await.expect("a database of its own");
    roles.apply(&db);
    let err = PgStore::connect(&as_role(&db.url, &roles.app)).await.expect_err("the app role cannot migrate");
    assert!(err.to_string().contains("FLASHCORE_MIGRATE_DATABASE_URL"), "{err}");
    drop(db);
    drop(roles);
}
