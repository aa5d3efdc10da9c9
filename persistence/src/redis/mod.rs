//! Redis adapters for the state every HTTP node shares, over one connection
//! ([`Redis`]) under one key prefix: idempotency keys (`idempotency.rs`: `SET … NX
//! GET` for a claim, a Lua script for the rest), GCRA rate limits (`rate_limit.rs`,
//! a Lua script on Redis `TIME`) and the availability fan-out between nodes
//! ([`feed::RedisFeed`]). Needs Redis 7 or later (`SET` with both `NX` and `GET`).
//!
//! Redis is never on the critical path of start-up: [`Redis::new`] does no I/O,
//! the connection is made on first use and remade after failures (refused
//! credentials included: a Redis restarted with the right password is found
//! again without a restart), and every operation gives up after `op_timeout`
//! with a [`StoreError`] (the caller answers 503 or falls back). Operations go
//! through the `redis` circuit breaker ([`flashcore_actors::breaker`]): after a
//! few consecutive failures they fail at once until a probe finds Redis back. Keys all live under one prefix:
//! `{prefix}idem:{key}`, `{prefix}rl:{key}`, the hash `{prefix}avail` (SKU → JSON)
//! and the pub/sub channel `{prefix}avail`.

mod feed;
mod idempotency;
mod rate_limit;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashcore_actors::breaker::{Breaker, BreakerConfig, Guarded};
use flashcore_http_ports::StoreError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult};

pub use feed::RedisFeed;

/// Whole milliseconds for `PX`, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn count_error(op: &'static str) {
    metrics::counter!("flashcore_redis_errors_total", "op" => op).increment(1);
}

struct Inner {
    client: redis::Client,
    prefix: String,
    op_timeout: Duration,
    /// Made on first use (inside the runtime); it reconnects by itself after a
    /// dropped connection, and is made anew after refused credentials.
    manager: Mutex<Option<ConnectionManager>>,
    /// Shared by every operation of this connection (and its feed's writes).
    breaker: Arc<Breaker>,
    /// Whether the last operation failed to reach Redis (so loss and recovery are
    /// each logged once).
    down: AtomicBool,
}

/// A connection to Redis under one key prefix: idempotency keys, rate limits and
/// the availability feed of every node that shares the prefix.
///
/// Cheap to clone (one connection, multiplexed). Its `Debug` shows the address,
/// never the URL's credentials.
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.0.client.get_connection_info();
        f.debug_struct("Redis")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("prefix", &self.0.prefix)
            .field("op_timeout", &self.0.op_timeout)
            .finish()
    }
}

