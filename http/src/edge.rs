//! State the edge nodes share: idempotency keys and rate limits (Redis when
//! `REDIS_URL` is set, in-process otherwise), and how the edge degrades when
//! Redis is away:
//!
//! - **Idempotency fails closed.** A request carrying an `Idempotency-Key` (every
//!   checkout) gets 503 `idempotency-unavailable` with `Retry-After` while the key
//!   store cannot be asked: answering without it could charge twice. Requests
//!   without a key are not affected.
//! - **Rate limits fail local.** When Redis cannot answer in time, each node
//!   limits with its own in-process GCRA (same quotas, per node instead of
//!   cluster-wide) until Redis answers again; the switch is logged once each way
//!   and counted in `flashcore_redis_fallback_total`.
//! - **Availability keeps flowing locally**: the SKU actors' own node serves the
//!   latest values from its mirror and the queued publications go out when Redis
//!   returns (see `flashcore_persistence::redis::RedisFeed`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flashcore_actors::ports::{
    IdempotencyClaim, IdempotencyStore, Quota, RateDecision, RateLimiter, StoreError, StoredResponse,
};
use flashcore_domain::Sku;
use flashcore_persistence::local::LocalRateLimiter;
use sha2::{Digest, Sha256};

use crate::config::EdgeConfig;
use crate::error::ApiError;
use crate::extract::idempotency_key;
use crate::security::{Principal, peer};
use crate::state::AppState;

/// Largest response kept for an idempotent replay.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// Response headers a replay repeats.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

/// The edge's shared-state adapters and settings.
pub struct Edge {
    idempotency: Arc<dyn IdempotencyStore>,
    limiter: Arc<dyn RateLimiter>,
    /// Set when `limiter` is shared (Redis): the local fallback.
    fallback: Option<LocalRateLimiter>,
    degraded: AtomicBool,
    client_quota: Option<Quota>,
    sku_quota: Option<Quota>,
    ttl: Duration,
    lock_ttl: Duration,
    max_body: usize,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("shared", &self.fallback.is_some())
            .field("client_quota", &self.client_quota)
            .field("sku_quota", &self.sku_quota)
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// An edge over these adapters. `shared` says the limiter is remote (Redis)
    /// and needs the local fallback.
    pub fn new(
        cfg: &EdgeConfig,
        idempotency: Arc<dyn IdempotencyStore>,
        limiter: Arc<dyn RateLimiter>,
        shared: bool,
    ) -> Self {
        Edge {
            idempotency,
            limiter,
            fallback: shared.then(LocalRateLimiter::default),
            degraded: AtomicBool::new(false),
            client_quota: cfg.client_quota,
            sku_quota: cfg.sku_quota,
            ttl: cfg.idempotency_ttl,
            // A claim outlives any request (which is cut at request_timeout), so a
            // claim still held after this is one whose node died.
            lock_ttl: cfg.request_timeout + Duration::from_secs(5),
            max_body: cfg.max_body_bytes,
        }
    }

    /// Whether any rate limit is configured.
    pub fn limits_enabled(&self) -> bool {
        self.client_quota.is_some() || self.sku_quota.is_some()
    }

    /// Whether the shared limiter is failing over to the local one.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    async fn check(&self, key: &str, quota: Quota) -> RateDecision {
        match self.limiter.check(key, quota).await {
            Ok(d) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared again");
                }
                d
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis unavailable: rate limits fall back to this node's own");
                }
                metrics::counter!("flashcore_redis_fallback_total", "use" => "rate_limit").increment(1);
                match &self.fallback {
                    Some(local) => local.check(key, quota).await.unwrap_or(RateDecision::Allowed),
                    None => RateDecision::Allowed,
                }
            }
        }
    }
}

/// Applies the per-client limit to every `/v1/` request and the per-SKU limit to
/// cart edits of that SKU. Called by [`crate::security::admit`], which knows the client.
pub async fn rate_limit(s: &AppState, method: &Method, path: &str, route: &str, client: &str) -> Result<(), ApiError> {
    let edge = &s.edge;
    if let Some(q) = edge.client_quota {
        limited(edge.check(&format!("client:{client}"), q).await, "client")?;
    }
    if let Some(q) = edge.sku_quota
        && method == Method::PUT
        && route == "/v1/carts/{cart_id}/items/{sku}"
        && let Some(sku) = path.rsplit('/').next().and_then(|raw| Sku::parse(raw).ok())
    {
        limited(edge.check(&format!("sku:{sku}"), q).await, "sku")?;
    }
    Ok(())
}

fn limited(decision: RateDecision, limit: &'static str) -> Result<(), ApiError> {
    match decision {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after } => {
            metrics::counter!("flashcore_rate_limited_total", "limit" => limit).increment(1);
            let secs = retry_after.as_millis().div_ceil(1000).max(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("Slow down: the {limit} limit is reached. Retry after {secs} s."),
            )
            .with("limit", limit)
            .retry_after(u64::try_from(secs).unwrap_or(1)))
        }
    }
}

