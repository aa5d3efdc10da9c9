//! Circuit breakers for the dependencies a request waits on: the store (journal
//! and snapshots), Redis and the payment provider.
//!
//! Closed: calls go through; `failures` consecutive failures or timeouts open it.
//! Open: calls fail at once ([`Guarded::Rejected`], with the time until the next
//! probe) instead of each waiting for a dead dependency. After a backoff with
//! jitter, exactly one probe goes (half-open): its success closes the breaker,
//! its failure opens it again with a longer backoff (doubling up to
//! `probe_max`). The probe is a cheap call of the breaker's own
//! ([`Breaker::spawn_prober`]: the store reads, Redis pings), so no request
//! ever waits for a dead dependency and recovery does not wait for traffic; a
//! breaker without one (the payment provider) lets the next call through as
//! the probe. Every transition is logged once, counted, and reflected in
//! the `flashcore_circuit_state{dependency}` gauge.
//!
//! Written here rather than taken from a crate: the ones looked at (`failsafe`,
//! tower's retry/limit layers) let every call through when half-open instead of
//! one probe, read the wall clock instead of tokio's (so tests cannot pause
//! time), or expect a `tower::Service` where the ports are async traits called
//! from actors.
//!
//! The adapters at the bottom put one breaker in front of a port
//! ([`GuardedJournal`], [`GuardedSnapshots`], [`GuardedPayments`]); Redis
//! adapters call [`Breaker::call`] directly. Every breaker registers itself so
//! `/ready` and `GET /v1/admin/dependencies` can list them ([`all`]).

use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use flashcore_domain::{CartId, JournalEntry, JournalPos, Order, OrderId, Sku, StockFact};
use serde::Serialize;
use tokio::time::Instant;

use crate::metrics as m;
use crate::ports::{
    AppendOutcome, EntityKind, FactCursor, Fence, Journal, PaymentError, PaymentRequest, Payments, SnapshotRecord,
    SnapshotStore, StoreError,
};

/// When a breaker opens, how long calls may take, and how it probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (or timeouts) that open the breaker.
    pub failures: u32,
    /// A call taking longer fails (and counts as a failure).
    pub call_timeout: Duration,
    /// The first backoff before a probe (jittered: between half and all of it).
    pub probe_base: Duration,
    /// The longest backoff between probes, however many failed.
    pub probe_max: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 3,
            call_timeout: Duration::from_secs(2),
            probe_base: Duration::from_secs(1),
            probe_max: Duration::from_secs(8),
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// One probe is in flight; other calls are refused.
    HalfOpen,
    /// Calls are refused until the next probe.
    Open,
}

impl CircuitState {
    /// The gauge's value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

/// How a guarded call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded<E> {
    /// The breaker is open: nothing was sent. Try again after `retry_in`.
    Rejected {
        /// Time until the next probe.
        retry_in: Duration,
    },
    /// The call took longer than the breaker's `call_timeout` (its outcome is unknown).
    TimedOut(Duration),
    /// The dependency's own error.
    Inner(E),
}

/// What `/ready` and `GET /v1/admin/dependencies` show of a breaker.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerView {
    /// `store`, `redis`, `payments`.
    pub dependency: &'static str,
    /// `closed`, `half_open` or `open`.
    pub state: CircuitState,
    /// Consecutive failures counted while closed.
    pub consecutive_failures: u32,
    /// Probes that failed since the breaker opened.
    pub failed_probes: u32,
    /// Milliseconds until the next probe may go (0 unless open).
    pub next_probe_in_ms: u64,
    /// Transitions since start.
    pub transitions: u64,
    /// Calls refused while open since start.
    pub rejected: u64,
    /// The last failure seen, if any.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Inner {
    state: CircuitState,
    failures: u32,
    failed_probes: u32,
    retry_at: Instant,
    transitions: u64,
    rejected: u64,
    last_error: Option<String>,
}

/// One dependency's circuit breaker. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    cfg: BreakerConfig,
    inner: Mutex<Inner>,
    /// Set once a prober runs: calls then never probe themselves.
    active: std::sync::atomic::AtomicBool,
    /// Wakes the prober when the breaker opens (or is dropped).
    opened: Arc<tokio::sync::Notify>,
}

/// A breaker's own probe of its dependency.
pub type Probe = Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

