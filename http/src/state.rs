//! What every handler can reach.

use flashcore_actors::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::auth::CartTokens;

/// Shared handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Cart token issuer and checker.
    pub tokens: CartTokens,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Flips to `true` when shutdown begins (ends SSE streams).
    pub shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
