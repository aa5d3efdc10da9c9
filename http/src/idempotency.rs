//! Idempotency keys (the IETF `Idempotency-Key` draft) for every POST, PUT and
//! DELETE that carries the header: the first request runs and its outcome is
//! kept for the configured TTL; a retry with the same key and the same request
//! gets that outcome again (`Idempotent-Replayed: true`); the same key with a
//! different request is 422 `idempotency-key-reused`; a retry while the first
//! is still running is 409 `idempotency-key-in-use`. Keys are scoped by client
//! (cart, API key, or address), so clients can't see each other's outcomes.
//!
//! **Idempotency fails closed.** A request carrying a key (every checkout) gets
//! 503 `idempotency-unavailable` with `Retry-After` while the key store cannot
//! be asked: answering without it could charge twice. Requests without a key
//! are not affected.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flashcore_http_ports::{IdempotencyClaim, IdempotencyStore, StoreError, StoredResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Largest response kept for an idempotent replay.
const MAX_STORED_RESPONSE: usize = 1024 * 1024;

/// Response headers a replay repeats.
const REPLAYED_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::RETRY_AFTER];

/// The key store and how long what it keeps lives.
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    /// How long a completed key is kept.
    ttl: Duration,
    /// How long a claim lives: longer than any request (which is cut at the
    /// request timeout), so a claim still held after this is one whose node died.
    lock_ttl: Duration,
    /// The largest request body read to fingerprint a request.
    max_body: usize,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency").field("ttl", &self.ttl).field("lock_ttl", &self.lock_ttl).finish_non_exhaustive()
    }
}

/// A key this request holds: the pipeline runs the request, then hands its
/// response to [`Idempotency::settle`].
#[derive(Debug)]
pub struct Claim {
    key: String,
    owner: String,
}

/// What [`Idempotency::begin`] decided.
#[derive(Debug)]
pub enum Begin {
    /// Run the request; settle the claim afterwards if there is one.
    Run(Request, Option<Claim>),
    /// Answer this instead of running it (a replay, a conflict, a refusal).
    Answer(Response),
}

impl Idempotency {
    /// Keys in `store`: outcomes kept for `ttl`, claims for `request_timeout` + 5 s.
    pub fn new(store: Arc<dyn IdempotencyStore>, ttl: Duration, request_timeout: Duration, max_body: usize) -> Self {
        Idempotency { store, ttl, lock_ttl: request_timeout + Duration::from_secs(5), max_body }
    }

    /// True if `req` takes part: a state-changing method with an
    /// `Idempotency-Key` header (valid or not: [`Idempotency::begin`] judges it).
    pub fn applies(req: &Request) -> bool {
        matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE)
            && req.headers().contains_key("idempotency-key")
    }

    /// Claims the request's key for `scope` (the client) if it is a
    /// state-changing request with an `Idempotency-Key`; otherwise lets it run
    /// as it is.
    pub async fn begin(&self, scope: &str, req: Request) -> Begin {
        if !matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE) {
            return Begin::Run(req, None);
        }
        let key = match req.headers().get("idempotency-key").map(parse_key) {
            None => return Begin::Run(req, None),
            Some(Err(e)) => return Begin::Answer(e.into_response()),
            Some(Ok(k)) => k,
        };
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, self.max_body).await else {
            return Begin::Answer(ApiError::payload_too_large().into_response());
        };
        let store_key = format!("{scope}:{key}");
        let print = fingerprint(&parts.method, &parts.uri, &bytes);
        let owner = uuid::Uuid::new_v4().to_string();
        let answer = match self.store.claim(&store_key, &print, &owner, self.lock_ttl).await {
            Err(e) => unavailable(&e),
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
                let req = Request::from_parts(parts, Body::from(bytes));
                return Begin::Run(req, Some(Claim { key: store_key, owner }));
            }
        };
        Begin::Answer(answer)
    }

    /// Keeps the outcome (or gives the claim back) and returns the response unchanged.
    pub async fn settle(&self, claim: Claim, res: Response) -> Response {
        let Claim { key, owner } = claim;
        let (key, owner) = (key.as_str(), owner.as_str());
        let status = res.status();
        if !is_outcome(status) || res.extensions().get::<NotReplayable>().is_some() {
            if let Err(e) = self.store.release(key, owner).await {
                // The claim lapses by itself after lock_ttl.
                tracing::warn!(error = %e, "could not release an idempotency key");
            }
            return res;
        }
        let (parts, body) = res.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, MAX_STORED_RESPONSE).await {
            Ok(b) => b,
            Err(e) => {
                let _ = self.store.release(key, owner).await;
                return ApiError::internal(format!("response body could not be read: {e}")).into_response();
            }
        };
        let headers = REPLAYED_HEADERS
            .iter()
            .filter_map(|n| Some((n.as_str().to_owned(), parts.headers.get(n)?.to_str().ok()?.to_owned())))
            .collect();
        let stored =
            StoredResponse { status: status.as_u16(), headers, body: String::from_utf8_lossy(&bytes).into_owned() };
        if let Err(e) = self.store.complete(key, owner, &stored, self.ttl).await {
            // The engine still refuses a second order for this key (the journal's
            // unique constraint); other routes may run once more on a retry.
            tracing::warn!(error = %e, "could not store an idempotent response");
            metrics::counter!("flashcore_redis_errors_total", "op" => "idempotency_complete").increment(1);
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

/// Validates an `Idempotency-Key` value: 1 to 255 visible ASCII characters.
pub fn parse_key(v: &axum::http::HeaderValue) -> Result<String, ApiError> {
    let key = v.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "idempotency-key-invalid",
            "The Idempotency-Key must be 1 to 255 visible ASCII characters.",
        ));
    }
    Ok(key.to_owned())
}

/// Marks a response that must never be kept for replays (it shows a secret once).
/// Its idempotency claim is given back instead, so a retry runs again.
#[derive(Debug, Clone, Copy)]
pub struct NotReplayable;

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

fn unavailable(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "idempotency store unavailable: failing closed");
    metrics::counter!("flashcore_redis_fallback_total", "use" => "idempotency").increment(1);
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "idempotency-unavailable",
        "Temporarily unavailable",
        "Idempotency keys cannot be checked right now, so nothing was done. Retry with the same key shortly.",
    )
    .retry_after(1)
    .into_response()
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
