//! What every handler can reach.

use std::sync::Arc;

use axum::http::StatusCode;
use flashcore_actors::Engine;
use flashcore_actors::node::Node;
use flashcore_actors::ownership::Phase;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::api_keys::ApiKeys;
use crate::cart_tokens::CartTokens;
use crate::error::ApiError;
use crate::idempotency::Idempotency;
use crate::rate_limit::RateLimits;

/// Shared handler state: one `Arc`, because axum clones it for every middleware
/// and handler of every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared state.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    /// This process on the store: its ownership, and the engine while it owns
    /// the store and has recovered it (else 503 `standby` or `not-ready`).
    pub node: Arc<Node>,
    /// Issues and checks the buyers' cart tokens.
    pub tokens: CartTokens,
    /// Checks the operators' API keys (and, for the admin routes, holds their store).
    pub keys: Arc<ApiKeys>,
    /// Per-client and per-SKU quotas.
    pub limits: RateLimits,
    /// Outcomes kept under `Idempotency-Key`s.
    pub idempotency: Idempotency,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Flips to `true` when shutdown begins (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// Longest a handler may run before it is answered 503 `timeout`.
    pub request_timeout: std::time::Duration,
    /// Whose forwarding headers name the client.
    pub proxies: crate::client::TrustedProxies,
    /// This listener speaks HTTPS (so every answer carries HSTS).
    pub tls: bool,
}

impl Shared {
    /// The engine, or the 503 of a node that does not serve now.
    pub fn engine(&self) -> Result<Arc<Engine>, ApiError> {
        match self.node.engine() {
            Some(engine) if self.node.ownership().phase() == Phase::Serving => Ok(engine),
            _ => Err(self.not_serving(self.node.ownership().phase())),
        }
    }

    /// The answer of a node in `phase` to a request it cannot serve: `not-ready`
    /// while it recovers, else `standby` (another node owns the store, or will).
    pub fn not_serving(&self, phase: Phase) -> ApiError {
        self.not_serving_problem(phase).expected()
    }

    fn not_serving_problem(&self, phase: Phase) -> ApiError {
        let retry = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "Recovery is running.");
        match phase {
            // Recovering, or still opening the store (no lease looked for yet).
            Phase::Recovering => retry.retry_after(1),
            // Cluster mode: this node's share of the shards is changing.
            Phase::Moving => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                "Shards are moving between the cluster's nodes.",
            )
            .retry_after(1),
            Phase::Standby if self.node.lease_store().is_none() => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "The store is being opened.")
                    .retry_after(1)
            }
            _ => {
                let own = self.node.ownership();
                let holder = own.holder().filter(|h| *h != own.owner().to_string());
                let unreachable = own.unreachable();
                let detail = match (&holder, &unreachable) {
                    // E.g. SQLite's write lock held by a process that is frozen
                    // mid-write: nobody can take the store until it runs or dies.
                    (_, Some(why)) => format!(
                        "This node is standing by and cannot take the store's leases: {why}. If the owner's process \
                         is frozen holding the store, it goes on when that process resumes or is stopped."
                    ),
                    (Some(h), None) => {
                        format!("This node is standing by; {h} owns the store. Retry, or use another node.")
                    }
                    (None, None) => "This node does not own the store right now. Retry shortly.".to_owned(),
                };
                let mut problem = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "standby", "Standing by", detail);
                if let Some(h) = holder {
                    problem = problem.with("owner", h);
                }
                if let Some(why) = unreachable {
                    problem = problem.with("lease_error", why);
                }
                problem.retry_after(1)
            }
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
