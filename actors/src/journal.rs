//! Group commit: many checkouts share one journal transaction.
//!
//! Callers hand an entry to [`JournalWriter::append`] and wait. A single writer
//! task takes whatever is queued (up to `max_batch`), appends it as one batch, and
//! answers every caller once the batch has committed. Under load, batches grow by
//! themselves, so the cost of a commit is shared by many orders; when idle, an
//! entry is written immediately. One batch is in flight at a time, which keeps
//! journal positions in commit order (recovery relies on that).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use flashcore_domain::JournalEntry;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::metrics as m;
use crate::ownership::Ownership;
use crate::ports::{AppendOutcome, Fence, ForeignLease, Journal, StoreError};
use crate::trace::SPANS;

struct Pending {
    entry: JournalEntry,
    /// Other nodes' leases the entry relies on (a cross-node checkout's SKUs).
    foreign: Vec<ForeignLease>,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
    /// The append's span: the batch that writes the entry links to it.
    span: tracing::Span,
}

/// Figures for operators (`GET /v1/admin/journal`).
#[derive(Debug, Default)]
pub struct JournalStats {
    batches: AtomicU64,
    entries: AtomicU64,
    last_batch: AtomicU64,
    max_batch_seen: AtomicU64,
    last_commit_micros: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`JournalStats`].
#[derive(Debug, Clone, Serialize)]
pub struct JournalStatsView {
    /// Batches committed since this process started, one transaction each.
    pub batches: u64,
    /// Entries committed since start, summed over all batches.
    pub entries: u64,
    /// Entries in the last batch.
    pub last_batch_size: u64,
    /// Largest batch so far.
    pub max_batch_size: u64,
    /// How long the last commit took, in microseconds.
    pub last_commit_micros: u64,
    /// Batches that failed since start; every entry in one got the error.
    pub errors: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Entries waiting for a batch.
    pub queue_depth: u64,
}

/// Handle to the group-commit writer. Cheap to clone.
#[derive(Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Pending>,
    journal: Arc<dyn Journal>,
    stats: Arc<JournalStats>,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter").field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl JournalWriter {
    /// Starts the writer task over `journal`. Every batch is written under the
    /// fence `ownership` holds at that moment; a fenced batch makes it lose the lease.
    pub fn start(
        journal: Arc<dyn Journal>,
        ownership: Arc<Ownership>,
        max_batch: usize,
        queue: usize,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(JournalStats::default());
        let task = tokio::spawn(run(Arc::clone(&journal), ownership, rx, max_batch.max(1), Arc::clone(&stats)));
        (JournalWriter { tx, journal, stats }, task)
    }

    /// Appends `entry` and waits until its batch has committed.
    pub async fn append(&self, entry: JournalEntry) -> Result<AppendOutcome, StoreError> {
        self.append_relying(entry, Vec::new()).await
    }

    /// Appends `entry`, which relies on other nodes' leases (`foreign`: an
    /// order selling holds prepared there), and waits until its batch has
    /// committed. If one of them is no longer current the entry fails with
    /// [`StoreError::Moved`] and nothing of it is written; the other entries of
    /// its batch are written all the same.
    pub async fn append_relying(
        &self,
        entry: JournalEntry,
        foreign: Vec<ForeignLease>,
    ) -> Result<AppendOutcome, StoreError> {
        let span = tracing::info_span!(target: SPANS, "journal.append");
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Unavailable("journal writer stopped".into());
        let pending = Pending { entry, foreign, reply, span: span.clone() };
        async {
            self.tx.send(pending).await.map_err(|_| stopped())?;
            rx.await.map_err(|_| stopped())?
        }
        .instrument(span)
        .await
    }

    /// The journal itself, for reads.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// A copy of the counters now, for `GET /v1/admin/journal`.
    pub fn stats(&self) -> JournalStatsView {
        let s = &self.stats;
        JournalStatsView {
            batches: s.batches.load(Ordering::Relaxed),
            entries: s.entries.load(Ordering::Relaxed),
            last_batch_size: s.last_batch.load(Ordering::Relaxed),
            max_batch_size: s.max_batch_seen.load(Ordering::Relaxed),
            last_commit_micros: s.last_commit_micros.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            last_error: s.last_error.lock().map(|e| e.clone()).unwrap_or(None),
            queue_depth: (self.tx.max_capacity() - self.tx.capacity()) as u64,
        }
    }
}