impl Drop for Breaker {
    fn drop(&mut self) {
        // The prober holds only a weak reference: wake it so it sees it is gone.
        self.opened.notify_one();
    }
}

/// Every breaker alive in this process, for the operator views.
static REGISTRY: Mutex<Vec<Weak<Breaker>>> = Mutex::new(Vec::new());

/// The latest breaker alive per dependency, in the order they were made.
pub fn all() -> Vec<BreakerView> {
    let Ok(mut reg) = REGISTRY.lock() else { return Vec::new() };
    reg.retain(|w| w.strong_count() > 0);
    let mut views: Vec<BreakerView> = Vec::new();
    for b in reg.iter().filter_map(Weak::upgrade) {
        let view = b.view();
        match views.iter_mut().find(|v| v.dependency == view.dependency) {
            Some(slot) => *slot = view,
            None => views.push(view),
        }
    }
    views
}

/// Whether a call may go, and as what.
enum Admit {
    Call,
    Probe,
    Reject(Duration),
}

/// A probe in flight: dropped without an outcome (its caller gave up), it
/// counts as failed so that another probe may go later.
struct ProbeGuard<'a> {
    breaker: &'a Breaker,
    done: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker.record(true, Err("probe abandoned".into()));
        }
    }
}

impl Breaker {
    /// A closed breaker for `dependency`, registered for the operator views.
    pub fn new(dependency: &'static str, cfg: BreakerConfig) -> Arc<Breaker> {
        let b = Arc::new(Breaker {
            name: dependency,
            cfg,
            inner: Mutex::new(Inner {
                state: CircuitState::Closed,
                failures: 0,
                failed_probes: 0,
                retry_at: Instant::now(),
                transitions: 0,
                rejected: 0,
                last_error: None,
            }),
            active: std::sync::atomic::AtomicBool::new(false),
            opened: Arc::new(tokio::sync::Notify::new()),
        });
        metrics::gauge!(m::CIRCUIT_STATE, "dependency" => dependency).set(CircuitState::Closed.gauge());
        if let Ok(mut reg) = REGISTRY.lock() {
            reg.push(Arc::downgrade(&b));
        }
        b
    }

