//! One process's life on a store: standby, owner, hand-off, and standby again.
//!
//! A [`Node`] keeps the leases through its [`Ownership`] and runs an [`Engine`]
//! only while it holds them:
//!
//! 1. **Standby** until the leases are free or expired, then take them (every
//!    epoch + 1) and start an engine, which recovers from the store as on any
//!    start; serve once it is done.
//! 2. **Lost** (deadline passed, taken over, a write fenced): stop admitting at
//!    once, let what is in flight finish (its writes are refused and its answers
//!    turned into 503s by the edge), drop the engine without writing, and go
//!    back to standby.
//! 3. **Moving** (cluster mode): the node's share of the shards changes while
//!    its engine runs. Free shards it takes are recovered while it serves the
//!    others, and served once recovered. Shards it hands over need a pause:
//!    admitting stops, what is in flight finishes, they are written, dropped
//!    from the engine and released, and it serves again. A shard whose lease
//!    was lost is dropped the same way, without writing. The shards it keeps
//!    stay in memory under their epochs.
//! 4. **Graceful stop**: stop admitting, let what is in flight finish, shut the
//!    engine down (final flush, still under the lease), release the leases so
//!    a standby takes over at once, and leave.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::engine::Engine;
use crate::metrics as m;
use crate::ownership::{Ownership, Phase};
use crate::ports::LeaseStore;

/// The longest a hand-over waits for the work in flight.
const MOVE_DRAIN: Duration = Duration::from_secs(1);

/// A process that serves the store while it owns it. See the module docs.
pub struct Node {
    ownership: Arc<Ownership>,
    engine: ArcSwapOption<Engine>,
    drain_limit: Duration,
    leases: OnceLock<Arc<dyn LeaseStore>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("ownership", &self.ownership).finish_non_exhaustive()
    }
}

impl Node {
    /// A node over `ownership`; in-flight requests get at most `drain_limit` to
    /// finish when it stops serving.
    pub fn new(ownership: Arc<Ownership>, drain_limit: Duration) -> Arc<Self> {
        Arc::new(Node { ownership, engine: ArcSwapOption::empty(), drain_limit, leases: OnceLock::new() })
    }

