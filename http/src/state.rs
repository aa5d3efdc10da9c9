//! What every handler can reach.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use flashcore_actors::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::auth::CartTokens;
use crate::edge::Edge;
use crate::error::ApiError;
use crate::security::ApiKeys;

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
    /// The engine, once start-up recovery has finished (until then: 503 `not-ready`).
    pub engine: Arc<OnceLock<Engine>>,
    /// Cart token issuer and checker.
    pub tokens: CartTokens,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Flips to `true` when shutdown begins (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
    /// Operator API keys.
    pub keys: Arc<ApiKeys>,
    /// Idempotency keys and rate limits.
    pub edge: Arc<Edge>,
    /// Longest a handler may run.
    pub request_timeout: std::time::Duration,
}

impl Shared {
    /// The engine, or 503 while recovery is still running.
    pub fn engine(&self) -> Result<&Engine, ApiError> {
        self.engine.get().ok_or_else(|| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", "Recovery is still running.")
                .retry_after(1)
        })
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
