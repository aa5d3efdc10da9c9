//! One error type for every handler, rendered as an RFC 9457 problem document.
//!
//! Every variant has a stable `type` (`urn:flashcore:problem:<code>`) that clients
//! and tests match on. 5xx bodies say nothing about internals; the cause is
//! logged once, here.

use std::any::Any;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flashcore_actors::EngineError;
use flashcore_domain::CartError;
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::dto::rfc3339;

/// Prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:flashcore:problem:";

/// An RFC 9457 problem document (`application/problem+json`), as documented in
/// the OpenAPI schema: five members always, and the extension members some
/// codes add. [`ApiError`] renders it; this type only describes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:flashcore:problem:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The response's HTTP status code, repeated in the body.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The stable code (the `type` suffix).
    pub code: String,
    /// `out-of-stock`, `stock-lost`: the SKU concerned.
    pub sku: Option<String>,
    /// `out-of-stock`: units that can still be had.
    pub available: Option<u64>,
    /// `limit-exceeded`: the product's most units per order.
    pub max_per_order: Option<u32>,
    /// `sale-not-started`: when it starts (RFC 3339).
    pub sale_starts_at: Option<String>,
    /// `cart-checked-out`: the order the cart became.
    pub order_id: Option<String>,
    /// `invalid-quantity`: the largest quantity allowed.
    pub max: Option<u32>,
    /// `total-below-committed`: units already sold or held.
    pub committed: Option<u64>,
    /// `rate-limited`: which limit, `client` or `sku`.
    pub limit: Option<String>,
    /// `standby`: the node that owns the store.
    pub owner: Option<String>,
    /// `standby`: why this node cannot take the store's leases right now.
    pub lease_error: Option<String>,
    /// The request's id, as in the response's `x-request-id` header (every
    /// problem the API answers has it).
    pub request_id: Option<String>,
}

/// A handler error. See the module docs. Boxed: errors are rare, results are not.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: Map<String, Value>,
    retry_after: Option<u64>,
    www_authenticate: bool,
    denied: Option<&'static str>,
    cause: Option<String>,
    /// An answer the node's state dictates (standing by, recovering): logged
    /// once when the state changes, by the node, not on every request.
    expected: bool,
}

/// Marks the response of an authentication or authorization denial (see
/// [`ApiError::denied`]), with the reason the pipeline reports it under.
#[derive(Debug, Clone, Copy)]
pub struct Denied(pub &'static str);

/// What handlers return; an `Err` is sent as `application/problem+json`.
pub type ApiResult<T, E = ApiError> = Result<T, E>;

impl ApiError {
    /// A problem with `status`, stable `code`, `title` and a `detail` for this request.
    pub fn new(status: StatusCode, code: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            status,
            code,
            title,
            detail: detail.into(),
            extra: Map::new(),
            retry_after: None,
            www_authenticate: false,
            denied: None,
            cause: None,
            expected: false,
        }))
    }

    /// Adds a member to the problem document.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.0.retry_after = Some(secs);
        self
    }

    /// Marks an authentication or authorization denial, reported as a security event.
    pub fn denied(mut self, reason: &'static str) -> Self {
        self.0.denied = Some(reason);
        self
    }

    /// Marks a 503 that is the node's state rather than a failure (a standby,
    /// a recovery in progress), so answering it logs nothing: probes ask many
    /// times a second, and the state change itself is logged once.
    pub fn expected(mut self) -> Self {
        self.0.expected = true;
        self
    }

    /// The stable machine-readable code (e.g. `cart-not-found`), the `type` URN's suffix.
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// 400 for a request that cannot be parsed.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    /// 422 for a well-formed request with invalid content.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Invalid request", detail)
    }

    /// 413 for a body over the configured limit.
    pub fn payload_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            "The body is larger than allowed.",
        )
    }

    /// 404.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, "Not found", detail)
    }

    /// 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail);
        e.0.www_authenticate = true;
        e
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 500; `cause` is logged, never sent.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut e = ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "Something went wrong on our side. It has been logged.",
        );
        e.0.cause = Some(cause.into());
        e
    }

    /// 503 `unavailable` + `Retry-After`: nothing was changed, a retry may
    /// succeed; `cause` is logged, never sent.
    fn unavailable(retry_after_secs: u64, cause: String) -> Self {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
            "The store cannot take this request right now; nothing was changed. Retry later.",
        )
        .retry_after(retry_after_secs);
        e.0.cause = Some(cause);
        e
    }
}

