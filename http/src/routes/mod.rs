//! Routes: one module per resource, each exposing `router()`.

pub mod admin;
pub mod carts;
pub mod ops;
pub mod orders;
pub mod products;

use axum::Router;

use crate::state::AppState;

/// Every route of API v1 plus the operational endpoints.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(products::router())
        .merge(carts::router())
        .merge(orders::router())
        .merge(admin::router())
        .merge(ops::router())
}
