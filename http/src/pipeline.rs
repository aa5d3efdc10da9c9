//! The one middleware every request passes through, and the order of its steps.
//!
//! For `/v1/` requests, while this node serves the store:
//!
//! 1. **credentials**: the `Authorization` header becomes a [`Principal`]
//!    ([`principal::resolve`], given only the API keys and the cart tokens);
//! 2. **limits**: the caller's scope, and the SKU of a cart edit, are counted
//!    ([`crate::rate_limit::RateLimits::check`]); an over-quota caller is refused before an invalid
//!    credential is;
//! 3. **idempotency**: a state-changing request with a key is claimed, replayed
//!    or refused ([`Idempotency::begin`]);
//! 4. **deadline**: the handler runs under the request timeout ([`deadline`]);
//! 5. the outcome is kept for replays ([`Idempotency::settle`]), and an answer
//!    computed after the lease term it was admitted under ended is replaced by
//!    503 (never a stale answer from a node that lost the store).
//!
//! Every request, `/v1/` or not, runs under its id ([`request_id`], answered
//! as `x-request-id`), then gets its security headers ([`headers::secure`])
//! and is counted ([`http_metrics::record`]); a denial is reported once as a
//! security event. Each step is a leaf that gets only what
//! it needs and never calls the next: the order lives here alone. One layer
//! rather than five: axum boxes and clones per layer, on every request.

use std::future::Future;
use std::net::IpAddr;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flashcore_actors::ownership::{NotServing, Phase};
use flashcore_domain::Sku;
use tracing::Instrument;

use crate::deadline::deadline;
use crate::error::Denied;
use crate::frontend::Served;
use crate::idempotency::{Begin, Idempotency};
use crate::principal::{self, Principal};
use crate::request_id::{self, RequestId};
use crate::routes::carts;
use crate::state::AppState;
use crate::{headers, http_metrics, telemetry};

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The route label of what the frontend served (pages, scripts, styles).
pub const FRONTEND: &str = "frontend";

/// The middleware (installed once, around every route and the fallbacks).
pub async fn pipeline(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    run(&s, route, Edited::InPath, req, |mut req: Request, principal: Option<Principal>| {
        if let Some(principal) = principal {
            req.extensions_mut().insert(principal);
        }
        next.run(req)
    })
    .await
}

/// What the steps lead to: the handler, given the request and, for a `/v1/`
/// request, its caller.
pub trait Handle {
    /// Its answer.
    type Answer: Future<Output = Response>;

    /// Handles `req`.
    fn handle(self, req: Request, principal: Option<Principal>) -> Self::Answer;
}

impl<H, F> Handle for H
where
    H: FnOnce(Request, Option<Principal>) -> F,
    F: Future<Output = Response>,
{
    type Answer = F;

    fn handle(self, req: Request, principal: Option<Principal>) -> F {
        self(req, principal)
    }
}

/// Where the per-SKU limit finds the SKU a request edits.
#[derive(Debug)]
pub enum Edited {
    /// In the router's path parameters (see [`edited_sku`]).
    InPath,
    /// Already known: a route matched before the router ([`crate::hot`]).
    Known(Option<Sku>),
}

/// The steps, in order, around `handler` for a request of `route` (its
/// pattern, or [`UNMATCHED`]). The handler gets the request and, for a `/v1/`
/// request, its caller. The router's middleware ([`pipeline`]) and the hot
/// routes matched before the router ([`crate::hot`]) both run through here.
pub async fn run(s: &AppState, route: &str, edited: Edited, req: Request, handler: impl Handle) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let api = req.uri().path().starts_with("/v1/");
    let id = RequestId::for_request(req.headers());
    let id_header = id.header().clone();
    let client = s.proxies.client(principal::peer(&req).map(|p| p.ip()), req.headers());
    let span = telemetry::request_span(&req, route, &id);
    // Boxed: the request id's scope and the span take the steps' future by
    // value; moving a pointer costs less than copying the steps' state.
    let work = Box::pin(async {
        if api {
            api_request(s, route, client.addr, edited, req, handler).await
        } else {
            deadline(s.request_timeout, handler.handle(req, None)).await
        }
    });
    // Wrapped in the span only when traces are on: the wrapper moves the
    // whole request future once more, on every request.
    let mut res = if span.is_disabled() {
        request_id::scope(id, work).await
    } else {
        request_id::scope(id, work).instrument(span.clone()).await
    };
    telemetry::answer(&span, &mut res);
    headers::secure(&mut res, api, client.https || s.tls);
    res.headers_mut().insert(request_id::HEADER.clone(), id_header);
    // The storefront's pages and files are one route to the metrics, apart from
    // the paths nothing answers.
    let route = if res.extensions().get::<Served>().is_some() { FRONTEND } else { route };
    http_metrics::record(&method, route, res.status(), started.elapsed());
    res
}

