//! Who is calling: the `Authorization` header resolved once per request into a
//! [`Principal`] (a cart token for buyers, an API key for operators), and the
//! extractors [`CartBearer`], [`CartOrOperator`], [`Operator`] and [`Admin`]
//! that check what a route needs. Every refusal is an [`ApiError`] marked
//! [`ApiError::denied`], which the pipeline reports once as a security event.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use flashcore_domain::CartId;
use flashcore_http_ports::Role;

use crate::api_keys::{API_KEY_PREFIX, ApiKeys};
use crate::cart_tokens::CartTokens;
use crate::error::ApiError;

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No `Authorization` header; rate limits and idempotency keys are scoped by the peer's IP.
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
    pub fn scope(&self, client: Option<IpAddr>) -> String {
        match self {
            Principal::Cart(id) => format!("cart:{id}"),
            Principal::Key { id, .. } => format!("key:{id}"),
            Principal::Anonymous => match client {
                Some(ip) => format!("ip:{ip}"),
                None => "ip:unknown".into(),
            },
        }
    }
}

/// The `Authorization` header as a principal. `Err` for a credential that is
/// present but not valid (malformed, forged, unknown, revoked), or 503 when the
/// key store cannot be asked.
pub async fn resolve(headers: &HeaderMap, keys: &ApiKeys, tokens: &CartTokens) -> Result<Principal, ApiError> {
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
        // Boxed: the key store's future is large, and every request's pipeline
        // future would otherwise carry (and move) its size.
        return match Box::pin(keys.authenticate(token)).await? {
            Some((id, role)) => Ok(Principal::Key { id, role }),
            None => Err(deny_401("unknown-key", "The API key is not valid.")),
        };
    }
    tokens.verify(token).map(Principal::Cart).ok_or_else(|| deny_401("invalid-token", "The cart token is not valid."))
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

fn principal(parts: &Parts) -> Principal {
    parts.extensions.get::<Principal>().cloned().unwrap_or(Principal::Anonymous)
}

/// The cart a valid cart token grants. API keys don't act on carts.
#[derive(Debug, Clone, Copy)]
pub struct CartBearer(pub CartId);

impl<S: Send + Sync> FromRequestParts<S> for CartBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        CartBearer::of(&principal(parts))
    }
}

impl CartBearer {
    /// The cart `principal` may act on: 401 without a credential, 403 for an API key.
    pub fn of(principal: &Principal) -> Result<Self, ApiError> {
        match principal {
            Principal::Cart(id) => Ok(CartBearer(*id)),
            Principal::Anonymous => {
                Err(deny_401("missing-credential", "Send the cart token as 'Authorization: Bearer <token>'."))
            }
            Principal::Key { .. } => Err(deny_403("key-on-cart", "API keys cannot act on carts; use the cart token.")),
        }
    }

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
    /// Id of the API key that authenticated the request (never the secret).
    pub key_id: String,
    /// What the key may do: `operator` reads, `admin` also writes.
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
    /// Id of the admin key that authenticated the request (never the secret).
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
