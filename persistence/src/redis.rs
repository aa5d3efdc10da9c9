//! Redis adapters for the edge ports: idempotency keys and GCRA rate limits
//! ([`RedisEdge`], one atomic command per operation: `SET … NX GET` for a claim,
//! a Lua script for the rest) and the availability fan-out between edge nodes
//! ([`RedisFeed`]). Needs Redis 7 or later (`SET` with both `NX` and `GET`).
//!
//! Redis is never on the critical path of startup: [`RedisEdge::new`] does no I/O,
//! the connection is made on first use and remade after failures, and every
//! operation gives up after the edge's `op_timeout` with a [`StoreError`] (the
//! caller answers 503 or falls back). Keys all live under one prefix:
//! `{prefix}idem:{key}`, `{prefix}rl:{key}`, the hash `{prefix}avail` (SKU → JSON)
//! and the pub/sub channel `{prefix}avail`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use flashcore_actors::ports::{
    AvailabilityFeed, AvailabilityPublisher, IdempotencyClaim, IdempotencyStore, Quota, RateDecision, RateLimiter,
    StoreError, StoredResponse,
};
use flashcore_domain::{Availability, Sku};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, OnceCell, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::local::{gcra_params, retry_after_from_micros};
use crate::memory::LocalFeed;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `complete`: KEYS[1] the key; ARGV: the owner's running-entry prefix (see
/// [`running_prefix`]), the response (JSON), ttl (ms). Replaces the owner's
/// running entry by `{state: done, fingerprint, response}`; 1 if it did. Plain
/// string operations, no JSON decoding: the prefix identifies the owner's entry,
/// and the rest of it is the fingerprint, already JSON; the response is spliced
/// in as sent.
static COMPLETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
local done = '{"state":"done","fingerprint":' .. string.sub(cur, #ARGV[1] + 1, -2) .. ',"response":' .. ARGV[2] .. '}'
redis.call('SET', KEYS[1], done, 'PX', ARGV[3])
return 1
"#,
    )
});

/// `release`: KEYS[1] the key; ARGV[1] the owner's running-entry prefix. Deletes
/// the owner's running entry; 1 if it did.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
",
    )
});

/// How `owner`'s running entry begins, up to its fingerprint:
/// `{"state":"running","owner":"…","fingerprint":`. The owner is JSON-quoted, so
/// no other owner's entry begins the same way.
fn running_prefix(owner: &str) -> Result<String, StoreError> {
    let owner = serde_json::to_string(owner)
        .map_err(|e| StoreError::Unavailable(format!("encoding idempotency owner: {e}")))?;
    Ok(format!(r#"{{"state":"running","owner":{owner},"fingerprint":"#))
}

/// GCRA (see [`gcra_params`]): KEYS[1] holds the theoretical arrival time (µs of
/// Redis `TIME`); ARGV: emission interval and burst tolerance (µs). Returns `{1}`
/// (allowed) or `{0, µs to wait}`. The key expires when its TAT passes.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then return {0, ahead - tolerance} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1}
",
    )
});

/// An idempotency entry as stored. The scripts rely on serde's layout of a
/// running entry: the tag, then `owner`, then `fingerprint` (see [`running_prefix`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum IdemEntry {
    Running { owner: String, fingerprint: String },
    Done { fingerprint: String, response: StoredResponse },
}

/// Whole milliseconds for `PX`, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn count_error(op: &'static str) {
    metrics::counter!("flashcore_redis_errors_total", "op" => op).increment(1);
}

struct EdgeInner {
    client: redis::Client,
    prefix: String,
    op_timeout: Duration,
    /// Made on first use (inside the runtime); it reconnects by itself afterwards.
    manager: OnceCell<ConnectionManager>,
    /// Whether the last operation failed to reach Redis (so loss and recovery are
    /// each logged once).
    down: AtomicBool,
}

/// Idempotency keys and rate limits in Redis, shared by every edge node.
///
/// Cheap to clone (one connection, multiplexed). Its `Debug` shows the address,
/// never the URL's credentials.
#[derive(Clone)]
pub struct RedisEdge(Arc<EdgeInner>);

impl fmt::Debug for RedisEdge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.0.client.get_connection_info();
        f.debug_struct("RedisEdge")
            .field("addr", &info.addr().to_string())
            .field("db", &info.redis_settings().db())
            .field("prefix", &self.0.prefix)
            .field("op_timeout", &self.0.op_timeout)
            .finish()
    }
}

