//! Who is calling: cart tokens for buyers, API keys for operators.
//!
//! [`admit`] resolves the `Authorization` header once per request into a
//! [`Principal`], applies the rate limits that depend on it, and puts it into the
//! request's extensions, where the extractors [`CartBearer`], [`CartOrOperator`],
//! [`Operator`] and [`Admin`] check what a route needs. Every 401 and 403, wherever
//! it is decided, is reported once here as a structured security event
//! (`target: "flashcore::security"`) and counted in `flashcore_auth_denied_total`.
//!
//! Operator keys look like `fck_<43 base64url characters>`; only their SHA-256
//! is stored, and neither the key nor its hash is ever logged. Lookups are cached
//! for [`KEY_CACHE_TTL`], so a revoked key stops working within that time.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use flashcore_actors::ports::{ApiKeyRecord, ApiKeyStore, Role, StoreError};
use flashcore_domain::CartId;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Every operator key starts with this, so it is never mistaken for a cart token.
pub const API_KEY_PREFIX: &str = "fck_";

/// How long a key lookup is trusted before the store is asked again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Most cached lookups kept (the cache is cleared when full: unknown keys can't grow it without bound).
const KEY_CACHE_MAX: usize = 10_000;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credential.
    Anonymous,
    /// The holder of a valid cart token.
    Cart(CartId),
    /// An operator API key.
    Key {
        /// The key's id (never the key).
        id: String,
        /// What it may do.
        role: Role,
    },
}

impl Principal {
    /// The client identity rate limits and idempotency keys are scoped by.
    pub fn scope(&self, peer: Option<SocketAddr>) -> String {
        match self {
            Principal::Cart(id) => format!("cart:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
            Principal::Anonymous => match peer {
                Some(addr) => format!("ip:{}", addr.ip()),
                None => "ip:unknown".into(),
            },
        }
    }
}

/// SHA-256 of a key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: `(secret, its record)`. The secret is shown once and never stored.
pub fn new_key(name: &str, role: Role) -> (String, ApiKeyRecord) {
    let bytes: [u8; 32] = rand::random();
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        role,
        key_sha256: key_hash(&secret),
        created_at: flashcore_actors::clock::now(),
        revoked: false,
    };
    (secret, record)
}

/// A key's id and role, or `None` for a hash no live key has.
type Lookup = Option<(String, Role)>;

/// Checks operator keys against the store (once it is open) and the bootstrap key.
pub struct ApiKeys {
    store: OnceLock<Arc<dyn ApiKeyStore>>,
    bootstrap: Option<[u8; 32]>,
    cache: DashMap<[u8; 32], (Lookup, Instant)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").field("bootstrap", &self.bootstrap.is_some()).finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Keys checked against `bootstrap_admin` (if any) and, once set, a store.
    pub fn new(bootstrap_admin: Option<&str>) -> Self {
        ApiKeys { store: OnceLock::new(), bootstrap: bootstrap_admin.map(key_hash), cache: DashMap::new() }
    }

    /// Connects the store (done when start-up has opened it).
    pub fn set_store(&self, store: Arc<dyn ApiKeyStore>) {
        let _ = self.store.set(store);
    }

    /// The store, once open.
    pub fn store(&self) -> Option<&Arc<dyn ApiKeyStore>> {
        self.store.get()
    }

    /// Forgets cached lookups (after a revocation on this node).
    pub fn forget(&self) {
        self.cache.clear();
    }

    /// The id and role of `secret`, `None` if it is not a live key. `Err` if the
    /// store cannot be asked (not open yet, or unreachable).
    pub async fn authenticate(&self, secret: &str) -> Result<Lookup, StoreError> {
        let hash = key_hash(secret);
        if self.bootstrap.is_some_and(|b| constant_time_eq(&b, &hash)) {
            return Ok(Some(("bootstrap".into(), Role::Admin)));
        }
        if let Some(hit) = self.cache.get(&hash)
            && hit.1.elapsed() < KEY_CACHE_TTL
        {
            return Ok(hit.0.clone());
        }
        let store = self.store.get().ok_or_else(|| StoreError::Unavailable("the key store is not open yet".into()))?;
        let found = store.find_key(&hash).await?.filter(|k| !k.revoked).map(|k| (k.id, k.role));
        if self.cache.len() >= KEY_CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(hash, (found.clone(), Instant::now()));
        Ok(found)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a request was refused a credential check; carried on the response so the
/// denial is logged once, with its route, by [`admit`].
#[derive(Debug, Clone, Copy)]
pub struct Denied(pub &'static str);

/// The `Authorization` header as a principal. `Err` for a credential that is
/// present but not valid (malformed, forged, unknown, revoked).
async fn resolve(headers: &axum::http::HeaderMap, s: &AppState) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Principal::Anonymous);
    };
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| deny_401("malformed", "The Authorization header must be 'Bearer <token>'."))?;
    if token.starts_with(API_KEY_PREFIX) {
        return match s.keys.authenticate(token).await {
            Ok(Some((id, role))) => Ok(Principal::Key { id, role }),
            Ok(None) => Err(deny_401("unknown-key", "The API key is not valid.")),
            Err(e) => {
                s.engine()?; // 503 `not-ready` while start-up is still opening the store
                Err(ApiError::from(flashcore_actors::EngineError::store(e)))
            }
        };
    }
    s.tokens.verify(token).map(Principal::Cart).ok_or_else(|| deny_401("invalid-token", "The cart token is not valid."))
}

