//! Routes: one module per resource, each exposing `router()`.

pub mod admin;
pub mod carts;
pub mod ops;
pub mod orders;
pub mod products;
pub mod waiting_room;

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
        .merge(waiting_room::router())
}

/// Keyset paging shared by the list routes: the page size and cursor from the
/// query, and the page cut from a fetch of `limit + 1` items.
pub mod paging {
    use crate::error::{ApiError, ApiResult};

    /// `limit` (or `default`) if it is 1 to `max`, else 400.
    pub fn limit(limit: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
        let limit = limit.unwrap_or(default);
        if (1..=max).contains(&limit) {
            Ok(limit)
        } else {
            Err(ApiError::bad_request("invalid-query", format!("limit must be between 1 and {max}.")))
        }
    }

    /// The cursor parsed by `parse`, if one was given; 400 if it does not parse.
    pub fn cursor<T, E>(raw: Option<&str>, parse: impl FnOnce(&str) -> Result<T, E>) -> ApiResult<Option<T>> {
        raw.map(|c| parse(c).map_err(|_| ApiError::bad_request("invalid-query", "cursor is not valid."))).transpose()
    }

    /// Cuts a fetch of `limit + 1` items to `limit`; the next cursor is the last
    /// item's key when more remain.
    pub fn cut<T>(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        if items.len() > limit {
            items.truncate(limit);
            let next = items.last().map(key);
            (items, next)
        } else {
            (items, None)
        }
    }
}