impl RedisEdge {
    /// No I/O: never fails or blocks because Redis is down. Connects lazily on first
    /// use and reconnects after failures. Every operation gives up after
    /// `op_timeout` with [`StoreError`]. Fails only for a malformed URL.
    pub fn new(url: &str, prefix: &str, op_timeout: Duration) -> Result<Self, StoreError> {
        // The error text of a malformed URL could echo it, password included.
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind())))?;
        Ok(RedisEdge(Arc::new(EdgeInner {
            client,
            prefix: prefix.to_owned(),
            op_timeout,
            manager: OnceCell::new(),
            down: AtomicBool::new(false),
        })))
    }

    /// The namespace every key of this edge lives under.
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

    /// Deletes every key under this edge's prefix (SCAN + UNLINK); tests use it to
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
    async fn manager(&self) -> RedisResult<ConnectionManager> {
        let timeout = self.0.op_timeout;
        let client = self.0.client.clone();
        self.0
            .manager
            .get_or_try_init(|| async move {
                // One attempt per use (no retry loop inside the manager): the caller's
                // deadline bounds the wait and a failed attempt is remade by the next use.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_max_delay(Duration::from_secs(1));
                ConnectionManager::new_lazy_with_config(client, config)
            })
            .await
            .cloned()
    }

    /// Runs one operation against the shared connection within `op_timeout`,
    /// counting and logging (once per outage) failures.
    async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let attempt = async {
            let con = self.manager().await?;
            f(con).await
        };
        match tokio::time::timeout(self.0.op_timeout, attempt).await {
            Ok(Ok(v)) => {
                self.mark_up();
                Ok(v)
            }
            Ok(Err(e)) => {
                count_error(op);
                if is_connectivity(&e) {
                    self.mark_down(op, &e.to_string());
                } else {
                    tracing::debug!(redis.op = op, error = %e, "redis command failed");
                }
                Err(StoreError::Unavailable(format!("redis {op}: {e}")))
            }
            Err(_) => {
                count_error(op);
                let msg = format!("timed out after {:?}", self.0.op_timeout);
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
                "lost the connection to redis; edge state unavailable until it returns"
            );
        }
    }

    fn mark_up(&self) {
        if self.0.down.swap(false, Ordering::Relaxed) {
            tracing::info!("connection to redis restored");
        }
    }
}

/// Errors that mean "Redis is out of reach" (as opposed to a refused command).
fn is_connectivity(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
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

#[async_trait]
impl IdempotencyStore for RedisEdge {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lock_ttl: Duration,
    ) -> Result<IdempotencyClaim, StoreError> {
        let entry = IdemEntry::Running { owner: owner.to_owned(), fingerprint: fingerprint.to_owned() };
        let entry = serde_json::to_string(&entry)
            .map_err(|e| StoreError::Unavailable(format!("encoding idempotency entry: {e}")))?;
        let key = self.key("idem", key);
        // One native command, no script: sets the running entry if the key is
        // free and answers nothing, or leaves it and answers the stored entry.
        let stored: Option<String> = self
            .run("idem_claim", |mut con| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(entry)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(lock_ttl))
                    .arg("GET")
                    .query_async(&mut con)
                    .await
            })
            .await?;
        let Some(stored) = stored else { return Ok(IdempotencyClaim::Acquired) };
        match serde_json::from_str(&stored) {
            Ok(IdemEntry::Running { fingerprint: f, .. } | IdemEntry::Done { fingerprint: f, .. })
                if f != fingerprint =>
            {
                Ok(IdempotencyClaim::Mismatch)
            }
            Ok(IdemEntry::Running { .. }) => Ok(IdempotencyClaim::InProgress),
            Ok(IdemEntry::Done { response, .. }) => Ok(IdempotencyClaim::Completed(response)),
            Err(e) => {
                count_error("idem_decode");
                Err(StoreError::Unavailable(format!("undecodable idempotency entry: {e}")))
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let response = serde_json::to_string(response)
            .map_err(|e| StoreError::Unavailable(format!("encoding stored response: {e}")))?;
        let key = self.key("idem", key);
        let owner = running_prefix(owner)?;
        self.run("idem_complete", |mut con| async move {
            COMPLETE.key(key).arg(owner).arg(response).arg(millis(ttl)).invoke_async::<i64>(&mut con).await
        })
        .await
        .map(drop)
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let key = self.key("idem", key);
        let owner = running_prefix(owner)?;
        self.run(
            "idem_release",
            |mut con| async move { RELEASE.key(key).arg(owner).invoke_async::<i64>(&mut con).await },
        )
        .await
        .map(drop)
    }
}

