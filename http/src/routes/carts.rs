//! Carts: create, read, set a line, remove a line, check out.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use flashcore_actors::CheckoutRequest;
use flashcore_domain::{CartId, MAX_LINE_QUANTITY};

use crate::dto::{CartBody, CartDto, CheckoutBody, NewCartDto, OrderDto, SetQuantityBody};
use crate::error::{ApiError, ApiResult};
use crate::extract::{IdempotencyKey, Json, Path};
use crate::principal::CartBearer;
use crate::routes::products::parse_sku;
use crate::routes::waiting_room;
use crate::state::AppState;

/// A cart's line of one SKU: `PUT` sets its quantity (and counts against the
/// SKU's rate limit, see [`crate::pipeline`]), `DELETE` removes it.
pub const ITEM: &str = "/v1/carts/{cart_id}/items/{sku}";

/// A cart: `GET` reads it.
pub const CART: &str = "/v1/carts/{cart_id}";

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/carts", post(create_cart))
        .route(CART, get(get_cart))
        .route(ITEM, put(set_item).delete(remove_item))
        .route("/v1/carts/{cart_id}/checkout", post(checkout))
}

fn parse_cart(raw: &str) -> ApiResult<CartId> {
    CartId::parse(raw).map_err(|_| ApiError::not_found("cart-not-found", "No cart with that id."))
}

/// Opens a new cart and returns it with its access token.
#[utoipa::path(post, path = "/v1/carts", tag = "storefront",
    responses((status = 201, body = NewCartDto, headers(("Location" = String, description = "The cart's URL")))))]
