//! The per-request deadline.

use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Answers 503 `timeout` when `handler` takes longer than `limit`. The work it
/// started is not undone half-way: actors finish their message, and a checkout
/// retried with its Idempotency-Key gets its outcome.
pub async fn deadline(limit: Duration, handler: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, handler).await {
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
