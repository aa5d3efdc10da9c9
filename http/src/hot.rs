//! The hot routes, matched before the router: a cart's read and the setting
//! and removing of its lines, the requests a flash sale is made of.
//!
//! The router costs every request its match, a boxed and cloned service per
//! layer, a `MatchedPath` and path-parameter allocations, and the extractors'
//! copies (the whole `HeaderMap` for `set_item`). A hot route skips all of it:
//! its path is split here, and it goes through the same steps
//! ([`pipeline::run`]), the same checks ([`CartBearer::of`],
//! [`extract::json_body`]) and the same handler bodies
//! ([`carts::read_cart`], [`carts::put_line`], [`carts::delete_line`]) as
//! through the router, so its answers, metrics labels and problem documents
//! are the router's. Anything else, including a path with percent-escapes
//! (the router decodes those) or a `HEAD`, goes to the router.

use std::convert::Infallible;
use std::ops::Range;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use flashcore_domain::Sku;
use futures::future::{BoxFuture, Either};
use tower::Service;

use crate::dto::SetQuantityBody;
use crate::extract;
use crate::pipeline::{self, Edited};
use crate::principal::{CartBearer, Principal};
use crate::routes::carts;
use crate::state::AppState;

/// A hot route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hot {
    /// `GET /v1/carts/{cart_id}`.
    GetCart,
    /// `PUT /v1/carts/{cart_id}/items/{sku}`.
    SetLine,
    /// `DELETE /v1/carts/{cart_id}/items/{sku}`.
    DeleteLine,
}

/// Where a hot route's parameters are in its path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Params {
    cart: Range<usize>,
    sku: Option<Range<usize>>,
}

impl Params {
    fn cart<'p>(&self, path: &'p str) -> &'p str {
        path.get(self.cart.clone()).unwrap_or_default()
    }

    fn sku<'p>(&self, path: &'p str) -> &'p str {
        self.sku.clone().and_then(|sku| path.get(sku)).unwrap_or_default()
    }
}

/// Where the path's cart id and SKU (none for a cart) are, if it has the shape
/// of a hot route's and nothing the router would decode. One pass, once per
/// request.
fn segments(path: &str) -> Option<Params> {
    const PREFIX: &str = "/v1/carts/";
    let rest = path.strip_prefix(PREFIX)?;
    if rest.as_bytes().contains(&b'%') {
        return None;
    }
    let Some(slash) = rest.find('/') else {
        return (!rest.is_empty()).then(|| Params { cart: PREFIX.len()..path.len(), sku: None });
    };
    let sku = rest[slash + 1..].strip_prefix("items/")?;
    if slash == 0 || sku.is_empty() || sku.contains('/') {
        return None;
    }
    Some(Params { cart: PREFIX.len()..PREFIX.len() + slash, sku: Some(path.len() - sku.len()..path.len()) })
}

fn matched(method: &Method, path: &str) -> Option<(Hot, Params)> {
    let params = segments(path)?;
    let hot = match (params.sku.is_some(), method) {
        (false, &Method::GET) => Hot::GetCart,
        (true, &Method::PUT) => Hot::SetLine,
        (true, &Method::DELETE) => Hot::DeleteLine,
        _ => return None,
    };
    Some((hot, params))
}

/// The router, with the hot routes answered before it.
#[derive(Clone)]
pub struct HotRoutes<S> {
    router: S,
    state: AppState,
    max_body: usize,
}

impl<S> std::fmt::Debug for HotRoutes<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotRoutes").field("max_body", &self.max_body).finish_non_exhaustive()
    }
}

impl<S> HotRoutes<S> {
    /// Answers the hot routes with `state` (bodies up to `max_body` bytes, the
    /// router's `DefaultBodyLimit`), and hands everything else to `router`.
    pub fn new(router: S, state: AppState, max_body: usize) -> Self {
        HotRoutes { router, state, max_body }
    }
}

impl<S> Service<Request> for HotRoutes<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.router.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match matched(req.method(), req.uri().path()) {
            None => Either::Left(self.router.call(req)),
            Some((hot, params)) => {
                let (state, max_body) = (self.state.clone(), self.max_body);
                Either::Right(Box::pin(async move { Ok(serve(&state, hot, params, max_body, req).await) }))
            }
        }
    }
}

