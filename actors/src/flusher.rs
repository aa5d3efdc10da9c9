//! Write-behind: dirty entities are snapshotted in batches every `flush_interval`.
//!
//! An actor that changes state while clean registers itself once with
//! [`Flusher::mark_dirty`]; at the next tick the flusher asks each registered
//! actor for one snapshot (so a hot SKU changed ten thousand times in an interval
//! is serialized once), and saves them all in one batch. A failed save keeps the
//! records and retries them on the next tick; a newer snapshot of the same entity
//! replaces an older one waiting for retry.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics as m;
use crate::ownership::Ownership;
use crate::ports::{EntityKind, SnapshotRecord, SnapshotStore, StoreError};

/// The first snapshot version of a new incarnation of an entity whose stored
/// snapshot has `stored`. Versions are `incarnation << 32 | change count`, so
/// every snapshot of a restarted actor outranks any late retry from its
/// predecessor.
pub fn next_incarnation(stored: u64) -> u64 {
    ((stored >> 32) + 1) << 32
}

/// An actor message type that can ask the actor for its snapshot.
pub trait SnapshotRequest: ractor::Message + Sized {
    /// The request, answered on `reply` (the actor marks itself clean).
    fn snapshot_request(reply: crate::reply::Reply<SnapshotRecord>) -> Self;
}

#[async_trait]
impl<M: SnapshotRequest> SnapshotSource for ractor::ActorRef<M> {
    async fn snapshot(&self) -> Option<SnapshotRecord> {
        crate::reply::ask(self, M::snapshot_request, Some(Duration::from_secs(5))).await.ok()
    }
}

#[async_trait]
impl<E> SnapshotSource for crate::entity::EntityRef<E>
where
    E: crate::entity::Entity,
    E::Msg: SnapshotRequest,
{
    async fn snapshot(&self) -> Option<SnapshotRecord> {
        self.ask(E::Msg::snapshot_request, Duration::from_secs(5)).await
    }
}

/// Something that can produce its own snapshot: a live actor or scheduled entity.
#[async_trait]
pub trait SnapshotSource: Send + Sync + 'static {
    /// The entity's current state, or `None` if it is gone (stopped actors have
    /// already saved theirs).
    async fn snapshot(&self) -> Option<SnapshotRecord>;
}

enum Control {
    Dirty(Box<dyn SnapshotSource>),
    FlushNow(oneshot::Sender<Result<usize, StoreError>>),
}

/// Operator figures for the write-behind queue.
#[derive(Debug, Default)]
struct FlushStats {
    flushes: AtomicU64,
    written: AtomicU64,
    last_batch: AtomicU64,
    last_flush_micros: AtomicU64,
    retry_pending: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of the write-behind figures.
#[derive(Debug, Clone, Serialize)]
pub struct FlushStatsView {
    /// Flushes that wrote something.
    pub flushes: u64,
    /// Snapshots saved since start.
    pub written: u64,
    /// Snapshots in the last flush.
    pub last_batch_size: u64,
    /// How long the last flush took, in microseconds (the flush lag on top of the interval).
    pub last_flush_micros: u64,
    /// Snapshots waiting for a retry after a failed save.
    pub retry_pending: u64,
    /// Save chunks that failed since start; their records wait in `retry_pending`.
    pub errors: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// Handle to the write-behind flusher.
#[derive(Clone)]
pub struct Flusher {
    tx: mpsc::UnboundedSender<Control>,
    writer: Arc<Writer>,
}

/// What the flusher task and every handle share: where and under which fence
/// snapshots are written.
struct Writer {
    stats: FlushStats,
    store: Arc<dyn SnapshotStore>,
    ownership: Arc<Ownership>,
}

impl Writer {
    async fn save(&self, batch: &[SnapshotRecord]) -> Result<(), StoreError> {
        let fence = self.ownership.write_fence()?;
        let saved = self.store.save(batch, &fence).await;
        if let Err(e) = &saved
            && e.is_fenced()
            && self.ownership.phase().holds_lease()
        {
            self.ownership.fenced("snapshot");
        }
        saved
    }
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flusher").field("stats", &self.writer.stats).finish_non_exhaustive()
    }
}

impl Flusher {
    /// Starts the flusher over `store`, flushing every `interval` under the fence
    /// `ownership` holds at that moment.
    pub fn start(
        store: Arc<dyn SnapshotStore>,
        ownership: Arc<Ownership>,
        interval: Duration,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Arc::new(Writer { stats: FlushStats::default(), store, ownership });
        let task = tokio::spawn(run(Arc::clone(&writer), interval, rx));
        (Flusher { tx, writer }, task)
    }

    /// Saves `batch` now, under the current fence (a passivating cart's last state).
    pub async fn save_now(&self, batch: &[SnapshotRecord]) -> Result<(), StoreError> {
        self.writer.save(batch).await
    }

    /// Registers an entity that became dirty. Call once per clean-to-dirty change.
    pub fn mark_dirty(&self, source: Box<dyn SnapshotSource>) {
        let _ = self.tx.send(Control::Dirty(source));
    }