    /// Probes the dependency with `probe` (bounded by `call_timeout`) whenever
    /// the breaker is open and its backoff has passed; calls no longer probe.
    /// Needs a tokio runtime; without one, calls keep probing themselves.
    pub fn spawn_prober(self: &Arc<Self>, probe: Probe) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        self.active.store(true, std::sync::atomic::Ordering::Release);
        let me = Arc::downgrade(self);
        let opened = Arc::clone(&self.opened);
        rt.spawn(async move {
            loop {
                // Until the breaker is open (or gone).
                let notified = opened.notified();
                let retry_at = match me.upgrade() {
                    None => return,
                    Some(b) => {
                        let inner = b.lock();
                        (inner.state == CircuitState::Open).then_some(inner.retry_at)
                    }
                };
                let Some(retry_at) = retry_at else {
                    notified.await;
                    continue;
                };
                tokio::time::sleep_until(retry_at).await;
                let Some(b) = me.upgrade() else { return };
                if !b.begin_probe() {
                    continue;
                }
                let outcome = match tokio::time::timeout(b.cfg.call_timeout, probe()).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("probe timed out after {} ms", b.cfg.call_timeout.as_millis())),
                };
                b.record(true, outcome);
            }
        });
    }

    /// Open past its backoff → half-open, for the prober. False otherwise.
    fn begin_probe(&self) -> bool {
        let mut inner = self.lock();
        if inner.state == CircuitState::Open && Instant::now() >= inner.retry_at {
            self.transition(&mut inner, CircuitState::HalfOpen);
            true
        } else {
            false
        }
    }

    fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The limit of a bulk call (a page of recovery, a write-behind chunk):
    /// five times `call_timeout`, so a large batch on a loaded store is not
    /// taken for an outage.
    pub fn bulk_timeout(&self) -> Duration {
        self.cfg.call_timeout.saturating_mul(5)
    }

    /// The dependency's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.cfg
    }

    /// The state now.
    pub fn state(&self) -> CircuitState {
        self.lock().state
    }

    /// `Some(time until the next probe)` while calls would be refused now
    /// (open before its probe time, or half-open with the probe in flight).
    pub fn rejecting(&self) -> Option<Duration> {
        let inner = self.lock();
        let now = Instant::now();
        match inner.state {
            CircuitState::Closed => None,
            CircuitState::Open if now >= inner.retry_at && !self.is_active() => None,
            CircuitState::Open => Some(inner.retry_at.saturating_duration_since(now).max(Duration::from_millis(1))),
            CircuitState::HalfOpen => Some(self.cfg.probe_base),
        }
    }

    /// A copy for the operator views.
    pub fn view(&self) -> BreakerView {
        let inner = self.lock();
        let next = match inner.state {
            CircuitState::Open => inner.retry_at.saturating_duration_since(Instant::now()),
            _ => Duration::ZERO,
        };
        BreakerView {
            dependency: self.name,
            state: inner.state,
            consecutive_failures: inner.failures,
            failed_probes: inner.failed_probes,
            next_probe_in_ms: next.as_millis() as u64,
            transitions: inner.transitions,
            rejected: inner.rejected,
            last_error: inner.last_error.clone(),
        }
    }

    /// Runs `call` through the breaker with its `call_timeout`. `is_failure`
    /// says which of the dependency's errors count against it (a refusal that
    /// proves it is up, such as a fenced write or a declined card, does not).
    pub async fn call<T, E>(
        &self,
        call: impl Future<Output = Result<T, E>>,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, Guarded<E>>
    where
        E: std::fmt::Display,
    {
        self.call_within(self.cfg.call_timeout, call, is_failure).await
    }

    /// [`Breaker::call`] with another timeout (a step's latency budget).
    pub async fn call_within<T, E>(
        &self,
        limit: Duration,
        call: impl Future<Output = Result<T, E>>,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, Guarded<E>>
    where
        E: std::fmt::Display,
    {
        let probe = match self.admit() {
            Admit::Reject(retry_in) => return Err(Guarded::Rejected { retry_in }),
            Admit::Call => false,
            Admit::Probe => true,
        };
        let mut guard = probe.then(|| ProbeGuard { breaker: self, done: false });
        let result = tokio::time::timeout(limit, call).await;
        if let Some(g) = guard.as_mut() {
            g.done = true;
        }
        match result {
            Err(_) => {
                self.record(probe, Err(format!("timed out after {} ms", limit.as_millis())));
                Err(Guarded::TimedOut(limit))
            }
            Ok(Ok(v)) => {
                self.record(probe, Ok(()));
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_failure(&e) {
                    self.record(probe, Err(e.to_string()));
                } else {
                    self.record(probe, Ok(()));
                }
                Err(Guarded::Inner(e))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock still holds a consistent state: every update is one assignment set.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn admit(&self) -> Admit {
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.state {
            CircuitState::Closed => Admit::Call,
            CircuitState::Open if now >= inner.retry_at && !self.is_active() => {
                self.transition(&mut inner, CircuitState::HalfOpen);
                Admit::Probe
            }
            CircuitState::Open => {
                inner.rejected += 1;
                metrics::counter!(m::CIRCUIT_REJECTIONS, "dependency" => self.name).increment(1);
                Admit::Reject(inner.retry_at.saturating_duration_since(now))
            }
            CircuitState::HalfOpen => {
                inner.rejected += 1;
                metrics::counter!(m::CIRCUIT_REJECTIONS, "dependency" => self.name).increment(1);
                Admit::Reject(self.cfg.probe_base)
            }
        }
    }

    fn record(&self, probe: bool, outcome: Result<(), String>) {
        let mut inner = self.lock();
        match outcome {
            Ok(()) => {
                inner.failures = 0;
                if probe {
                    inner.failed_probes = 0;
                    self.transition(&mut inner, CircuitState::Closed);
                }
            }
            Err(e) => {
                inner.last_error = Some(e);
                if probe {
                    inner.failed_probes = inner.failed_probes.saturating_add(1);
                    self.open(&mut inner);
                } else if inner.state == CircuitState::Closed {
                    inner.failures = inner.failures.saturating_add(1);
                    if inner.failures >= self.cfg.failures.max(1) {
                        self.open(&mut inner);
                    }
                }
            }
        }
    }

    fn open(&self, inner: &mut Inner) {
        inner.retry_at = Instant::now() + self.backoff(inner.failed_probes);
        self.transition(inner, CircuitState::Open);
    }

    /// Equal jitter: between half and all of `probe_base × 2^failed_probes`, capped at `probe_max`.
    fn backoff(&self, failed_probes: u32) -> Duration {
        let full = self.cfg.probe_base.saturating_mul(1 << failed_probes.min(16)).min(self.cfg.probe_max);
        let half = full / 2;
        let spread = half.as_millis() as u64;
        let jitter = if spread == 0 { 0 } else { (uuid::Uuid::new_v4().as_u128() % u128::from(spread + 1)) as u64 };
        half + Duration::from_millis(jitter)
    }

    fn transition(&self, inner: &mut Inner, to: CircuitState) {
        let from = inner.state;
        if from == to {
            return;
        }
        inner.state = to;
        if to == CircuitState::Open {
            self.opened.notify_one();
        }
        inner.transitions += 1;
        metrics::gauge!(m::CIRCUIT_STATE, "dependency" => self.name).set(to.gauge());
        metrics::counter!(m::CIRCUIT_TRANSITIONS, "dependency" => self.name, "to" => to.as_str()).increment(1);
        let retry_in_ms = inner.retry_at.saturating_duration_since(Instant::now()).as_millis() as u64;
        match to {
            CircuitState::Open => tracing::warn!(
                dependency = self.name,
                from = from.as_str(),
                to = to.as_str(),
                retry_in_ms,
                failed_probes = inner.failed_probes,
                error = inner.last_error.as_deref().unwrap_or(""),
                "circuit opened"
            ),
            CircuitState::HalfOpen => {
                tracing::info!(dependency = self.name, from = from.as_str(), to = to.as_str(), "circuit probing")
            }
            CircuitState::Closed => {
                tracing::info!(dependency = self.name, from = from.as_str(), to = to.as_str(), "circuit closed")
            }
        }
    }
}

/// A store error for a guarded store call.
pub fn store_error(e: Guarded<StoreError>) -> StoreError {
    match e {
        Guarded::Rejected { retry_in } => {
            StoreError::Rejected(format!("store circuit open; next probe in {} ms", retry_in.as_millis()))
        }
        Guarded::TimedOut(d) => StoreError::Unavailable(format!("store call timed out after {} ms", d.as_millis())),
        Guarded::Inner(e) => e,
    }
}

/// Only an unreachable store counts: a fenced write is the store answering.
fn store_failure(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

/// The journal behind the store's breaker.
pub struct GuardedJournal {
    inner: Arc<dyn Journal>,
    breaker: Arc<Breaker>,
}

impl std::fmt::Debug for GuardedJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedJournal").field("breaker", &self.breaker.name).finish_non_exhaustive()
    }
}

impl GuardedJournal {
    /// Guards `inner` with `breaker` (shared with the snapshots: one store).
    pub fn new(inner: Arc<dyn Journal>, breaker: Arc<Breaker>) -> Self {
        GuardedJournal { inner, breaker }
    }
}

#[async_trait]
impl Journal for GuardedJournal {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        self.breaker.call(self.inner.append(batch, fence), store_failure).await.map_err(store_error)
    }
    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        self.breaker.call(self.inner.stock_facts(sku, after, orders), store_failure).await.map_err(store_error)
    }
    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError> {
        let bulk = self.breaker.bulk_timeout();
        self.breaker
            .call_within(bulk, self.inner.stock_facts_page(after, limit), store_failure)
            .await
            .map_err(store_error)
    }
    async fn stock_facts_of_orders(&self, orders: &[OrderId]) -> Result<Vec<StockFact>, StoreError> {
        self.breaker.call(self.inner.stock_facts_of_orders(orders), store_failure).await.map_err(store_error)
    }
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.breaker.call(self.inner.order(id), store_failure).await.map_err(store_error)
    }
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        self.breaker.call(self.inner.order_for_cart(cart), store_failure).await.map_err(store_error)
    }
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        self.breaker.call(self.inner.orders(limit, before), store_failure).await.map_err(store_error)
    }
}