/// Whether a response is the request's outcome (kept for replays) rather than a
/// refusal to run it, which a retry may get past (auth, limits, timeouts, 5xx), or
/// an answer from no handler at all (405).
fn is_outcome(status: StatusCode) -> bool {
    !(status.is_server_error()
        || matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        ))
}

fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update(b"\n");
    h.update(uri.path_and_query().map_or("", |p| p.as_str()).as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

fn unavailable(e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "idempotency store unavailable: failing closed");
    metrics::counter!("flashcore_redis_fallback_total", "use" => "idempotency").increment(1);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "idempotency-unavailable",
        "Temporarily unavailable",
        "Idempotency keys cannot be checked right now, so nothing was done. Retry with the same key shortly.",
    )
    .retry_after(1)
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut res = (status, stored.body).into_response();
    let headers = res.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(n, v);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}

/// Middleware implementing the IETF `Idempotency-Key` draft for every POST, PUT
/// and DELETE that carries the header: the first request runs and its outcome is
/// kept for the configured TTL; a retry with the same key and the same request
/// gets that outcome again (`Idempotent-Replayed: true`); the same key with a
/// different request is 422 `idempotency-key-reused`; a retry while the first is
/// still running is 409 `idempotency-key-in-use`. Keys are scoped by client (cart,
/// API key, or address), so clients can't see each other's outcomes.
pub async fn idempotency(s: &AppState, route: &str, req: Request, next: Next) -> Response {
    let run = |req, next| crate::hardening::deadline(s.request_timeout, req, next);
    // No route, nothing to make idempotent; only state-changing methods are.
    if route == crate::security::UNMATCHED || !matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE) {
        return run(req, next).await;
    }
    let key = match req.headers().get("idempotency-key").map(idempotency_key) {
        None => return run(req, next).await,
        Some(Err(e)) => return e.into_response(),
        Some(Ok(k)) => k,
    };
    let edge = &s.edge;
    let scope = req.extensions().get::<Principal>().cloned().unwrap_or(Principal::Anonymous).scope(peer(&req));
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, edge.max_body).await else {
        return ApiError::payload_too_large().into_response();
    };
    let store_key = format!("{scope}:{key}");
    let print = fingerprint(&parts.method, &parts.uri, &bytes);
    let owner = uuid::Uuid::new_v4().to_string();
    match edge.idempotency.claim(&store_key, &print, &owner, edge.lock_ttl).await {
        Err(e) => unavailable(&e).into_response(),
        Ok(IdempotencyClaim::InProgress) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "Request in progress",
            "A request with this Idempotency-Key is still running; retry when it has finished.",
        )
        .retry_after(1)
        .into_response(),
        Ok(IdempotencyClaim::Mismatch) => ApiError::invalid(
            "idempotency-key-reused",
            "This Idempotency-Key was already used for a different request; use a new key.",
        )
        .into_response(),
        Ok(IdempotencyClaim::Completed(stored)) => {
            metrics::counter!("flashcore_idempotent_replays_total").increment(1);
            replay(stored)
        }
        Ok(IdempotencyClaim::Acquired) => {
            let res = run(Request::from_parts(parts, Body::from(bytes)), next).await;
            settle(edge, &store_key, &owner, res).await
        }
    }
}

/// Marks a response that must never be kept for replays (it shows a secret once).
/// Its idempotency claim is given back instead, so a retry runs again.
#[derive(Debug, Clone, Copy)]
pub struct NotReplayable;

/// Keeps the outcome (or gives the claim back) and returns the response unchanged.
async fn settle(edge: &Edge, key: &str, owner: &str, res: Response) -> Response {
    let status = res.status();
    if !is_outcome(status) || res.extensions().get::<NotReplayable>().is_some() {
        if let Err(e) = edge.idempotency.release(key, owner).await {
            // The claim lapses by itself after lock_ttl.
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_STORED_RESPONSE).await {
        Ok(b) => b,
        Err(e) => {
            let _ = edge.idempotency.release(key, owner).await;
            return ApiError::internal(format!("response body could not be read: {e}")).into_response();
        }
    };
    let headers = REPLAYED_HEADERS
        .iter()
        .filter_map(|n| Some((n.as_str().to_owned(), parts.headers.get(n)?.to_str().ok()?.to_owned())))
        .collect();
    let stored =
        StoredResponse { status: status.as_u16(), headers, body: String::from_utf8_lossy(&bytes).into_owned() };
    if let Err(e) = edge.idempotency.complete(key, owner, &stored, edge.ttl).await {
        // The engine still refuses a second order for this key (the journal's
        // unique constraint); other routes may run once more on a retry.
        tracing::warn!(error = %e, "could not store an idempotent response");
        metrics::counter!("flashcore_redis_errors_total", "op" => "idempotency_complete").increment(1);
    }
    Response::from_parts(parts, Body::from(bytes))
}