#[async_trait]
impl RateLimiter for RedisEdge {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, StoreError> {
        let (interval, tolerance) = gcra_params(quota);
        let key = self.key("rl", key);
        let reply: Vec<i64> = self
            .run("rate_limit", |mut con| async move {
                GCRA.key(key).arg(interval).arg(tolerance).invoke_async(&mut con).await
            })
            .await?;
        match reply.as_slice() {
            [1] => Ok(RateDecision::Allowed),
            [0, wait] => {
                Ok(RateDecision::Limited { retry_after: retry_after_from_micros(u64::try_from(*wait).unwrap_or(0)) })
            }
            _ => Err(StoreError::Unavailable(format!("unexpected rate limit reply: {reply:?}"))),
        }
    }
}

// ---------------------------------------------------------------------------
// Availability fan-out
// ---------------------------------------------------------------------------

/// How long the flusher waits after a flush before the next one: changes within
/// this window are coalesced into one pipeline (latest value per SKU).
const FLUSH_INTERVAL: Duration = Duration::from_millis(10);
/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often an idle subscription is checked with a `PING`.
const SUBSCRIBER_PING: Duration = Duration::from_secs(5);

/// One message on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct FeedMessage {
    sku: Sku,
    availability: Availability,
}

/// Who may write one SKU's entry of the mirror. The mirror's entries take a single
/// writer, so a SKU is either published here (its actor's publisher writes) or
/// mirrored from Redis (the subscriber writes, under this lock), never both.
#[derive(Default)]
struct Writer {
    /// This node publishes the SKU: remote values are ignored, the local one is the truth.
    own: bool,
    /// The subscriber's handle for a SKU published elsewhere.
    remote: Option<Box<dyn AvailabilityPublisher>>,
}

/// One SKU's state in the fan-out.
struct Slot {
    sku: Sku,
    /// Whether the SKU waits in the dirty queue (so it is queued at most once).
    queued: AtomicBool,
    writer: Mutex<Writer>,
}

struct FeedShared {
    edge: RedisEdge,
    /// What `latest`/`subscribe` read: reads never touch Redis.
    mirror: LocalFeed,
    slots: DashMap<Sku, Arc<Slot>>,
    /// SKUs changed since the last flush; their latest value is in the mirror.
    dirty: Mutex<Vec<Arc<Slot>>>,
    wake: Notify,
    stop: CancellationToken,
}

impl FeedShared {
    fn slot(&self, sku: &Sku) -> Arc<Slot> {
        if let Some(s) = self.slots.get(sku) {
            return Arc::clone(&s);
        }
        let slot = self.slots.entry(sku.clone()).or_insert_with(|| {
            Arc::new(Slot { sku: sku.clone(), queued: AtomicBool::new(false), writer: Mutex::default() })
        });
        Arc::clone(&slot)
    }

    /// Queues `slot` for the next flush unless it already waits.
    fn mark_dirty(&self, slot: &Arc<Slot>) {
        if !slot.queued.swap(true, Ordering::AcqRel) {
            lock(&self.dirty).push(Arc::clone(slot));
            self.wake.notify_one();
        }
    }

    /// Applies a value published elsewhere, unless this node publishes the SKU.
    fn apply_remote(&self, sku: &Sku, availability: Availability) {
        let slot = self.slot(sku);
        let mut writer = lock(&slot.writer);
        if writer.own {
            return;
        }
        writer.remote.get_or_insert_with(|| self.mirror.publisher(sku)).publish(availability);
    }

    /// Writes every dirty SKU in one pipeline (`HSET` + `PUBLISH` each). On failure
    /// the SKUs go back in the queue (their latest value is re-read next time).
    async fn flush(&self) -> Result<(), StoreError> {
        let batch = std::mem::take(&mut *lock(&self.dirty));
        if batch.is_empty() {
            return Ok(());
        }
        let key = self.edge.feed_key();
        let mut pipe = redis::pipe();
        let mut commands = 0;
        for slot in &batch {
            // Cleared before reading, so a publish after the read queues the SKU again
            // (and acquiring here makes every publish that found it queued visible).
            slot.queued.swap(false, Ordering::AcqRel);
            let Some(availability) = self.mirror.latest(&slot.sku) else { continue };
            let (Ok(value), Ok(message)) = (
                serde_json::to_string(&availability),
                serde_json::to_string(&FeedMessage { sku: slot.sku.clone(), availability }),
            ) else {
                continue;
            };
            pipe.cmd("HSET").arg(&key).arg(slot.sku.as_str()).arg(value).ignore();
            pipe.cmd("PUBLISH").arg(&key).arg(message).ignore();
            commands += 1;
        }
        if commands == 0 {
            return Ok(());
        }
        let result =
            self.edge.run("feed_publish", |mut con| async move { pipe.query_async::<()>(&mut con).await }).await;
        if result.is_err() {
            for slot in &batch {
                self.mark_dirty(slot);
            }
        }
        result
    }