pub async fn create_cart(State(s): State<AppState>) -> ApiResult<Response> {
    let cart = s.engine()?.create_cart().await?;
    let token = s.tokens.issue(&cart.id);
    let location = format!("/v1/carts/{}", cart.id);
    let body = NewCartDto { cart_id: cart.id.to_string(), token, cart: CartDto::from(&cart) };
    let mut res = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// Reads a cart: its lines, when their held stock is released, and its total.
#[utoipa::path(get, path = "/v1/carts/{cart_id}", tag = "storefront", security(("cart_token" = [])),
    params(("cart_id" = String, Path, description = "Cart id")),
    responses((status = 200, body = CartDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (another cart's token, or an API key)"), (status = 404, description = "cart-not-found")))]
pub async fn get_cart(
    State(s): State<AppState>,
    auth: CartBearer,
    Path(cart_id): Path<String>,
) -> ApiResult<Json<CartBody>> {
    read_cart(&s, auth, &cart_id).await
}

/// [`get_cart`] once its parts are extracted (the router's way or [`crate::hot`]'s).
pub async fn read_cart(s: &AppState, auth: CartBearer, cart_id: &str) -> ApiResult<Json<CartBody>> {
    let id = parse_cart(cart_id)?;
    auth.require(id)?;
    Ok(Json(CartBody(s.engine()?.cart(id).await?)))
}

/// Sets a line's quantity (0 removes it), reserving or releasing stock first.
#[utoipa::path(put, path = "/v1/carts/{cart_id}/items/{sku}", tag = "storefront", security(("cart_token" = [])),
    params(("cart_id" = String, Path, description = "Cart id"), ("sku" = String, Path, description = "SKU code"),
        ("Waiting-Room-Pass" = Option<String>, Header, description = "The pass of an admitted waiting-room ticket (required to add a product that has a waiting room)")),
    request_body = SetQuantityBody,
    responses((status = 200, body = CartDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (another cart's token, or an API key)"),
        (status = 404, description = "cart-not-found, product-not-found"),
        (status = 409, description = "out-of-stock, limit-exceeded, sale-not-started, cart-checked-out, currency-mismatch, too-many-lines, waiting-room-required (the product has a waiting room: join it, then send its pass)"),
        (status = 422, description = "invalid-quantity")))]
pub async fn set_item(
    State(s): State<AppState>,
    auth: CartBearer,
    Path((cart_id, sku)): Path<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<SetQuantityBody>,
) -> ApiResult<Json<CartBody>> {
    put_line(&s, auth, &cart_id, &sku, &headers, body).await
}

/// [`set_item`] once its parts are extracted (the router's way or [`crate::hot`]'s).
pub async fn put_line(
    s: &AppState,
    auth: CartBearer,
    cart_id: &str,
    sku: &str,
    headers: &HeaderMap,
    body: SetQuantityBody,
) -> ApiResult<Json<CartBody>> {
    let id = parse_cart(cart_id)?;
    auth.require(id)?;
    let sku = parse_sku(sku)?;
    if body.quantity > MAX_LINE_QUANTITY {
        return Err(ApiError::invalid(
            "invalid-quantity",
            format!("quantity must be between 0 and {MAX_LINE_QUANTITY}."),
        )
        .with("max", MAX_LINE_QUANTITY));
    }
    let engine = s.engine()?;
    let with_pass = body.quantity > 0 && waiting_room::require_pass(&s.tokens, &engine, headers, &id, &sku)?;
    let cart = engine.set_quantity(id, sku.clone(), body.quantity).await?;
    if with_pass {
        engine.pass_redeemed(&sku, id).await;
    }
    Ok(Json(CartBody(cart)))
}

/// Removes a line and releases its stock.
#[utoipa::path(delete, path = "/v1/carts/{cart_id}/items/{sku}", tag = "storefront", security(("cart_token" = [])),
    params(("cart_id" = String, Path, description = "Cart id"), ("sku" = String, Path, description = "SKU code")),
    responses((status = 200, body = CartDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (another cart's token, or an API key)"),
        (status = 404, description = "cart-not-found, product-not-found"), (status = 409, description = "cart-checked-out")))]
pub async fn remove_item(
    State(s): State<AppState>,
    auth: CartBearer,
    Path((cart_id, sku)): Path<(String, String)>,
) -> ApiResult<Json<CartBody>> {
    delete_line(&s, auth, &cart_id, &sku).await
}

/// [`remove_item`] once its parts are extracted (the router's way or [`crate::hot`]'s).
pub async fn delete_line(s: &AppState, auth: CartBearer, cart_id: &str, sku: &str) -> ApiResult<Json<CartBody>> {
    let id = parse_cart(cart_id)?;
    auth.require(id)?;
    let sku = parse_sku(sku)?;
    let cart = s.engine()?.set_quantity(id, sku, 0).await?;
    Ok(Json(CartBody(cart)))
}

/// Checks the cart out: reserves become sold once payment is authorized and the
/// order is durably journaled. Retrying with the same `Idempotency-Key` returns the
/// same order (`Idempotent-Replayed: true`) and never charges twice.
#[utoipa::path(post, path = "/v1/carts/{cart_id}/checkout", tag = "storefront", security(("cart_token" = [])),
    params(("cart_id" = String, Path, description = "Cart id"),
        ("Idempotency-Key" = String, Header, description = "Unique per checkout attempt, reused on retries")),
    request_body = CheckoutBody,
    responses((status = 201, body = OrderDto, description = "placed, or replayed with `Idempotent-Replayed: true`",
            headers(("Location" = String, description = "The order's URL"))),
        (status = 400, description = "idempotency-key-missing"), (status = 401, description = "missing-credential"),
        (status = 402, description = "payment-declined"),
        (status = 403, description = "forbidden (another cart's token, or an API key)"), (status = 404, description = "cart-not-found"),
        (status = 409, description = "stock-lost, cart-empty, cart-checked-out"),
        (status = 422, description = "invalid-payment-token, invalid-email"), (status = 502, description = "payment-provider-error")))]
pub async fn checkout(
    State(s): State<AppState>,
    auth: CartBearer,
    Path(cart_id): Path<String>,
    key: IdempotencyKey,
    Json(body): Json<CheckoutBody>,
) -> ApiResult<Response> {
    let id = parse_cart(&cart_id)?;
    auth.require(id)?;
    let token = body.payment.token.trim();
    if token.is_empty() || token.len() > 128 {
        return Err(ApiError::invalid("invalid-payment-token", "payment.token must be 1 to 128 characters."));
    }
    let email = match body.email.map(|e| e.trim().to_owned()) {
        Some(e) if !valid_email(&e) => return Err(ApiError::invalid("invalid-email", "email is not a valid address.")),
        other => other,
    };
    let req = CheckoutRequest { payment_token: token.to_owned(), email, idempotency_key: key.0 };
    let (order, replayed) = s.engine()?.checkout(id, req).await?;
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/orders/{}", order.id)) {
        headers.insert(header::LOCATION, v);
    }
    if replayed {
        // The journal already holds this key's order (the edge's idempotency
        // store lost it, e.g. the in-process one across a restart): the same
        // answer as a replay from the store.
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::CREATED, headers, Json(OrderDto::from(&order))).into_response())
}

/// A deliberately plain check: one `@`, a dot in the domain, no spaces, sane length.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else { return false };
    e.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && e.chars().all(|c| c.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn email_check_is_plain_but_firm() {
        assert!(valid_email("a@b.co"));
        for bad in ["", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b.co.", "a@b@c.de"] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