    /// This process's leases and phase, which decide whether it may serve.
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.ownership
    }

    /// The store's membership and leases, once [`Node::run`] has them.
    pub fn lease_store(&self) -> Option<&Arc<dyn LeaseStore>> {
        self.leases.get()
    }

    /// The engine, while this node owns the store and has recovered it.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.load_full()
    }

    /// Runs until `shutdown` resolves (then hands off gracefully): keeps the
    /// leases in `store` and starts an engine with `start` each time they are
    /// taken. A `start` that fails gives the leases back and tries again later.
    pub async fn run<S, Fut>(self: Arc<Self>, store: Arc<dyn LeaseStore>, start: S, shutdown: impl Future<Output = ()>)
    where
        S: Fn(Arc<Ownership>) -> Fut,
        Fut: Future<Output = Result<Engine, String>>,
    {
        let own = Arc::clone(&self.ownership);
        let _ = self.leases.set(Arc::clone(&store));
        let keeper = tokio::spawn(Arc::clone(&own).keep(Arc::clone(&store)));
        let mut phases = own.watch();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                ok = async { phases.wait_for(|p| *p == Phase::Recovering).await.is_ok() } => if !ok { break },
            }
            let took = Instant::now();
            let started = tokio::select! {
                () = &mut shutdown => break,
                r = start(Arc::clone(&own)) => r,
            };
            let engine = match started {
                Ok(engine) => Arc::new(engine),
                Err(e) => {
                    tracing::error!(node = %own.owner(), error = %e, "recovery failed; giving the leases back");
                    own.yield_leases(&*store).await;
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    own.back_to_standby();
                    continue;
                }
            };
            self.engine.store(Some(Arc::clone(&engine)));
            if !own.serve() {
                self.drop_engine(&engine).await;
                continue;
            }
            metrics::histogram!(m::TAKEOVER_SECONDS).record(took.elapsed().as_secs_f64());
            tracing::info!(node = %own.owner(), recovery_ms = took.elapsed().as_millis() as u64, "serving");
            loop {
                tokio::select! {
                    () = &mut shutdown => {
                        self.hand_off(&engine, &*store).await;
                        keeper.abort();
                        return;
                    }
                    () = own.shards_taken() => self.adopt_taken(&engine, &*store).await,
                    _ = async { phases.wait_for(|p| *p != Phase::Serving).await.is_ok() } => {
                        if own.phase() == Phase::Moving && self.move_shards(&engine, &*store).await {
                            continue;
                        }
                        self.drop_engine(&engine).await;
                        break;
                    }
                }
            }
        }
        // Stopped while standby or recovering: nothing was served; give back what is held.
        if let Some(engine) = self.engine.swap(None) {
            engine.abandon();
        }
        own.release(&*store).await;
        keeper.abort();
    }

    /// The leases were lost: nothing more may be written or answered from this
    /// engine's memory.
    async fn drop_engine(&self, engine: &Engine) {
        self.ownership.drain(self.drain_limit).await;
        self.engine.store(None);
        engine.abandon();
        self.ownership.back_to_standby();
        tracing::warn!(node = %self.ownership.owner(), "engine dropped; standing by");
    }

    /// Cluster mode, the node's share changes (see the module docs); true
    /// once it serves again, false if the leases were lost meanwhile (the
    /// engine is then dropped like on any loss).
    async fn move_shards(&self, engine: &Engine, store: &dyn LeaseStore) -> bool {
        let began = Instant::now();
        let own = &self.ownership;
        // Bounded well below what a request waits for a move (MOVE_WAIT):
        // work still in flight after it finds the leaving shards gone (its
        // writes under them are refused by the store, never sold twice).
        own.drain(self.drain_limit.min(MOVE_DRAIN)).await;
        let mut left = 0;
        loop {
            // A fenced write or a refused renewal: which shards are still ours.
            own.verified().await;
            if !own.phase().holds_lease() {
                return false;
            }
            let lost = own.lost_shards();
            if !lost.is_empty() {
                engine.drop_shards(&lost);
            }
            let leaving = own.moving();
            if !leaving.is_empty() {
                match engine.write_shards(&leaving).await {
                    Ok(_) => {
                        engine.drop_shards(&leaving);
                        own.release_shards(store, &leaving).await;
                        left += leaving.len();
                    }
                    // Kept: the node serves them on; the next round plans again.
                    Err(e) => {
                        tracing::warn!(node = %own.owner(), error = %e, "cannot write the leaving shards; keeping them");
                        own.keep_shards();
                    }
                }
            }
            if own.resume() {
                break;
            }
            if own.phase() != Phase::Moving {
                return false;
            }
        }
        tracing::info!(
            node = %own.owner(),
            left,
            move_ms = began.elapsed().as_millis() as u64,
            "shards moved"
        );
        true
    }

    /// Cluster mode: shards were taken (free, epoch + 1) while this node
    /// serves its others: recover them, then serve them. Whatever this node
    /// had of them from an earlier term is dropped first; if the recovery
    /// fails they are given back.
    async fn adopt_taken(&self, engine: &Engine, store: &dyn LeaseStore) {
        let began = Instant::now();
        let own = &self.ownership;
        let taken = own.adopting_shards();
        if taken.is_empty() {
            return;
        }
        engine.drop_shards(&taken);
        match engine.adopt(&taken).await {
            Ok(()) => {
                own.adopted();
                tracing::info!(node = %own.owner(), came = taken.len(), took_ms = began.elapsed().as_millis() as u64, "shards taken and recovered");
            }
            Err(e) => {
                tracing::warn!(node = %own.owner(), error = %e, "cannot recover the shards taken; giving them back");
                engine.drop_shards(&taken);
                own.release_shards(store, &taken).await;
            }
        }
    }

    /// Graceful stop: no new requests, in-flight ones finish, final flush under
    /// the lease, then the leases go to whoever stands by.
    async fn hand_off(&self, engine: &Engine, store: &dyn LeaseStore) {
        let began = Instant::now();
        self.ownership.begin_handoff();
        self.ownership.drain(self.drain_limit).await;
        engine.shutdown().await;
        self.engine.store(None);
        self.ownership.release(store).await;
        metrics::histogram!(m::HANDOFF_SECONDS).record(began.elapsed().as_secs_f64());
        tracing::info!(node = %self.ownership.owner(), handoff_ms = began.elapsed().as_millis() as u64, "handed off");
    }
}