    /// The flusher: waits for changes, flushes, then lets `FLUSH_INTERVAL` of
    /// changes coalesce. While Redis is down it retries with backoff; the queue
    /// holds at most one entry per SKU meanwhile.
    async fn run_flusher(self: Arc<Self>) {
        let mut backoff = FLUSH_INTERVAL;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = self.wake.notified() => {}
            }
            let pause = match self.flush().await {
                Ok(()) => {
                    backoff = FLUSH_INTERVAL;
                    FLUSH_INTERVAL
                }
                Err(_) => {
                    // Try again without waiting for another change.
                    self.wake.notify_one();
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    backoff
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        // One last attempt (bounded by the edge's op_timeout) so a clean shutdown
        // loses nothing.
        let _ = self.flush().await;
    }

    /// The subscriber: keeps a subscription to the channel, resyncing from the hash
    /// on every (re)connect, and retries with backoff while Redis is down.
    async fn run_subscriber(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        let mut down = false;
        loop {
            let error = match self.subscribe_once(&mut down).await {
                None => return, // stopped
                Some(e) => e,
            };
            count_error("feed_subscribe");
            if down {
                backoff = (backoff * 2).min(MAX_BACKOFF);
            } else {
                // Was subscribed (or never tried): log the loss once, retry soon.
                down = true;
                backoff = Duration::from_millis(50);
                tracing::warn!(error = %error, "availability feed lost its redis subscription; serving local values, retrying");
            }
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// One subscription's life: connect, subscribe, resync, then apply messages.
    /// Returns `None` when stopped, or why the subscription ended.
    async fn subscribe_once(&self, down: &mut bool) -> Option<String> {
        let timeout = self.edge.op_timeout();
        let channel = self.edge.feed_key();
        let connect = async {
            let pubsub = self.edge.0.client.get_async_pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            sink.subscribe(&channel).await?;
            RedisResult::Ok((sink, stream))
        };
        let (mut sink, mut stream) = tokio::select! {
            () = self.stop.cancelled() => return None,
            r = tokio::time::timeout(timeout, connect) => match r {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Some(e.to_string()),
                Err(_) => return Some(format!("subscribing timed out after {timeout:?}")),
            },
        };
        // Subscribed first, then the snapshot: nothing published in between is lost
        // (messages queued meanwhile are newer than or equal to the snapshot).
        let key = channel.clone();
        let all = self
            .edge
            .run("feed_resync", |mut con| async move {
                redis::cmd("HGETALL").arg(key).query_async::<HashMap<String, String>>(&mut con).await
            })
            .await;
        let all = match all {
            Ok(all) => all,
            Err(e) => return Some(e.to_string()),
        };
        for (sku, value) in all {
            if let (Ok(sku), Ok(availability)) = (Sku::parse(&sku), serde_json::from_str::<Availability>(&value)) {
                self.apply_remote(&sku, availability);
            }
        }
        if std::mem::replace(down, false) {
            tracing::info!("availability feed resubscribed to redis");
        }
        let mut ping = tokio::time::interval(SUBSCRIBER_PING);
        ping.tick().await;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return None,
                msg = stream.next() => match msg {
                    Some(msg) => match serde_json::from_slice::<FeedMessage>(msg.get_payload_bytes()) {
                        Ok(m) => self.apply_remote(&m.sku, m.availability),
                        Err(e) => {
                            count_error("feed_decode");
                            tracing::debug!(error = %e, "ignoring an undecodable availability message");
                        }
                    },
                    None => return Some("subscription connection closed".to_owned()),
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Some(e.to_string()),
                        Err(_) => return Some(format!("subscription ping timed out after {timeout:?}")),
                    }
                }
            }
        }
    }
}