async fn run(
    journal: Arc<dyn Journal>,
    ownership: Arc<Ownership>,
    mut rx: mpsc::Receiver<Pending>,
    max_batch: usize,
    stats: Arc<JournalStats>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    let mut entries: Vec<JournalEntry> = Vec::with_capacity(max_batch);
    let mut foreign: Vec<Vec<ForeignLease>> = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        // One span per batch, linked to the appends it carries (their traces).
        let span = tracing::info_span!(target: SPANS, parent: None, "journal.batch", entries = batch.len());
        // Move the entries out (no copies on the hot path); keep the reply ports.
        for p in batch.drain(..) {
            span.follows_from(&p.span);
            entries.push(p.entry);
            foreign.push(p.foreign);
            replies.push(p.reply);
        }
        let started = Instant::now();
        let relying = foreign.iter().any(|f| !f.is_empty());
        let result = match ownership.write_fence() {
            Ok(fence) => {
                let written = if relying {
                    let all = foreign.iter().flatten().cloned().collect();
                    journal.append(&entries, &fence.with_foreign(all)).instrument(span).await
                } else {
                    journal.append(&entries, &fence).instrument(span).await
                };
                match written {
                    // A lease some entry relied on moved, or (cluster mode) a
                    // lease of this node's own was lost: write each entry on
                    // its own, so only those relying on that lease fail.
                    Err(StoreError::Moved(_)) if entries.len() > 1 => {
                        Ok(one_by_one(journal.as_ref(), &fence, &entries, &foreign).await)
                    }
                    Err(StoreError::Fenced(_)) if entries.len() > 1 && ownership.config().share => {
                        Ok(one_by_one(journal.as_ref(), &fence, &entries, &foreign).await)
                    }
                    other => other.map(|o| o.into_iter().map(Ok).collect()),
                }
            }
            Err(e) => Err(e),
        };
        foreign.clear();
        let fenced = match &result {
            Err(e) => e.is_fenced(),
            Ok(outcomes) => outcomes.iter().any(|o| o.as_ref().is_err_and(StoreError::is_fenced)),
        };
        if fenced && ownership.phase().holds_lease() {
            ownership.fenced("journal");
        }
        let took = started.elapsed();
        let n = entries.len() as u64;
        entries.clear();
        match result {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.entries.fetch_add(n, Ordering::Relaxed);
                stats.last_batch.store(n, Ordering::Relaxed);
                stats.max_batch_seen.fetch_max(n, Ordering::Relaxed);
                stats.last_commit_micros.store(took.as_micros() as u64, Ordering::Relaxed);
                metrics::counter!(m::JOURNAL_BATCHES).increment(1);
                metrics::histogram!(m::JOURNAL_BATCH_SIZE).record(n as f64);
                metrics::histogram!(m::JOURNAL_COMMIT_SECONDS).record(took.as_secs_f64());
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            other => {
                let err = match other {
                    Err(e) => e,
                    Ok(o) => StoreError::Unavailable(format!("journal returned {} outcomes for {n} entries", o.len())),
                };
                tracing::error!(error = %err, entries = n, "journal batch failed");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(err.message().to_owned());
                }
                metrics::counter!(m::JOURNAL_ERRORS).increment(1);
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Writes `entries` one per transaction, each under `fence` and its own
/// foreign leases: after a batch failed because one of them moved.
async fn one_by_one(
    journal: &dyn Journal,
    fence: &Fence,
    entries: &[JournalEntry],
    foreign: &[Vec<ForeignLease>],
) -> Vec<Result<AppendOutcome, StoreError>> {
    let mut out = Vec::with_capacity(entries.len());
    for (entry, relies) in entries.iter().zip(foreign) {
        let fence = fence.with_foreign(relies.clone());
        let written = journal.append(std::slice::from_ref(entry), &fence).await;
        out.push(
            written
                .and_then(|mut o| o.pop().ok_or_else(|| StoreError::Unavailable("journal returned no outcome".into()))),
        );
    }
    out
}
