//! `GET /v1/products`, `GET /v1/products/{sku}`, and the availability SSE stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures::Stream;
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::WatchStream;
use utoipa::IntoParams;

use crate::dto::{AvailabilityDto, ProductDto, ProductPage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::paging;
use crate::state::AppState;
use flashcore_actors::ownership::Phase;
use flashcore_domain::Sku;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products", get(list_products))
        .route("/v1/products/{sku}", get(get_product))
        .route("/v1/products/{sku}/availability", get(availability_stream))
}

/// Parses a SKU from the path; a malformed one cannot exist, so 404.
pub fn parse_sku(raw: &str) -> ApiResult<Sku> {
    Sku::parse(raw).map_err(|_| ApiError::not_found("product-not-found", "No product with that SKU."))
}

/// Query parameters of `GET /v1/products`: page size and cursor.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, nullable = false)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page (a SKU).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$", nullable = false)]
    cursor: Option<String>,
}

/// Lists products in SKU order with their availability.
#[utoipa::path(get, path = "/v1/products", tag = "storefront", params(PageParams),
    responses((status = 200, body = ProductPage), (status = 400, description = "invalid-query (limit, cursor)")))]
pub async fn list_products(State(s): State<AppState>, Query(q): Query<PageParams>) -> ApiResult<Json<ProductPage>> {
    let limit = paging::limit(q.limit, 20, 100)?;
    let after = paging::cursor(q.cursor.as_deref(), Sku::parse)?;
    let items = s.engine()?.products(limit + 1, after.as_ref()).await?;
    let (items, next_cursor) = paging::cut(items, limit, |p| p.product.sku.to_string());
    let items = items.into_iter().map(ProductDto::from).collect();
    Ok(Json(ProductPage { items, next_cursor }))
}

/// One product with its availability.
#[utoipa::path(get, path = "/v1/products/{sku}", tag = "storefront",
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 200, body = ProductDto), (status = 404, description = "product-not-found")))]
pub async fn get_product(State(s): State<AppState>, Path(sku): Path<String>) -> ApiResult<Json<ProductDto>> {
    let sku = parse_sku(&sku)?;
    Ok(Json(s.engine()?.product(&sku).await?.into()))
}

/// A Server-Sent Events stream of the product's availability: one `availability`
/// event now and one per change (coalesced: a slow reader sees the latest value).
#[utoipa::path(get, path = "/v1/products/{sku}/availability", tag = "storefront",
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 200, content_type = "text/event-stream", body = crate::dto::AvailabilityEvent,
        description = "`event: availability` events, each with an AvailabilityDto as its JSON data"),
        (status = 404, description = "product-not-found")))]
pub async fn availability_stream(
    State(s): State<AppState>,
    Path(sku): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let sku = parse_sku(&sku)?;
    let rx = s.engine()?.subscribe(&sku).await?;
    let mut shutdown = s.shutdown.clone();
    let mut phases = s.node.ownership().watch();
    let name = sku.to_string();
    let stream = WatchStream::new(rx)
        .filter_map(move |a| {
            let name = name.clone();
            async move {
                let a = a?;
                let dto = AvailabilityDto { sku: name, available: a.available, total: a.total };
                Some(Ok(Event::default().event("availability").json_data(dto).unwrap_or_default()))
            }
        })
        // Ends at shutdown, and the moment this node stops serving (its feed is
        // no longer the truth): the client reconnects to the owner.
        .take_until(async move {
            tokio::select! {
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {}
                _ = async { phases.wait_for(|p| *p != Phase::Serving).await.is_ok() } => {}
            }
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
