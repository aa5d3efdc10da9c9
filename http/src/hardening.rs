//! Defences every response gets: security headers, a per-request deadline, CORS
//! only for configured origins, and a panic turned into a plain 500 problem (no
//! stack trace or internals ever reach a client).

use std::any::Any;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::ApiError;

/// The policy for API responses: nothing may be loaded, framed or executed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the security headers a response doesn't set itself (`api`: a `/v1/` route).
pub fn security_headers(res: &mut Response, api: bool) {
    let h = res.headers_mut();
    let mut set = |name: HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CONTENT_SECURITY_POLICY, API_CSP);
    set(HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    if api {
        // Carts, orders and availability are per-moment and often personal.
        set(header::CACHE_CONTROL, "no-store");
    }
}

/// Answers 503 `timeout` when the handler takes longer than the configured
/// deadline. The work it started is not undone half-way: actors finish their
/// message, and a checkout retried with its Idempotency-Key gets its outcome.
pub async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("flashcore_http_timeouts_total").increment(1);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                "The request took too long. If it changed something, retrying with the same Idempotency-Key is safe.",
            )
            .retry_after(1)
            .into_response()
        }
    }
}

/// The response to a handler panic: a 500 problem; the panic is logged, not sent.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    metrics::counter!("flashcore_http_panics_total").increment(1);
    ApiError::internal(format!("handler panicked: {what}")).into_response()
}

/// CORS for `origins` (`*` allows any origin, without credentials); `None` when
/// none is configured, so browsers apply the same-origin policy.
pub fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("FLASHCORE_CORS_ORIGINS: {o:?} is not valid"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
            .expose_headers([header::LOCATION, header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed")])
            .max_age(Duration::from_secs(600)),
    ))
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_http::catch_panic::CatchPanicLayer;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_plain_500_problem() {
        async fn boom() -> &'static str {
            panic!("secret internal detail at src/lib.rs:1")
        }
        let app = Router::new().route("/", get(boom)).layer(CatchPanicLayer::custom(panic_response));
        let res = app.oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("urn:flashcore:problem:internal"), "{text}");
        assert!(!text.contains("secret") && !text.contains("src/") && !text.contains("panic"), "{text}");
    }
}
