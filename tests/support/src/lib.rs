//! What flashcore's test crates share: a throwaway Postgres database per test,
//! the URLs of the machine's test services, and the one deadline poll.
//!
//! It depends on no flashcore crate, so `flashcore-persistence` can take it as a
//! dev-dependency without a cycle.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

/// How often [`eventually`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `check` until it returns `Some`, and returns that value; panics naming
/// `what` once `within` has passed. It only waits between attempts, so a test
/// that uses it passes as soon as the condition holds, never by sleeping.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The Postgres server tests use: `FLASHCORE_TEST_PG`, or a local Postgres
/// (`postgres://postgres@127.0.0.1:5432/postgres`).
pub fn test_server_url() -> String {
    std::env::var("FLASHCORE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis tests use: `FLASHCORE_TEST_REDIS`, or the machine's `redis://127.0.0.1:6379`.
pub fn test_redis_url() -> String {
    std::env::var("FLASHCORE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A throwaway database: [`TestDatabase::create`] makes a uniquely named, empty
/// database on a server and dropping the value drops the database (`WITH
/// (FORCE)`, so connections still open are cut).
///
/// Close or drop every pool on [`TestDatabase::url`] before dropping this; the
/// drop blocks the calling thread while it runs.
#[derive(Debug)]
pub struct TestDatabase {
    /// The URL of the new database.
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

impl TestDatabase {
    /// Creates `flashcore_test_<uuid>` on the server at `server_url`, connecting
    /// to its `postgres` database to do so.
    pub async fn create(server_url: &str) -> Result<Self, sqlx::Error> {
        let admin = PgConnectOptions::from_str(server_url)?.database("postgres");
        let name = format!("flashcore_test_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(server_url, &name)?;
        let mut conn = admin.connect().await?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await?;
        conn.close().await?;
        Ok(TestDatabase { url, name, admin })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop may run inside a runtime (which cannot block on another future), so
        // the work gets a thread and a runtime of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = admin.connect().await.map_err(|e| e.to_string())?;
                conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("cannot drop test database {}: the dropping thread panicked", self.name),
        }
    }
}

/// `url` with its database (path) replaced by `name`, query parameters kept.
fn with_database(url: &str, name: &str) -> Result<String, sqlx::Error> {
    let bad = || sqlx::Error::Configuration(format!("not a postgres:// URL: {url}").into());
    let authority_start = url.find("://").ok_or_else(bad)? + 3;
    let (scheme, rest) = url.split_at(authority_start);
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let query = tail.find('?').map_or("", |i| &tail[i..]);
    let out = format!("{scheme}{authority}/{name}{query}");
    match PgConnectOptions::from_str(&out) {
        Ok(o) if o.get_database() == Some(name) => Ok(out),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{eventually, with_database};

    #[tokio::test]
    async fn eventually_returns_the_first_value_the_check_yields() {
        let mut attempts = 0;
        let got = eventually(Duration::from_secs(5), "the third attempt", || {
            attempts += 1;
            let n = attempts;
            async move { (n == 3).then_some(n * 10) }
        })
        .await;
        assert_eq!((got, attempts), (30, 3));
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible")]
    async fn eventually_panics_naming_what_it_waited_for_once_the_deadline_passes() {
        eventually(Duration::from_millis(30), "the impossible", || async { None::<()> }).await;
    }

    #[test]
    fn with_database_replaces_only_the_path() {
        let cases = [
            ("postgres://u@h:5432/postgres", "postgres://u@h:5432/x"),
            ("postgres://u:p@h/db?sslmode=disable", "postgres://u:p@h/x?sslmode=disable"),
            ("postgresql://h", "postgresql://h/x"),
            ("postgres://h?application_name=t", "postgres://h/x?application_name=t"),
        ];
        for (url, want) in cases {
            assert_eq!(with_database(url, "x").ok().as_deref(), Some(want), "{url}");
        }
        assert!(with_database("nonsense", "x").is_err());
    }
}
