//! Operational endpoints: `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`,
//! and the HTTP metrics middleware.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use flashcore_actors::Engine;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
}

/// The process-wide Prometheus recorder (installed once, shared by every app in
/// the process, e.g. in tests).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_entries".into()),
                        &[1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0],
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(r) => {
                    let handle = r.handle();
                    let _ = metrics::set_global_recorder(r);
                    handle
                }
                Err(e) => {
                    tracing::error!(error = %e, "prometheus recorder could not be built");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Records `flashcore_http_requests_total` and `flashcore_http_request_duration_seconds`
/// by method, matched route and status.
pub async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("flashcore_http_requests_total", &labels).increment(1);
    metrics::histogram!("flashcore_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: stores reachable and recovery done.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, body = crate::error::Problem)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    if s.engine.get().is_some_and(Engine::is_ready) {
        // Redis trouble degrades the edge (see `crate::edge`) but doesn't take the node out.
        let shared = if s.edge.degraded() { "degraded" } else { "ok" };
        axum::Json(json!({ "status": "ready", "shared_state": shared })).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "Recovery is running or shutdown began.",
        )
        .retry_after(1)
        .into_response()
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut res = s.metrics.render().into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    res
}

/// The OpenAPI 3.1 document, generated from the code.
pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// A self-contained API reference page rendered from `/openapi.json` (no CDN).
pub async fn docs() -> Response {
    let mut res = Html(include_str!("docs.html")).into_response();
    // The page's own inline script and style, and fetches to this origin only.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    res
}