/// The snapshot store behind the store's breaker.
pub struct GuardedSnapshots {
    inner: Arc<dyn SnapshotStore>,
    breaker: Arc<Breaker>,
}

impl std::fmt::Debug for GuardedSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedSnapshots").field("breaker", &self.breaker.name).finish_non_exhaustive()
    }
}

impl GuardedSnapshots {
    /// Guards `inner` with `breaker` (shared with the journal: one store).
    pub fn new(inner: Arc<dyn SnapshotStore>, breaker: Arc<Breaker>) -> Self {
        GuardedSnapshots { inner, breaker }
    }
}

#[async_trait]
impl SnapshotStore for GuardedSnapshots {
    async fn save(&self, batch: &[SnapshotRecord], fence: &Fence) -> Result<(), StoreError> {
        let bulk = self.breaker.bulk_timeout();
        self.breaker.call_within(bulk, self.inner.save(batch, fence), store_failure).await.map_err(store_error)
    }
    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.breaker.call(self.inner.load(kind, id), store_failure).await.map_err(store_error)
    }
    async fn load_page(
        &self,
        kind: EntityKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        let bulk = self.breaker.bulk_timeout();
        self.breaker
            .call_within(bulk, self.inner.load_page(kind, after, limit), store_failure)
            .await
            .map_err(store_error)
    }
}

