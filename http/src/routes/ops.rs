//! Operational endpoints: `/health`, `/ready`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flashcore_actors::ownership::Phase;
use serde_json::json;

use crate::state::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics_text))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Object, description = "alive")))]
pub async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: this node owns the store (holds its leases), recovery is done,
/// and shutdown has not begun. A standby answers 503 `standby`. The body lists
/// each dependency's circuit breaker (`closed`, `half_open`, `open`).
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Object, description = "ready"), (status = 503, description = "not-ready, standby")))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let own = s.node.ownership();
    match s.engine() {
        Ok(engine) if engine.is_ready() => {
            // Redis trouble degrades the rate limits (see `crate::rate_limit`) but doesn't take the node out.
            let shared = if s.limits.degraded() { "degraded" } else { "ok" };
            let view = own.view();
            axum::Json(json!({
                "status": "ready",
                "shared_state": shared,
                "node": own.owner().to_string(),
                "role": "owner",
                "epoch": view.epochs.map(|(_, max)| max),
                // Open circuits do not take the node out: carts stay live, and a
                // checkout answers 503 with `Retry-After` at once.
                "dependencies": flashcore_actors::breaker::all(),
            }))
            .into_response()
        }
        Ok(_) => s.not_serving(Phase::Recovering).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The process's metrics (`flashcore_*`) in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut res = s.metrics.render().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    res
}
