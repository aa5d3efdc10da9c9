//! SKU availability fanned out between nodes through Redis: reads come from a
//! local mirror, writes are coalesced into one pipeline every few milliseconds,
//! and other nodes' values arrive by pub/sub, resynced from a hash on every
//! (re)connect.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use flashcore_actors::ports::{AvailabilityFeed, AvailabilityPublisher, StoreError};
use flashcore_domain::{Availability, Sku};
use futures::StreamExt;
use redis::RedisResult;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Redis, count_error};
use crate::memory::LocalFeed;
use crate::sync::lock;

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
    redis: Redis,
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
        let key = self.redis.feed_key();
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
            self.redis.run("feed_publish", |mut con| async move { pipe.query_async::<()>(&mut con).await }).await;
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
        // One last attempt (bounded by the connection's op_timeout) so a clean shutdown
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
        let timeout = self.redis.op_timeout();
        let channel = self.redis.feed_key();
        let connect = async {
            let pubsub = self.redis.0.client.get_async_pubsub().await?;
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
            .redis
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

/// SKU availability fanned out between nodes through Redis.
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
            .field("redis", &self.shared.redis)
            .field("skus", &self.shared.slots.len())
            .field("stopped", &self.shared.stop.is_cancelled())
            .finish()
    }
}

impl RedisFeed {
    /// Starts the fan-out over `redis` (its prefix): spawns its background tasks on
    /// the current tokio runtime. Outside a runtime it logs an error and the feed
    /// works locally only.
    pub fn start(redis: &Redis) -> Arc<RedisFeed> {
        let shared = Arc::new(FeedShared {
            redis: redis.clone(),
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
    /// publications (bounded by the connection's op_timeout). Publishing still updates
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