impl Redis {
    /// No I/O: never fails or blocks because Redis is down. Connects lazily on first
    /// use and reconnects after failures. Every operation gives up after
    /// `op_timeout` with [`StoreError`]. Fails only for a malformed URL.
    pub fn new(url: &str, prefix: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        // The error text of a malformed URL could echo it, password included.
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind())))?;
        let redis = Redis(Arc::new(Inner {
            client,
            prefix: prefix.to_owned(),
            op_timeout,
            manager: Mutex::new(None),
            breaker: Breaker::new("redis", breaker_config(op_timeout)),
            down: AtomicBool::new(false),
        }));
        // While open, a PING probes Redis (weakly held: the breaker is Redis's own).
        let weak = Arc::downgrade(&redis.0);
        redis.0.breaker.spawn_prober(Box::new(move || {
            let weak = weak.clone();
            Box::pin(async move {
                let Some(inner) = weak.upgrade() else { return Err("redis connection dropped".into()) };
                Redis(inner).probe().await
            })
        }));
        Ok(redis)
    }

    /// One `PING` around the breaker (its prober's probe). A failed probe
    /// forgets the connection, so the next one connects afresh: a connection
    /// that hangs (a network path that drops packets) or was refused its
    /// credentials is never reused.
    async fn probe(&self) -> Result<(), String> {
        let attempt = async {
            let mut con = self.manager()?;
            redis::cmd("PING").query_async::<String>(&mut con).await
        };
        let outcome = match tokio::time::timeout(self.0.op_timeout, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("ping timed out after {:?}", self.0.op_timeout)),
        };
        match outcome {
            Ok(()) => self.mark_up(),
            Err(_) => self.forget_connection(),
        }
        outcome
    }

    /// The `redis` circuit breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.0.breaker
    }

    /// The namespace every key of this connection lives under.
    pub fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// The time limit of one operation.
    pub fn op_timeout(&self) -> Duration {
        self.0.op_timeout
    }

    /// Round-trips a `PING` (readiness checks).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |mut con| async move { redis::cmd("PING").query_async::<String>(&mut con).await })
            .await
            .map(drop)
    }

    /// Deletes every key under this prefix (SCAN + UNLINK); tests use it to
    /// clean up. Returns how many keys went.
    pub async fn delete_prefix(&self) -> Result<u64, StoreError> {
        let pattern = format!("{}*", glob_escape(&self.0.prefix));
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let pattern = pattern.clone();
            let (next, keys) = self
                .run("scan", |mut con| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async::<(u64, Vec<String>)>(&mut con)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                deleted += self
                    .run("unlink", |mut con| async move {
                        redis::cmd("UNLINK").arg(keys).query_async::<u64>(&mut con).await
                    })
                    .await?;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.0.prefix)
    }

    fn feed_key(&self) -> String {
        format!("{}avail", self.0.prefix)
    }

    /// The shared connection, made (without I/O) on first use.
    fn manager(&self) -> RedisResult<ConnectionManager> {
        let mut slot = self.0.manager.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let timeout = self.0.op_timeout;
        // One attempt per use (no retry loop inside the manager): the caller's
        // deadline bounds the wait and a failed attempt is remade by the next use.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_max_delay(Duration::from_secs(1));
        let m = ConnectionManager::new_lazy_with_config(self.0.client.clone(), config)?;
        *slot = Some(m.clone());
        Ok(m)
    }

    /// Forgets the connection: the next use makes a new one (after refused
    /// credentials, which a manager would otherwise keep failing with).
    fn forget_connection(&self) {
        *self.0.manager.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Runs one operation against the shared connection within `op_timeout`
    /// through the breaker, counting and logging (once per outage) failures.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempt = async {
            let con = self.manager()?;
            f(con).await
        };
        match self.0.breaker.call(attempt, is_outage).await {
            Ok(v) => {
                self.mark_up();
                Ok(v)
            }
            Err(Guarded::Rejected { retry_in }) => {
                count_error(op);
                Err(StoreError::Rejected(format!(
                    "redis {op}: circuit open, next probe in {} ms",
                    retry_in.as_millis()
                )))
            }
            Err(Guarded::Inner(e)) => {
                count_error(op);
                if is_auth(&e) {
                    self.forget_connection();
                }
                if is_outage(&e) {
                    self.mark_down(op, &e.to_string());
                } else {
                    tracing::debug!(redis.op = op, error = %e, "redis command failed");
                }
                Err(StoreError::Unavailable(format!("redis {op}: {e}")))
            }
            Err(Guarded::TimedOut(d)) => {
                count_error(op);
                let msg = format!("timed out after {d:?}");
                self.mark_down(op, &msg);
                Err(StoreError::Unavailable(format!("redis {op}: {msg}")))
            }
        }
    }

    fn mark_down(&self, op: &'static str, error: &str) {
        if !self.0.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis.op = op,
                error,
                "lost the connection to redis; shared state unavailable until it returns"
            );
        }
    }

    fn mark_up(&self) {
        if self.0.down.swap(false, Ordering::Relaxed) {
            tracing::info!("connection to redis restored");
        }
    }
}

/// The `redis` breaker: calls bounded by `op_timeout`, probes from half a second.
fn breaker_config(op_timeout: Duration) -> BreakerConfig {
    BreakerConfig {
        failures: 3,
        call_timeout: op_timeout,
        probe_base: Duration::from_millis(500),
        probe_max: Duration::from_secs(4),
    }
}

/// Errors that mean "Redis is out of reach or refuses us" (as opposed to a
/// refused command): they count against the breaker.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() || is_auth(e)
}

/// Refused credentials (`WRONGPASS`, `NOAUTH`): retried like an outage, on a new connection.
fn is_auth(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::AuthenticationFailed)
        || e.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
        || e.to_string().contains("WRONGPASS")
        || e.to_string().contains("NOAUTH")
}

/// Escapes the glob characters of `s` for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let redis = Redis::new("redis://user:s3cret@example.com:6380/2", "p:", Duration::from_secs(1));
        let shown = format!("{redis:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("example.com:6380"), "{shown}");
    }

    #[test]
    fn a_malformed_url_is_refused_without_echoing_it() {
        let err = Redis::new("http://user:s3cret@nowhere", "p:", Duration::from_secs(1)).err();
        assert!(err.is_some_and(|e| !e.message().contains("s3cret")));
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