/// The payment provider behind its breaker, with a timeout on every call.
pub struct GuardedPayments {
    inner: Arc<dyn Payments>,
    breaker: Arc<Breaker>,
    authorize_timeout: Duration,
}

impl std::fmt::Debug for GuardedPayments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedPayments").field("breaker", &self.breaker.name).finish_non_exhaustive()
    }
}

impl GuardedPayments {
    /// Guards `inner`; an authorization taking longer than `authorize_timeout`
    /// fails (its budget), a void takes the breaker's `call_timeout`.
    pub fn new(inner: Arc<dyn Payments>, breaker: Arc<Breaker>, authorize_timeout: Duration) -> Self {
        GuardedPayments { inner, breaker, authorize_timeout }
    }

    /// The breaker.
    pub fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

/// Only the provider failing counts: a decline or a bad token is it answering.
fn payment_failure(e: &PaymentError) -> bool {
    matches!(e, PaymentError::Provider(_) | PaymentError::Unavailable(_))
}

fn payment_error(e: Guarded<PaymentError>) -> PaymentError {
    match e {
        Guarded::Rejected { retry_in } => {
            PaymentError::Unavailable(format!("payment circuit open; next probe in {} ms", retry_in.as_millis()))
        }
        Guarded::TimedOut(d) => PaymentError::TimedOut(format!("payment provider took over {} ms", d.as_millis())),
        Guarded::Inner(e) => e,
    }
}

#[async_trait]
impl Payments for GuardedPayments {
    async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError> {
        self.breaker
            .call_within(self.authorize_timeout, self.inner.authorize(req), payment_failure)
            .await
            .map_err(payment_error)
    }

    async fn void(&self, reference: &str) -> Result<(), PaymentError> {
        self.breaker.call(self.inner.void(reference), payment_failure).await.map_err(payment_error)
    }

    fn idempotent_authorize(&self) -> bool {
        self.inner.idempotent_authorize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failures: 3,
            call_timeout: Duration::from_millis(100),
            probe_base: Duration::from_secs(1),
            probe_max: Duration::from_secs(4),
        }
    }

    async fn fail(b: &Breaker) -> Result<(), Guarded<String>> {
        b.call(async { Err::<(), String>("down".into()) }, |_| true).await
    }