/// SKU availability fanned out between edge nodes through Redis.
///
/// Reads (`latest`, `subscribe`) are served from a local mirror ([`LocalFeed`]) and
/// never touch Redis. Publishing updates the mirror at once and queues the SKU;
/// a background task writes the queued SKUs' latest values in one pipeline every
/// ~10 ms (`HSET {prefix}avail` + `PUBLISH {prefix}avail`). Another task applies
/// other nodes' values, resyncing from the hash on every (re)connect. While Redis
/// is down publishing keeps working locally and the queue holds one entry per SKU.
pub struct RedisFeed {
    shared: Arc<FeedShared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for RedisFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFeed")
            .field("edge", &self.shared.edge)
            .field("skus", &self.shared.slots.len())
            .field("stopped", &self.shared.stop.is_cancelled())
            .finish()
    }
}

impl RedisFeed {
    /// Starts the fan-out over `edge` (same prefix): spawns its background tasks on
    /// the current tokio runtime. Outside a runtime it logs an error and the feed
    /// works locally only.
    pub fn start(edge: &RedisEdge) -> Arc<RedisFeed> {
        let shared = Arc::new(FeedShared {
            edge: edge.clone(),
            mirror: LocalFeed::default(),
            slots: DashMap::new(),
            dirty: Mutex::new(Vec::new()),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        let mut tasks = Vec::new();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                tasks.push(rt.spawn(Arc::clone(&shared).run_flusher()));
                tasks.push(rt.spawn(Arc::clone(&shared).run_subscriber()));
            }
            Err(_) => tracing::error!("RedisFeed started outside a tokio runtime: availability stays local"),
        }
        Arc::new(RedisFeed { shared, tasks: Mutex::new(tasks) })
    }

    /// Stops the background tasks, after one last flush attempt of pending
    /// publications (bounded by the edge's op_timeout). Publishing still updates
    /// the local mirror afterwards.
    pub async fn shutdown(&self) {
        self.shared.stop.cancel();
        let tasks = std::mem::take(&mut *lock(&self.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for RedisFeed {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// One SKU's publishing end of a [`RedisFeed`].
struct RedisPublisher {
    local: Box<dyn AvailabilityPublisher>,
    slot: Arc<Slot>,
    shared: Arc<FeedShared>,
}

impl fmt::Debug for RedisPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPublisher").field("sku", &self.slot.sku).finish()
    }
}

impl AvailabilityPublisher for RedisPublisher {
    fn publish(&self, availability: Availability) {
        // Lock-free unless the SKU was clean: then one short lock to queue it.
        self.local.publish(availability);
        self.shared.mark_dirty(&self.slot);
    }
}

impl AvailabilityFeed for RedisFeed {
    fn publisher(&self, sku: &Sku) -> Box<dyn AvailabilityPublisher> {
        let slot = self.shared.slot(sku);
        {
            // From here on the subscriber leaves this SKU's mirror entry alone.
            let mut writer = lock(&slot.writer);
            writer.own = true;
            writer.remote = None;
        }
        Box::new(RedisPublisher { local: self.shared.mirror.publisher(sku), slot, shared: Arc::clone(&self.shared) })
    }

    fn latest(&self, sku: &Sku) -> Option<Availability> {
        self.shared.mirror.latest(sku)
    }

    fn subscribe(&self, sku: &Sku) -> watch::Receiver<Option<Availability>> {
        self.shared.mirror.subscribe(sku)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scripts find an owner's entry by its prefix and take the rest (but
    /// the closing brace) as the fingerprint's JSON.
    #[test]
    fn a_running_entry_is_its_owners_prefix_then_the_fingerprint() {
        let entry = IdemEntry::Running { owner: "o-\"1".into(), fingerprint: "ab12".into() };
        let json = serde_json::to_string(&entry).unwrap();
        let prefix = running_prefix("o-\"1").unwrap();
        assert!(json.starts_with(&prefix), "{json} does not start with {prefix}");
        assert_eq!(&json[prefix.len()..], "\"ab12\"}");
        assert!(!json.starts_with(&running_prefix("o-").unwrap()));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let edge = RedisEdge::new("redis://user:s3cret@example.com:6380/2", "p:", Duration::from_secs(1));
        let shown = format!("{edge:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("example.com:6380"), "{shown}");
    }

    #[test]
    fn a_malformed_url_is_refused_without_echoing_it() {
        let err = RedisEdge::new("http://user:s3cret@nowhere", "p:", Duration::from_secs(1)).err();
        assert!(err.is_some_and(|e| !e.message().contains("s3cret")));
    }

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
    }
}
