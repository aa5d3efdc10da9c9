//! The OpenAPI document, generated from the handlers' annotations, and the
//! routes that serve it: `/openapi.json` and the `/docs` reference page.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::{admin, carts, ops, orders, products};

/// `/openapi.json` and `/docs` (stateless: they merge into any router).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/openapi.json", get(openapi)).route("/docs", get(docs))
}

/// flashcore API v1.
#[derive(OpenApi)]
#[openapi(
    info(title = "flashcore", description = "Actor-based commerce core for flash sales."),
    paths(
        products::list_products,
        products::get_product,
        products::availability_stream,
        carts::create_cart,
        carts::get_cart,
        carts::set_item,
        carts::remove_item,
        carts::checkout,
        orders::get_order,
        admin::put_product,
        admin::change_stock,
        admin::list_orders,
        admin::actors,
        admin::journal,
        admin::cluster,
        admin::list_keys,
        admin::create_key,
        admin::revoke_key,
        ops::health,
        ops::ready,
        ops::metrics_text,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&CartTokenScheme),
    tags(
        (name = "storefront", description = "Products, carts, checkout and orders"),
        (name = "operators", description = "Catalog, stock, orders, supervision and API keys (API key: operator reads, admin writes)"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// Declares the `cart_token` and `api_key` bearer schemes.
#[derive(Debug)]
struct CartTokenScheme;

impl Modify for CartTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = openapi.components.as_mut() {
            c.add_security_scheme(
                "cart_token",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("The token returned by POST /v1/carts"))
                        .build(),
                ),
            );
            c.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "An operator API key, `fck_…` (`flashcore keys create --role admin` or FLASHCORE_ADMIN_KEY)",
                        ))
                        .build(),
                ),
            );
        }
    }
}

/// The OpenAPI 3.1 document, generated from the code.
pub async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// A self-contained API reference page rendered from `/openapi.json` (no CDN).
pub async fn docs() -> Response {
    let mut res = Html(include_str!("docs.html")).into_response();
    // The page's own inline script and style, and fetches to this origin only.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    res
}