fn deny_401(reason: &'static str, detail: &str) -> ApiError {
    ApiError::unauthorized(detail.to_owned()).denied(reason)
}

fn deny_403(reason: &'static str, detail: &str) -> ApiError {
    ApiError::forbidden(detail.to_owned()).denied(reason)
}

/// The peer address, if the server was started with connect info.
pub fn peer(req: &Request) -> Option<SocketAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// For every `/v1/` request: resolve the caller, apply rate limits, refuse invalid
/// credentials, run the rest (idempotency, the handler), and report every denial.
pub async fn admit(s: &AppState, route: &str, mut req: Request, next: Next) -> Response {
    let peer = peer(&req);
    let resolved = resolve(req.headers(), s).await;
    let limited = if s.edge.limits_enabled() {
        let scope = match &resolved {
            Ok(p) => p.scope(peer),
            Err(_) => Principal::Anonymous.scope(peer),
        };
        crate::edge::rate_limit(s, req.method(), req.uri().path(), route, &scope).await
    } else {
        Ok(())
    };
    let method = req.method().clone();
    let response = match (limited, resolved) {
        (Err(limited), _) => limited.into_response(),
        (Ok(()), Err(e)) => e.into_response(),
        (Ok(()), Ok(principal)) => {
            req.extensions_mut().insert(principal);
            crate::edge::idempotency(s, route, req, next).await
        }
    };
    if let Some(&Denied(reason)) = response.extensions().get::<Denied>() {
        let status = response.status().as_u16();
        tracing::warn!(
            target: "flashcore::security",
            event = "auth.denied",
            status,
            reason,
            method = %method,
            route = %route,
            client = %peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            "request denied"
        );
        metrics::counter!("flashcore_auth_denied_total", "reason" => reason, "route" => route.to_owned()).increment(1);
    }
    response
}

fn principal(parts: &Parts) -> Principal {
    parts.extensions.get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// The cart a valid cart token grants. API keys don't act on carts.
#[derive(Debug, Clone, Copy)]
pub struct CartBearer(pub CartId);

impl<S: Send + Sync> FromRequestParts<S> for CartBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match principal(parts) {
            Principal::Cart(id) => Ok(CartBearer(id)),
            Principal::Anonymous => {
                Err(deny_401("missing-credential", "Send the cart token as 'Authorization: Bearer <token>'."))
            }
            Principal::Key { .. } => Err(deny_403("key-on-cart", "API keys cannot act on carts; use the cart token.")),
        }
    }
}

impl CartBearer {
    /// Checks the token is for `cart`.
    pub fn require(self, cart: CartId) -> Result<(), ApiError> {
        if self.0 == cart { Ok(()) } else { Err(deny_403("wrong-cart", "This token is for another cart.")) }
    }
}

/// A cart token or an operator key (reading orders).
#[derive(Debug, Clone)]
pub enum CartOrOperator {
    /// A buyer, for the orders their cart placed.
    Cart(CartId),
    /// An operator or admin key: any order.
    Operator,
}

impl<S: Send + Sync> FromRequestParts<S> for CartOrOperator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match principal(parts) {
            Principal::Cart(id) => Ok(CartOrOperator::Cart(id)),
            Principal::Key { .. } => Ok(CartOrOperator::Operator),
            Principal::Anonymous => Err(deny_401(
                "missing-credential",
                "Send the cart token (or an operator key) as 'Authorization: Bearer <token>'.",
            )),
        }
    }
}

/// An operator or admin key (read access to `/v1/admin/*`).
#[derive(Debug, Clone)]
pub struct Operator {
    /// The key's id.
    pub key_id: String,
    /// Its role.
    pub role: Role,
}

impl<S: Send + Sync> FromRequestParts<S> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match principal(parts) {
            Principal::Key { id, role } => Ok(Operator { key_id: id, role }),
            Principal::Anonymous => {
                Err(deny_401("missing-credential", "Send an operator API key as 'Authorization: Bearer fck_…'."))
            }
            Principal::Cart(_) => Err(deny_403("token-on-admin", "A cart token grants no operator access.")),
        }
    }
}

/// An admin key (write access to `/v1/admin/*`).
#[derive(Debug, Clone)]
pub struct Admin {
    /// The key's id.
    pub key_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let op = Operator::from_request_parts(parts, state).await?;
        if op.role == Role::Admin {
            Ok(Admin { key_id: op.key_id })
        } else {
            Err(deny_403("role", "This needs an admin key; an operator key may only read."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_stored_only_as_hashes() {
        let (a, ra) = new_key("ci", Role::Admin);
        let (b, _) = new_key("ci", Role::Admin);
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() == API_KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(ra.key_sha256, key_hash(&a));
        assert!(!format!("{ra:?}").contains(&a));
    }

    #[tokio::test]
    async fn the_bootstrap_key_is_an_admin_and_nothing_else_is_without_a_store() {
        let keys = ApiKeys::new(Some("fck_bootstrap-bootstrap-bootstrap-bootstrap"));
        assert_eq!(
            keys.authenticate("fck_bootstrap-bootstrap-bootstrap-bootstrap").await.unwrap(),
            Some(("bootstrap".into(), Role::Admin))
        );
        assert!(keys.authenticate("fck_other").await.is_err(), "no store yet: cannot say");
    }
}
