//! `GET /v1/orders/{order_id}`.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use flashcore_domain::OrderId;

use crate::dto::OrderDto;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::principal::CartOrOperator;
use crate::state::AppState;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/orders/{order_id}", get(get_order))
}

/// An order, for the holder of the token of the cart that placed it, or an operator.
#[utoipa::path(get, path = "/v1/orders/{order_id}", tag = "storefront", security(("cart_token" = []), ("api_key" = [])),
    params(("order_id" = String, Path, description = "Order id")),
    responses((status = 200, body = OrderDto), (status = 401, description = "missing-credential"),
        (status = 404, description = "order-not-found (also another cart's order)")))]
pub async fn get_order(
    State(s): State<AppState>,
    auth: CartOrOperator,
    Path(order_id): Path<String>,
) -> ApiResult<Json<OrderDto>> {
    let not_found = || ApiError::not_found("order-not-found", "No order with that id.");
    let id = OrderId::parse(&order_id).map_err(|_| not_found())?;
    // Another cart's order answers exactly like a missing one: ids are not probed.
    match (s.engine()?.order(id).await?, auth) {
        (Some(order), CartOrOperator::Operator) => Ok(Json(OrderDto::from(&order))),
        (Some(order), CartOrOperator::Cart(cart)) if order.cart_id == cart => Ok(Json(OrderDto::from(&order))),
        _ => Err(not_found()),
    }
}