async fn serve(s: &AppState, hot: Hot, params: Params, max_body: usize, req: Request) -> Response {
    let (route, edited) = match hot {
        Hot::GetCart => (carts::CART, Edited::Known(None)),
        // The per-SKU limit counts what a `PUT` sets, as through the router
        // (and, as there, the SKU is read for it only when that limit is on).
        Hot::SetLine if s.limits.per_sku() => {
            (carts::ITEM, Edited::Known(Sku::parse(params.sku(req.uri().path())).ok()))
        }
        Hot::SetLine => (carts::ITEM, Edited::Known(None)),
        Hot::DeleteLine => (carts::ITEM, Edited::Known(None)),
    };
    // Boxed, as the router boxes a handler's future: the pipeline's layers
    // take it by value, and the engine's calls make it large.
    pipeline::run(s, route, edited, req, |req: Request, principal: Option<Principal>| {
        Box::pin(answer(s, hot, params, max_body, req, principal))
    })
    .await
}

/// The handler of `hot`, its parts extracted in the router's order: the
/// caller, the path, then the body.
async fn answer(
    s: &AppState,
    hot: Hot,
    params: Params,
    max_body: usize,
    req: Request,
    principal: Option<Principal>,
) -> Response {
    let auth = match CartBearer::of(&principal.unwrap_or(Principal::Anonymous)) {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    let (parts, body) = req.into_parts();
    let (cart, sku) = (params.cart(parts.uri.path()), params.sku(parts.uri.path()));
    match hot {
        Hot::GetCart => carts::read_cart(s, auth, cart).await.into_response(),
        Hot::DeleteLine => carts::delete_line(s, auth, cart, sku).await.into_response(),
        Hot::SetLine => match extract::json_body::<SetQuantityBody>(&parts.headers, body, max_body).await {
            Ok(body) => carts::put_line(s, auth, cart, sku, &parts.headers, body).await.into_response(),
            Err(e) => e.into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hot_routes_shapes_match() {
        let id = "5d032f94-36f5-4276-bb7e-92d6c0605257";
        let cart = format!("/v1/carts/{id}");
        let item = format!("/v1/carts/{id}/items/SKU-1");
        let hot = |method: &Method, path: &str| matched(method, path).map(|(hot, _)| hot);
        assert_eq!(hot(&Method::GET, &cart), Some(Hot::GetCart));
        assert_eq!(hot(&Method::PUT, &item), Some(Hot::SetLine));
        assert_eq!(hot(&Method::DELETE, &item), Some(Hot::DeleteLine));
        let params = segments(&item).expect("an item's path");
        assert_eq!((params.cart(&item), params.sku(&item)), (id, "SKU-1"));
        let params = segments(&cart).expect("a cart's path");
        assert_eq!((params.cart(&cart), params.sku(&cart)), (id, ""));
        // Everything else is the router's: other methods (HEAD included), other
        // shapes, empty segments, trailing slashes, percent-escapes.
        for (method, path) in [
            (Method::HEAD, cart.clone()),
            (Method::PUT, cart.clone()),
            (Method::POST, item.clone()),
            (Method::GET, item.clone()),
            (Method::GET, format!("{cart}/")),
            (Method::PUT, format!("{item}/")),
            (Method::PUT, format!("{cart}/items/")),
            (Method::PUT, format!("{cart}/lines/SKU-1")),
            (Method::POST, format!("{cart}/checkout")),
            (Method::GET, "/v1/carts/".to_owned()),
            (Method::PUT, "/v1/carts//items/SKU-1".to_owned()),
            (Method::PUT, format!("{cart}/items/SKU-1/x")),
            (Method::GET, "/v1/carts".to_owned()),
            (Method::GET, "/v1/cartsx/1".to_owned()),
            (Method::PUT, format!("{cart}/items/SKU%2D1")),
        ] {
            assert_eq!(matched(&method, &path), None, "{method} {path}");
        }
    }
}