/// A `/v1/` request: admitted under this node's lease, then the steps in order.
async fn api_request(
    s: &AppState,
    route: &str,
    client: Option<IpAddr>,
    edited: Edited,
    req: Request,
    handler: impl Handle,
) -> Response {
    // Only the owner of the store answers the API, and only from the lease
    // term it admitted the request under: an answer computed while the lease
    // was lost (a frozen process waking up) leaves as 503, never from stale memory.
    let own = s.node.ownership();
    let admission = match own.admit() {
        Ok(admission) => admission,
        // Cluster mode: a share that moves is served again within moments;
        // the request waits for it (at most MOVE_WAIT) rather than failing.
        Err(NotServing(Phase::Moving | Phase::Standby | Phase::Recovering)) if own.config().share => {
            let mut phases = own.watch();
            let serving = phases.wait_for(|p| *p == Phase::Serving);
            let _ = tokio::time::timeout(flashcore_actors::sku_link::MOVE_WAIT.min(s.request_timeout), serving).await;
            match own.admit() {
                Ok(admission) => admission,
                Err(NotServing(phase)) => return s.not_serving(phase).into_response(),
            }
        }
        Err(NotServing(phase)) => return s.not_serving(phase).into_response(),
    };
    let method = req.method().clone();
    let res = steps(s, route, client, edited, req, handler).await;
    let res = if admission.still_valid() { res } else { s.not_serving(Phase::Lost).into_response() };
    if let Some(&Denied(reason)) = res.extensions().get::<Denied>() {
        report_denial(reason, res.status().as_u16(), &method, route, client);
    }
    res
}

async fn steps(
    s: &AppState,
    route: &str,
    client: Option<IpAddr>,
    edited: Edited,
    mut req: Request,
    handler: impl Handle,
) -> Response {
    let resolved = principal::resolve(req.headers(), &s.keys, &s.tokens).await;
    if s.limits.enabled() {
        // An invalid credential is limited as the anonymous caller it then is.
        let scope = resolved.as_ref().unwrap_or(&Principal::Anonymous).scope(client);
        let sku = match edited {
            _ if !s.limits.per_sku() => None,
            Edited::InPath => edited_sku(route, &mut req).await,
            Edited::Known(sku) => sku,
        };
        // Boxed, like the idempotency claim: Redis futures are large.
        if let Err(limited) = Box::pin(s.limits.check(&scope, sku.as_ref())).await {
            return limited.into_response();
        }
    }
    let principal = match resolved {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    // No route, nothing to make idempotent; nor a request without a key.
    let idempotent = (route != UNMATCHED && Idempotency::applies(&req)).then(|| principal.scope(client));
    match idempotent {
        None => deadline(s.request_timeout, handler.handle(req, Some(principal))).await,
        Some(scope) => run_idempotent(&s.idempotency, &scope, s.request_timeout, req, principal, handler).await,
    }
}

/// A request with an `Idempotency-Key`, for the client `scope`: claimed,
/// replayed or refused, and its outcome kept.
async fn run_idempotent(
    idempotency: &Idempotency,
    scope: &str,
    timeout: std::time::Duration,
    req: Request,
    principal: Principal,
    handler: impl Handle,
) -> Response {
    // Boxed: the claim and the settle go to the key store (Redis), whose futures
    // are large; a request without a key never carries them.
    Box::pin(async move {
        match idempotency.begin(scope, req).await {
            Begin::Answer(res) => res,
            Begin::Run(req, None) => deadline(timeout, handler.handle(req, Some(principal))).await,
            Begin::Run(req, Some(claim)) => {
                let res = deadline(timeout, handler.handle(req, Some(principal))).await;
                idempotency.settle(claim, res).await
            }
        }
    })
    .await
}

/// The SKU a request sets in a cart ([`carts::ITEM`], `PUT`): the route's own
/// `{sku}` parameter, so the per-SKU limit follows the router.
async fn edited_sku(route: &str, req: &mut Request) -> Option<Sku> {
    if route != carts::ITEM || req.method() != Method::PUT {
        return None;
    }
    let (mut parts, body) = std::mem::take(req).into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await.ok();
    *req = Request::from_parts(parts, body);
    params?.iter().find(|(name, _)| *name == "sku").and_then(|(_, raw)| Sku::parse(raw).ok())
}

/// Logs a 401/403 once, as a structured security event, and counts it.
fn report_denial(reason: &'static str, status: u16, method: &Method, route: &str, client: Option<IpAddr>) {
    tracing::warn!(
        target: "flashcore::security",
        event = "auth.denied",
        status,
        reason,
        method = %method,
        route = %route,
        client = %client.map(|ip| ip.to_string()).unwrap_or_default(),
        request_id = request_id::current().unwrap_or_default(),
        "request denied"
    );
    metrics::counter!("flashcore_auth_denied_total", "reason" => reason, "route" => route.to_owned()).increment(1);
}
