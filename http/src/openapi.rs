//! The OpenAPI document, generated from the handlers' annotations, and the
//! routes that serve it: `/openapi.json` and the `/docs` reference page.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, Schema, header::HeaderBuilder};

use crate::routes::{admin, carts, ops, orders, products, waiting_room};

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
        admin::dependencies,
        admin::cluster,
        admin::list_keys,
        admin::create_key,
        admin::revoke_key,
        ops::health,
        ops::ready,
        ops::metrics_text,
        waiting_room::join,
        waiting_room::get_ticket,
        waiting_room::ticket_events,
        waiting_room::list_rooms,
        waiting_room::get_room,
        waiting_room::pause,
        waiting_room::resume,
        waiting_room::set_rate,
    ),
    components(schemas(crate::error::Problem)),
    modifiers(&CartTokenScheme, &PipelineResponses),
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

/// What the handlers' annotations cannot see, because the pipeline
/// ([`crate::pipeline`]) and the extractors ([`crate::extract`]) answer it for
/// every route alike: the problems they send, the optional `Idempotency-Key` of
/// every write, and the one media type and schema of every error. The
/// annotations list only what their handler itself answers.
#[derive(Debug)]
struct PipelineResponses;

/// The header every response carries ([`crate::request_id`]).
const REQUEST_ID: &str = "x-request-id";

fn request_id_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .min_length(Some(1))
                .max_length(Some(128)),
        )
        .description(Some(
            "The request's id: the caller's own `x-request-id` when it sent 1 to 128 visible ASCII characters, \
             else one made by the server. Problem documents repeat it as `request_id`; logs carry it.",
        ))
        .build()
}

/// `Idempotency-Key`: what [`crate::idempotency::parse_key`] accepts.
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

impl Modify for PipelineResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in &mut openapi.paths.paths {
            let api = path.starts_with("/v1/");
            let ops = [
                (false, item.get.as_mut()),
                (true, item.put.as_mut()),
                (true, item.post.as_mut()),
                (true, item.delete.as_mut()),
                (false, item.patch.as_mut()),
            ];
            for (write, op) in ops {
                let Some(op) = op else { continue };
                document_pipeline(op, api, write);
                for res in op.responses.responses.values_mut() {
                    if let RefOr::T(res) = res {
                        res.headers.entry(REQUEST_ID.into()).or_insert_with(request_id_header);
                    }
                }
                for res in op.responses.responses.iter_mut().filter(|(s, _)| s.as_str() >= "400") {
                    if let (_, RefOr::T(res)) = res {
                        res.content.clear();
                        res.content.insert("application/problem+json".into(), Content::new(Some(problem())));
                    }
                }
            }
        }
    }
}

/// Adds the answers of the pipeline and the extractors to `op` (`api`: a
/// `/v1/` route; `write`: a POST, PUT or DELETE).
fn document_pipeline(op: &mut Operation, api: bool, write: bool) {
    let has = |op: &Operation, at: ParameterIn| op.parameters.iter().flatten().any(|p| p.parameter_in == at);
    for p in op.parameters.iter_mut().flatten().filter(|p| p.parameter_in == ParameterIn::Path) {
        p.schema = Some(path_schema(&p.name));
    }
    if has(op, ParameterIn::Path) {
        add(op, "400", "invalid-path (a path segment that is not UTF-8)");
    }
    if has(op, ParameterIn::Query) {
        add(op, "400", "invalid-query");
    }
    if op.request_body.is_some() {
        add(op, "400", "malformed-json, invalid-body");
        add(op, "413", "payload-too-large");
        add(op, "415", "unsupported-media-type (send application/json)");
        add(op, "422", "invalid-body (a member is missing, unknown or of the wrong type)");
    }
    if api {
        // Resolved for every /v1/ route, secured or not.
        add(op, "401", "unauthorized (an Authorization header that is not a valid credential)");
        add(op, "429", "rate-limited");
        add(op, "503", "not-ready, standby, unavailable, shard-elsewhere (cluster mode)");
    }
    if api && write {
        let params = op.parameters.get_or_insert_with(Vec::new);
        match params.iter_mut().find(|p| p.name.eq_ignore_ascii_case("idempotency-key")) {
            Some(p) => p.schema = Some(idempotency_key_schema()),
            None => params.push(idempotency_key()),
        }
        add(op, "400", "idempotency-key-invalid");
        add(op, "409", "idempotency-key-in-use");
        add(op, "413", "payload-too-large");
        add(op, "422", "idempotency-key-reused");
        add(op, "503", "idempotency-unavailable");
    }
    add(op, "500", "internal");
    add(op, "503", "timeout");
}

/// Adds `codes` to the response with `status`, creating it if needed.
fn add(op: &mut Operation, status: &str, codes: &str) {
    let res =
        op.responses.responses.entry(status.to_owned()).or_insert_with(|| RefOr::T(utoipa::openapi::Response::new("")));
    let RefOr::T(res) = res else { return };
    if res.description.contains(codes) {
        return;
    }
    if res.description.is_empty() {
        res.description = codes.to_owned();
    } else {
        res.description = format!("{}; {codes}", res.description);
    }
    let retry = matches!(status, "429" | "503") || codes.contains("in-use");
    if retry && !res.headers.contains_key("Retry-After") {
        let header =
            HeaderBuilder::new().schema(integer_schema(1)).description(Some("Seconds to wait before retrying")).build();
        res.headers.insert("Retry-After".into(), header);
    }
    if status == "401" && !res.headers.contains_key("WWW-Authenticate") {
        let header = HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String))
            .description(Some("`Bearer realm=\"flashcore\"`"))
            .build();
        res.headers.insert("WWW-Authenticate".into(), header);
    }
}

/// What the routes parse a path parameter with: a SKU ([`flashcore_domain::Sku::parse`]),
/// else an id (a UUID). Either way a value that does not parse is a 404 (or
/// 422 `invalid-sku` for the SKU of a product being created).
fn path_schema(name: &str) -> RefOr<Schema> {
    let string = utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String);
    let schema = if name == "sku" {
        string.pattern(Some(SKU_PATTERN))
    } else if name == "ticket_id" {
        string.pattern(Some("^[0-9]{1,10}$"))
    } else {
        string.format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid)))
    };
    RefOr::T(Schema::Object(schema.build()))
}

/// A SKU: 1 to 64 of `A-Z a-z 0-9 - _ .`.
pub const SKU_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

fn problem() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name("Problem"))
}

fn integer_schema(minimum: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer).minimum(Some(minimum)).build()
}

fn idempotency_key_schema() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
            .build(),
    ))
}

/// The optional `Idempotency-Key` header of a write (checkout declares it required).
fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 255 visible ASCII characters. A retry with the same key and request gets the first \
             outcome again (`Idempotent-Replayed: true`).",
        ))
        .schema(Some(idempotency_key_schema()))
        .build()
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