impl From<flashcore_actors::ports::StoreError> for ApiError {
    /// A store failure is 503 + `Retry-After` (`unavailable`); the cause is logged.
    fn from(e: flashcore_actors::ports::StoreError) -> Self {
        ApiError::unavailable(1, e.message().to_owned())
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        use StatusCode as S;
        let code = e.code();
        match e {
            EngineError::ProductNotFound => ApiError::not_found(code, "No product with that SKU."),
            EngineError::OutOfStock { sku, available } => {
                ApiError::new(S::CONFLICT, code, "Out of stock", format!("Only {available} of {sku} can be had."))
                    .with("sku", sku.to_string())
                    .with("available", available)
            }
            EngineError::StockLost { sku } => ApiError::new(
                S::CONFLICT,
                code,
                "Stock lost",
                format!("The reservation for {sku} lapsed and the stock is gone; update the cart and retry."),
            )
            .with("sku", sku.to_string()),
            EngineError::Cart(c) => match c {
                CartError::CheckedOut(order) => ApiError::new(S::CONFLICT, code, "Cart checked out", c.to_string())
                    .with("order_id", order.to_string()),
                CartError::QuantityTooLarge { max } => ApiError::invalid(code, c.to_string()).with("max", max),
                CartError::LimitExceeded { max_per_order } => {
                    ApiError::new(S::CONFLICT, code, "Limit exceeded", c.to_string())
                        .with("max_per_order", max_per_order)
                }
                CartError::SaleNotStarted { starts_at } => {
                    ApiError::new(S::CONFLICT, code, "Sale not started", c.to_string())
                        .with("sale_starts_at", rfc3339(starts_at))
                }
                CartError::CurrencyMismatch | CartError::TooManyLines | CartError::Empty => {
                    ApiError::new(S::CONFLICT, code, "Cart conflict", c.to_string())
                }
                CartError::Money(_) => ApiError::invalid(code, c.to_string()),
            },
            EngineError::CartCheckedOut(order) => ApiError::new(
                S::CONFLICT,
                code,
                "Cart checked out",
                "This cart was already checked out with another Idempotency-Key.",
            )
            .with("order_id", order.to_string()),
            EngineError::PaymentDeclined => ApiError::new(
                S::PAYMENT_REQUIRED,
                code,
                "Payment declined",
                "The payment was declined; nothing was charged.",
            ),
            EngineError::InvalidPaymentToken => ApiError::invalid(code, "The payment token is not recognised."),
            EngineError::PaymentProvider(cause) => {
                let mut e = ApiError::new(
                    S::BAD_GATEWAY,
                    code,
                    "Payment provider error",
                    "The payment provider failed; nothing was charged. Try again.",
                );
                e.0.cause = Some(cause);
                e
            }
            EngineError::TotalBelowCommitted { committed } => ApiError::new(
                S::CONFLICT,
                code,
                "Total below committed",
                format!("The total cannot go below the {committed} units already sold or held."),
            )
            .with("committed", committed),
            EngineError::IdempotencyKeyReused => {
                ApiError::invalid(code, "This Idempotency-Key was already used for another order.")
            }
            EngineError::Unavailable { retry_after_secs, reason } => ApiError::unavailable(retry_after_secs, reason),
            EngineError::Overloaded { retry_after_secs } => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                code,
                "Overloaded",
                "Too many requests are queued for this item; retry shortly.",
            )
            .retry_after(retry_after_secs),
            EngineError::Elsewhere { shard } => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                code,
                "Served by another node",
                "Another node of the cluster serves this item; retry through it, or shortly here.",
            )
            .with("shard", shard)
            .retry_after(1),
            EngineError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let request_id = crate::request_id::current();
        let rid = request_id.as_deref().unwrap_or_default();
        if this.expected {
            tracing::debug!(
                status = this.status.as_u16(),
                code = this.code,
                request_id = rid,
                "request answered by the node's state"
            );
        } else if this.status.is_server_error() {
            tracing::error!(status = this.status.as_u16(), code = this.code, cause = ?this.cause, request_id = rid, "request failed");
        } else if let Some(cause) = &this.cause {
            tracing::warn!(status = this.status.as_u16(), code = this.code, cause = %cause, request_id = rid, "request refused");
        }
        let mut body = json!({
            "type": format!("{PROBLEM_TYPE_PREFIX}{}", this.code),
            "title": this.title,
            "status": this.status.as_u16(),
            "detail": this.detail,
            "code": this.code,
        });
        if let Value::Object(map) = &mut body {
            map.extend(this.extra);
            if let Some(id) = request_id {
                map.insert("request_id".into(), Value::String(id));
            }
        }
        let mut res = (this.status, axum::Json(body)).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = this.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if this.www_authenticate {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"flashcore\""));
        }
        if let Some(reason) = this.denied {
            res.extensions_mut().insert(Denied(reason));
        }
        res
    }
}

/// The response to a handler panic: a 500 problem; the panic is logged, not sent.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "unknown panic".into());
    metrics::counter!("flashcore_http_panics_total").increment(1);
    ApiError::internal(format!("handler panicked: {what}")).into_response()
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
