//! Metrics: the process-wide Prometheus recorder, and the per-request HTTP
//! metrics (`flashcore_http_requests_total`, `flashcore_http_request_duration_seconds`
//! by method, matched route and status).

use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use dashmap::DashMap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rustc_hash::FxHasher;

/// The process-wide Prometheus recorder (installed once, shared by every app in
/// the process, e.g. in tests).
pub fn recorder() -> PrometheusHandle {
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

/// Records one answered request.
pub fn record(method: &Method, route: &str, status: StatusCode, took: Duration) {
    HTTP_METRICS.record(method, route, status, took);
}

/// Per (method, route, status) metric handles, so recording a request allocates
/// nothing once its combination has been seen.
struct HttpMetrics(DashMap<u64, (metrics::Counter, metrics::Histogram), BuildHasherDefault<FxHasher>>);

static HTTP_METRICS: LazyLock<HttpMetrics> =
    LazyLock::new(|| HttpMetrics(DashMap::with_hasher(BuildHasherDefault::default())));

impl HttpMetrics {
    fn record(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
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
