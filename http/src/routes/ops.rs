//! Operational endpoints: `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`,
//! and the HTTP metrics middleware.

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use dashmap::DashMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHasher;
use serde_json::json;
use utoipa::OpenApi;

use crate::openapi::ApiDoc;
use crate::state::AppState;
use flashcore_actors::ownership::{NotServing, Phase};

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

/// The one middleware every request passes through, in this order: `/v1/` is
/// admitted only while this node serves the store; the caller is resolved and rate-limited ([`crate::security::admit`], `/v1/` only), the
/// idempotency key is honoured ([`crate::edge::idempotency`]), the handler runs
/// under the deadline ([`crate::hardening::deadline`]); then security headers are
/// added and `flashcore_http_requests_total` and
/// `flashcore_http_request_duration_seconds` (by method, matched route, status)
/// recorded. One layer rather than five: axum boxes and clones per layer, and at
/// flash-sale rates that was a fifth of a request's cost.
pub async fn pipeline(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route_str = route.as_ref().map_or(crate::security::UNMATCHED, MatchedPath::as_str);
    let method = req.method().clone();
    let api = req.uri().path().starts_with("/v1/");
    let mut res = if api {
        // Only the owner of the store answers the API, and only from the lease
        // term it admitted the request under: an answer computed while the lease
        // was lost (a frozen process waking up) leaves as 503, never from stale memory.
        match s.node.ownership().admit() {
            Err(NotServing(phase)) => s.not_serving(phase).into_response(),
            Ok(admission) => {
                let res = crate::security::admit(&s, route_str, req, next).await;
                if admission.still_valid() { res } else { s.not_serving(Phase::Lost).into_response() }
            }
        }
    } else {
        crate::hardening::deadline(s.request_timeout, req, next).await
    };
    crate::hardening::security_headers(&mut res, api);
    HTTP_METRICS.record(&method, route_str, res.status(), started.elapsed());
    res
}

/// Per (method, route, status) metric handles, so recording a request allocates
/// nothing once its combination has been seen.
struct HttpMetrics(DashMap<u64, (metrics::Counter, metrics::Histogram), BuildHasherDefault<FxHasher>>);

static HTTP_METRICS: std::sync::LazyLock<HttpMetrics> =
    std::sync::LazyLock::new(|| HttpMetrics(DashMap::with_hasher(BuildHasherDefault::default())));

impl HttpMetrics {
    fn record(&self, method: &Method, route: &str, status: StatusCode, took: std::time::Duration) {
        let mut h = FxHasher::default();
        (method.as_str(), route, status.as_u16()).hash(&mut h);
        let key = h.finish();
        let entry = match self.0.get(&key) {
            Some(e) => e,
            None => {
                let labels = [
                    ("method", method.to_string()),
                    ("route", route.to_owned()),
                    ("status", status.as_u16().to_string()),
                ];
                let handles = (
                    metrics::counter!("flashcore_http_requests_total", &labels),
                    metrics::histogram!("flashcore_http_request_duration_seconds", &labels),
                );
                self.0.entry(key).or_insert(handles).downgrade()
            }
        };
        entry.0.increment(1);
        entry.1.record(took.as_secs_f64());
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn health() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: this node owns the store (holds its leases), recovery is done,
/// and shutdown has not begun. A standby answers 503 `standby`.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, body = crate::error::Problem)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let own = s.node.ownership();
    match s.engine() {
        Ok(engine) if engine.is_ready() => {
            // Redis trouble degrades the edge (see `crate::edge`) but doesn't take the node out.
            let shared = if s.edge.degraded() { "degraded" } else { "ok" };
            let view = own.view();
            axum::Json(json!({
                "status": "ready",
                "shared_state": shared,
                "node": own.owner().to_string(),
                "role": "owner",
                "epoch": view.epochs.map(|(_, max)| max),
            }))
            .into_response()
        }
        Ok(_) => s.not_serving(Phase::Recovering).into_response(),
        Err(e) => e.into_response(),
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