    async fn succeed(b: &Breaker) -> Result<(), Guarded<String>> {
        b.call(async { Ok::<(), String>(()) }, |_| true).await
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_rejects_at_once() {
        let b = Breaker::new("test-open", cfg());
        assert_eq!(fail(&b).await, Err(Guarded::Inner("down".into())));
        assert_eq!(succeed(&b).await, Ok(()), "a success resets the count");
        for _ in 0..2 {
            let _ = fail(&b).await;
        }
        assert_eq!(b.state(), CircuitState::Closed);
        let _ = fail(&b).await;
        assert_eq!(b.state(), CircuitState::Open);
        let retry = b.rejecting().expect("open");
        assert!(retry >= Duration::from_millis(500) && retry <= Duration::from_secs(1), "{retry:?}");
        let started = Instant::now();
        assert!(matches!(succeed(&b).await, Err(Guarded::Rejected { .. })));
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(b.view().rejected, 1);
        assert_eq!(b.view().last_error.as_deref(), Some("down"));
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_after_the_backoff_closes_it() {
        let b = Breaker::new("test-probe", cfg());
        for _ in 0..3 {
            let _ = fail(&b).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.rejecting(), None, "probe time");
        // The probe hangs a little; a second call meanwhile is refused.
        let probe = b.call(
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<(), String>(())
            },
            |_| true,
        );
        let other = async {
            tokio::task::yield_now().await;
            assert_eq!(b.state(), CircuitState::HalfOpen);
            succeed(&b).await
        };
        let (p, o) = tokio::join!(probe, other);
        assert_eq!(p, Ok(()));
        assert!(matches!(o, Err(Guarded::Rejected { .. })));
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.view().transitions, 3, "open, half-open, closed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_with_a_longer_backoff_up_to_the_cap() {
        let b = Breaker::new("test-backoff", cfg());
        for _ in 0..3 {
            let _ = fail(&b).await;
        }
        for (failed, max) in [(1, 2_000), (2, 4_000), (3, 4_000)] {
            tokio::time::advance(Duration::from_secs(4)).await;
            let _ = fail(&b).await;
            assert_eq!(b.state(), CircuitState::Open);
            assert_eq!(b.view().failed_probes, failed);
            let retry = b.rejecting().expect("open").as_millis() as u64;
            assert!(retry >= max / 2 && retry <= max, "{retry} for {failed} failed probes");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_count_and_a_refusal_that_proves_it_up_does_not() {
        let b = Breaker::new("test-timeout", cfg());
        let slow = || {
            b.call(
                async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok::<(), String>(())
                },
                |_| true,
            )
        };
        assert_eq!(slow().await, Err(Guarded::TimedOut(Duration::from_millis(100))));
        let declined = b.call(async { Err::<(), String>("declined".into()) }, |_| false).await;
        assert_eq!(declined, Err(Guarded::Inner("declined".into())));
        assert_eq!(b.view().consecutive_failures, 0, "the refusal reset the count");
        for _ in 0..3 {
            let _ = slow().await;
        }
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_another_go_later() {
        let b = Breaker::new("test-abandon", cfg());
        for _ in 0..3 {
            let _ = fail(&b).await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        let hanging = b.call(std::future::pending::<Result<(), String>>(), |_| true);
        // The caller gives up before the breaker's own timeout.
        assert!(tokio::time::timeout(Duration::from_millis(10), hanging).await.is_err());
        assert_eq!(b.state(), CircuitState::Open);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(succeed(&b).await, Ok(()));
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_prober_calls_never_probe_and_the_prober_closes_it() {
        use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
        let b = Breaker::new("test-prober", cfg());
        let up = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(AtomicU32::new(0));
        let (u, n) = (Arc::clone(&up), Arc::clone(&probes));
        b.spawn_prober(Box::new(move || {
            let (u, n) = (Arc::clone(&u), Arc::clone(&n));
            Box::pin(async move {
                n.fetch_add(1, Ordering::SeqCst);
                if u.load(Ordering::SeqCst) { Ok(()) } else { Err("still down".into()) }
            })
        }));
        for _ in 0..3 {
            let _ = fail(&b).await;
        }
        assert_eq!(b.state(), CircuitState::Open);
        // Past the backoff, a call is still refused (the prober probes, not it).
        tokio::time::sleep(Duration::from_millis(1_001)).await;
        assert!(matches!(succeed(&b).await, Err(Guarded::Rejected { .. })));
        assert!(b.rejecting().is_some());
        assert_eq!(probes.load(Ordering::SeqCst), 1, "one probe, which failed");
        assert_eq!(b.view().failed_probes, 1);
        // The dependency returns: the next probe (within the 2 s backoff) closes it.
        up.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2_001)).await;
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(probes.load(Ordering::SeqCst), 2);
        assert_eq!(succeed(&b).await, Ok(()));
        // Dropped, its prober ends.
        drop(b);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn views_list_the_latest_breaker_per_dependency() {
        let first = Breaker::new("test-view", cfg());
        let second = Breaker::new("test-view", cfg());
        for _ in 0..3 {
            let _ = fail(&second).await;
        }
        let views: Vec<_> = all().into_iter().filter(|v| v.dependency == "test-view").collect();
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].state, CircuitState::Open);
        assert!(views[0].next_probe_in_ms > 0);
        drop((first, second));
        assert!(all().iter().all(|v| v.dependency != "test-view"));
    }
}