    /// Flushes everything dirty now (graceful shutdown); returns how many were written.
    pub async fn flush_now(&self) -> Result<usize, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Control::FlushNow(reply)).map_err(|_| StoreError::Unavailable("flusher stopped".into()))?;
        rx.await.map_err(|_| StoreError::Unavailable("flusher stopped".into()))?
    }

    /// A copy of the counters now, for `GET /v1/admin/journal`.
    pub fn stats(&self) -> FlushStatsView {
        let s = &self.writer.stats;
        FlushStatsView {
            flushes: s.flushes.load(Ordering::Relaxed),
            written: s.written.load(Ordering::Relaxed),
            last_batch_size: s.last_batch.load(Ordering::Relaxed),
            last_flush_micros: s.last_flush_micros.load(Ordering::Relaxed),
            retry_pending: s.retry_pending.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_error: s.last_error.lock().map(|e| e.clone()).unwrap_or(None),
        }
    }
}

/// Largest number of snapshots saved in one transaction.
const SAVE_CHUNK: usize = 1_000;
/// Snapshot requests in flight at once.
const ASK_CONCURRENCY: usize = 256;

async fn run(writer: Arc<Writer>, interval: Duration, mut rx: mpsc::UnboundedReceiver<Control>) {
    let mut dirty: Vec<Box<dyn SnapshotSource>> = Vec::new();
    let mut retry: HashMap<(EntityKind, String), SnapshotRecord> = HashMap::new();
    // The first flush one interval after the start, like every later one (an
    // immediate first tick would write whatever turned dirty in the first
    // instant early, unlike the rest).
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiters = Vec::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            msg = rx.recv() => match msg {
                None => return,
                Some(Control::Dirty(s)) => { dirty.push(s); continue; }
                Some(Control::FlushNow(reply)) => waiters.push(reply),
            },
        }
        // Take everything registered so far; every FlushNow waiting is answered
        // by this flush, which covers what it asked for.
        while let Ok(msg) = rx.try_recv() {
            match msg {
                Control::Dirty(s) => dirty.push(s),
                Control::FlushNow(r) => waiters.push(r),
            }
        }
        let result = flush(&writer, std::mem::take(&mut dirty), &mut retry).await;
        for reply in waiters.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}

async fn flush(
    writer: &Writer,
    dirty: Vec<Box<dyn SnapshotSource>>,
    retry: &mut HashMap<(EntityKind, String), SnapshotRecord>,
) -> Result<usize, StoreError> {
    let stats = &writer.stats;
    if dirty.is_empty() && retry.is_empty() {
        return Ok(0);
    }
    if !writer.ownership.phase().holds_lease() {
        // A node that lost its lease writes nothing more: its state is stale, and
        // the next owner recovers from the store.
        return Err(StoreError::Fenced("this node no longer holds the lease".into()));
    }
    let started = Instant::now();
    for chunk in dirty.chunks(ASK_CONCURRENCY) {
        let fresh = futures::future::join_all(chunk.iter().map(|s| s.snapshot())).await;
        for r in fresh.into_iter().flatten() {
            retry.insert((r.kind, r.id.clone()), r);
        }
    }
    let mut batch: Vec<SnapshotRecord> = retry.drain().map(|(_, r)| r).collect();
    // Cluster mode: state of a shard this node no longer holds (it moved
    // while the entity was marked dirty) is its next owner's to write; the
    // store would refuse it as fenced.
    if let Some(fence) = writer.ownership.fence() {
        let before = batch.len();
        batch.retain(|r| fence.holds(r.shard(fence.shards())));
        if batch.len() < before {
            tracing::warn!(records = before - batch.len(), "write-behind skipped the state of shards that moved away");
        }
    }
    let mut written = 0;
    let mut failure = None;
    for (i, chunk) in batch.chunks(SAVE_CHUNK).enumerate() {
        if failure.is_some() {
            for r in chunk {
                retry.insert((r.kind, r.id.clone()), r.clone());
            }
            continue;
        }
        match writer.save(chunk).await {
            Ok(()) => written += chunk.len(),
            Err(e) => {
                tracing::error!(error = %e, chunk = i, records = chunk.len(), "write-behind flush failed; will retry");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(m::SNAPSHOT_ERRORS).increment(1);
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(e.message().to_owned());
                }
                for r in chunk {
                    retry.insert((r.kind, r.id.clone()), r.clone());
                }
                failure = Some(e);
            }
        }
    }
    let took = started.elapsed();
    stats.flushes.fetch_add(1, Ordering::Relaxed);
    stats.written.fetch_add(written as u64, Ordering::Relaxed);
    stats.last_batch.store(written as u64, Ordering::Relaxed);
    stats.last_flush_micros.store(took.as_micros() as u64, Ordering::Relaxed);
    stats.retry_pending.store(retry.len() as u64, Ordering::Relaxed);
    metrics::counter!(m::SNAPSHOTS_WRITTEN).increment(written as u64);
    metrics::histogram!(m::FLUSH_SECONDS).record(took.as_secs_f64());
    match failure {
        Some(e) => Err(e),
        None => Ok(written),
    }
}
