//! Operator routes (`/v1/admin/*`): an `operator` key reads, an `admin` key also
//! writes. Products and stock, orders, supervision, the journal, and API keys.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use flashcore_actors::sku::StockChange;
use flashcore_actors::waiting_room::RoomConfig;
use flashcore_domain::{Currency, Money, OrderId, Product};
use flashcore_http_ports::{ApiKeyRecord, ApiKeyStore, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::api_keys::new_key;
use crate::dto::{AvailabilityDto, MoneyDto, OrderDto, ProductDto, WaitingRoomDto, parse_rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::principal::{Admin, Operator};
use crate::routes::paging;
use crate::routes::products::parse_sku;
use crate::state::AppState;

/// Largest stock figure an operator may set or add in one step.
pub const MAX_STOCK_STEP: u64 = 1_000_000_000;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/products/{sku}", put(put_product))
        .route("/v1/admin/products/{sku}/stock", post(change_stock))
        .route("/v1/admin/orders", get(list_orders))
        .route("/v1/admin/actors", get(actors))
        .route("/v1/admin/journal", get(journal))
        .route("/v1/admin/dependencies", get(dependencies))
        .route("/v1/admin/cluster", get(cluster))
        .route("/v1/admin/keys", get(list_keys).post(create_key))
        .route("/v1/admin/keys/{key_id}", delete(revoke_key))
}

/// Body of `PUT /v1/admin/products/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    /// Display name, 1 to 200 characters, not all blank (the pattern: one
    /// character that is not white space, as `str::trim` reads it).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub title: String,
    /// Longer text, at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    /// Price of one unit; carts keep the price each line was added at.
    pub price: MoneyDto,
    /// Most units one order may contain, 1 to 1,000.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_per_order: Option<u32>,
    /// When the sale starts (RFC 3339, not before 1970).
    #[schema(format = DateTime, pattern = "^(19[7-9][0-9]|[2-9][0-9]{3})-")]
    pub sale_starts_at: Option<String>,
    /// Sets the total stock as well (same as `POST …/stock {"set_total": n}`), at most 1,000,000,000.
    #[schema(maximum = 1_000_000_000_u64)]
    pub total: Option<u64>,
    /// Turns the product's waiting room on with these settings (absent or
    /// `null`: off). While it is on, buyers queue and need a pass to add it.
    pub waiting_room: Option<WaitingRoomDto>,
}

/// Creates or replaces a product (and optionally sets its total stock).
#[utoipa::path(put, path = "/v1/admin/products/{sku}", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")), request_body = ProductBody,
    responses((status = 201, body = ProductDto, description = "created"), (status = 200, body = ProductDto, description = "replaced"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (not an admin key, or a cart token)"),
        (status = 409, description = "total-below-committed"),
        (status = 422, description = "invalid-sku, invalid-price, invalid-sale-start, invalid-stock, invalid-product, invalid-waiting-room")))]
pub async fn put_product(
    State(s): State<AppState>,
    _admin: Admin,
    Path(sku): Path<String>,
    Json(body): Json<ProductBody>,
) -> ApiResult<Response> {
    let sku = flashcore_domain::Sku::parse(&sku)
        .map_err(|e| ApiError::invalid("invalid-sku", format!("The SKU is not valid: {e}.")))?;
    let currency = Currency::parse(&body.price.currency)
        .map_err(|e| ApiError::invalid("invalid-price", format!("price.currency: {e}.")))?;
    if body.price.amount <= 0 {
        return Err(ApiError::invalid("invalid-price", "price.amount must be positive (minor units)."));
    }
    let price = Money::new(body.price.amount, currency)
        .map_err(|e| ApiError::invalid("invalid-price", format!("price: {e}.")))?;
    let starts =
        match body.sale_starts_at.as_deref() {
            None => None,
            Some(raw) => Some(parse_rfc3339(raw).ok_or_else(|| {
                ApiError::invalid("invalid-sale-start", "sale_starts_at must be an RFC 3339 instant.")
            })?),
        };
    if body.total.is_some_and(|t| t > MAX_STOCK_STEP) {
        return Err(ApiError::invalid("invalid-stock", format!("total must be at most {MAX_STOCK_STEP}.")));
    }
    let room = body
        .waiting_room
        .map(|w| RoomConfig::new(w.admit_per_second, w.pass_ttl_secs))
        .transpose()
        .map_err(|e| ApiError::invalid("invalid-waiting-room", format!("waiting_room: {e}.")))?;
    let product = Product::new(sku.clone(), body.title, body.description, price, body.max_per_order, starts)
        .map_err(|e| ApiError::invalid("invalid-product", e.to_string()))?;
    let engine = s.engine()?;
    let existed = engine.product(&sku).await.is_ok();
    engine.upsert_product(product).await?;
    if let Some(total) = body.total {
        engine.adjust_stock(&sku, StockChange::SetTotal(total)).await?;
    }
    engine.configure_waiting_room(&sku, room).await.map_err(crate::routes::waiting_room::problem)?;
    let view = engine.product(&sku).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(ProductDto::from(view))).into_response())
}

/// Body of `POST /v1/admin/products/{sku}/stock`: exactly one member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockBody {
    /// Units to add to the total stock.
    pub restock: Option<u64>,
    /// The new total (never below what is sold or held).
    pub set_total: Option<u64>,
}

/// `oneOf` what [`change_stock`] accepts: `{"restock": 1..}` or `{"set_total": 0..}`,
/// the other member absent or `null`. (A derived schema would allow both or neither.)
impl utoipa::PartialSchema for StockBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, SchemaFormat};
        use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
        let one = |member: &str, minimum: u64, description: &str, other: &str| {
            let count = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(minimum))
                .maximum(Some(MAX_STOCK_STEP))
                .description(Some(description));
            ObjectBuilder::new()
                .property(member, count)
                .required(member)
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
                .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        };
        OneOfBuilder::new()
            .item(one("restock", 1, "Units to add to the total stock.", "set_total"))
            .item(one("set_total", 0, "The new total (never below what is sold or held).", "restock"))
            .description(Some("Exactly one of `restock` and `set_total`."))
            .into()
    }
}

impl ToSchema for StockBody {}

/// Restocks a product or sets its total. Journaled before it is acknowledged.
#[utoipa::path(post, path = "/v1/admin/products/{sku}/stock", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")), request_body = StockBody,
    responses((status = 200, body = AvailabilityDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"), (status = 404, description = "product-not-found"),
        (status = 409, description = "total-below-committed"), (status = 422, description = "invalid-stock")))]
pub async fn change_stock(
    State(s): State<AppState>,
    _admin: Admin,
    Path(sku): Path<String>,
    Json(body): Json<StockBody>,
) -> ApiResult<Json<AvailabilityDto>> {
    let sku = parse_sku(&sku)?;
    let change = match (body.restock, body.set_total) {
        (Some(n), None) if (1..=MAX_STOCK_STEP).contains(&n) => StockChange::Restock(n),
        (None, Some(n)) if n <= MAX_STOCK_STEP => StockChange::SetTotal(n),
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::invalid(
                "invalid-stock",
                format!("restock must be 1 to {MAX_STOCK_STEP}; set_total at most {MAX_STOCK_STEP}."),
            ));
        }
        _ => return Err(ApiError::invalid("invalid-stock", "Send exactly one of restock or set_total.")),
    };
    let a = s.engine()?.adjust_stock(&sku, change).await?;
    Ok(Json(AvailabilityDto { sku: sku.to_string(), available: a.available, total: a.total }))
}

/// Paging for operator lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderParams {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500, nullable = false)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page (an order id).
    #[param(format = Uuid, nullable = false)]
    cursor: Option<String>,
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Orders on this page, newest first.
    pub items: Vec<OrderDto>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Orders, newest first.
#[utoipa::path(get, path = "/v1/admin/orders", tag = "operators", security(("api_key" = [])), params(OrderParams),
    responses((status = 200, body = OrderPage), (status = 400, description = "invalid-query (limit, cursor)"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (a cart token)")))]
pub async fn list_orders(
    State(s): State<AppState>,
    _op: Operator,
    Query(q): Query<OrderParams>,
) -> ApiResult<Json<OrderPage>> {
    let limit = paging::limit(q.limit, 50, 500)?;
    let before = paging::cursor(q.cursor.as_deref(), OrderId::parse)?;
    let orders = s.engine()?.orders(limit + 1, before).await?;
    let (orders, next_cursor) = paging::cut(orders, limit, |o| o.id.to_string());
    Ok(Json(OrderPage { items: orders.iter().map(OrderDto::from).collect(), next_cursor }))
}

/// The supervision tree: per entity kind, live actors, starts, restarts,
/// failures, quarantines, rejections and the busiest entities (mailbox depth).
#[utoipa::path(get, path = "/v1/admin/actors", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = Object, description = "per-kind supervision figures"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (a cart token)")))]
pub async fn actors(State(s): State<AppState>, _op: Operator) -> ApiResult<Json<serde_json::Value>> {
    let engine = s.engine()?;
    // A broken invariant found in the store (see `flashcore_actors::alarms`) is
    // listed here, never hidden: `oversold` SKUs sold more than their total.
    Ok(Json(json!({
        "supervisors": engine.actor_stats(10),
        "invariants": { "oversold": engine.oversold() },
    })))
}

/// Who owns the store: this node's lease state, every member's heartbeat, the
/// lease table summarized by holder (shards, epochs, expiry), and the shard map
/// (each shard's owner while its lease is unexpired, and its epoch).
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = Object, description = "membership and leases"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (a cart token)")))]
pub async fn cluster(State(s): State<AppState>, _op: Operator) -> ApiResult<Json<serde_json::Value>> {
    let engine = s.engine()?;
    let store = s.node.lease_store().ok_or_else(|| ApiError::internal("no lease store although serving"))?;
    let members = store.members().await?;
    let leases = store.leases().await?;
    let now = flashcore_actors::clock::now();
    let mut holders: std::collections::BTreeMap<String, (u64, u64, u64, u64)> = std::collections::BTreeMap::new();
    let mut free = 0;
    for l in &leases {
        match &l.owner {
            Some(o) if l.expires_at > now => {
                let e = holders.entry(o.to_string()).or_insert((0, u64::MAX, 0, u64::MAX));
                e.0 += 1;
                e.1 = e.1.min(l.epoch);
                e.2 = e.2.max(l.epoch);
                e.3 = e.3.min(now.millis_until(l.expires_at));
            }
            _ => free += 1,
        }
    }
    let holders: Vec<_> = holders
        .into_iter()
        .map(|(owner, (shards, lo, hi, expires))| {
            json!({ "owner": owner, "shards": shards, "epoch_min": lo, "epoch_max": hi, "expires_in_ms": expires })
        })
        .collect();
    let members: Vec<_> = members
        .iter()
        .map(|m| {
            json!({
                "node": m.owner.to_string(),
                "address": m.address,
                "status": m.status.as_str(),
                "heartbeat_age_ms": m.heartbeat_at.millis_until(now),
            })
        })
        .collect();
    let map: Vec<_> = leases
        .iter()
        .map(|l| {
            let live = l.expires_at > now;
            json!({
                "shard": l.shard.get(),
                "owner": l.owner.as_ref().filter(|_| live).map(ToString::to_string),
                "epoch": l.epoch,
                "expires_in_ms": live.then(|| now.millis_until(l.expires_at)),
            })
        })
        .collect();
    // Also (not in the OpenAPI text, an open object): the shards between
    // owners, released or lapsed and not taken yet (a hand-off or a take-over
    // in progress), and the holds this node prepared for other nodes' orders
    // that wait for their outcome.
    let moving: Vec<_> = leases
        .iter()
        .filter(|l| l.owner.is_none() || l.expires_at <= now)
        .map(|l| json!({ "shard": l.shard.get(), "last_epoch": l.epoch }))
        .collect();
    Ok(Json(json!({
        "this_node": s.node.ownership().view(),
        "members": members,
        "leases": { "shards": leases.len(), "held": holders, "free": free },
        "shard_map": map,
        "handoffs_in_progress": moving,
        "remote_prepares_waiting": engine.remote_prepares(),
    })))
}

/// The group-commit journal and the write-behind flusher: queue depth, batch
/// sizes, commit and flush times, errors.
#[utoipa::path(get, path = "/v1/admin/journal", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = Object, description = "journal and write-behind figures"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (a cart token)")))]
pub async fn journal(State(s): State<AppState>, _op: Operator) -> ApiResult<Json<serde_json::Value>> {
    let engine = s.engine()?;
    Ok(Json(json!({ "journal": engine.journal_stats(), "write_behind": engine.flush_stats() })))
}

/// The external dependencies' circuit breakers (store, payments, Redis: state,
/// consecutive failures, next probe, transitions, refusals, last error) and the
/// payment authorizations not voided though their order failed.
#[utoipa::path(get, path = "/v1/admin/dependencies", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = Object, description = "circuit breakers and unvoided authorizations"),
        (status = 401, description = "missing-credential"), (status = 403, description = "forbidden (a cart token)"),
        (status = 503, description = "standby or recovering")))]
pub async fn dependencies(State(s): State<AppState>, _op: Operator) -> ApiResult<Json<serde_json::Value>> {
    let engine = s.engine()?;
    Ok(Json(json!({
        "dependencies": flashcore_actors::breaker::all(),
        "unvoided_authorizations": engine.unvoided_authorizations(),
    })))
}

/// An API key as listed (never the secret, never its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    /// The key's id (a UUID), as used in `/v1/admin/keys/{key_id}`.
    pub id: String,
    /// The label given when the key was created.
    pub name: String,
    /// `operator` or `admin`.
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
    /// Revoked keys authenticate nothing.
    pub revoked: bool,
}

/// Body of `POST /v1/admin/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// A label, 1 to 100 characters, not all blank (leading and trailing blanks are trimmed).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    pub name: String,
    /// `operator` or `admin`.
    #[schema(schema_with = role_schema)]
    pub role: String,
}

/// What `Role::parse` accepts.
fn role_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["operator", "admin"]))
        .description(Some("`operator` or `admin`."))
        .build()
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKeyDto {
    /// The key as listed.
    #[serde(flatten)]
    pub key: KeyDto,
    /// The secret, `fck_…`: send it as `Authorization: Bearer <secret>`. Not retrievable later.
    pub secret: String,
}

fn key_store(s: &AppState) -> ApiResult<&std::sync::Arc<dyn ApiKeyStore>> {
    s.engine()?;
    s.keys.store().ok_or_else(|| ApiError::internal("the key store is not open although the engine is"))
}

fn key_dto(k: ApiKeyRecord) -> KeyDto {
    KeyDto {
        id: k.id,
        name: k.name,
        role: k.role.as_str().into(),
        created_at: crate::dto::rfc3339(k.created_at),
        revoked: k.revoked,
    }
}

/// Every API key, oldest first.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = [KeyDto]), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)")))]
pub async fn list_keys(State(s): State<AppState>, _admin: Admin) -> ApiResult<Json<Vec<KeyDto>>> {
    let keys = key_store(&s)?.list_keys().await?;
    Ok(Json(keys.into_iter().map(key_dto).collect()))
}

/// Creates an API key and shows its secret once.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "operators", security(("api_key" = [])),
    request_body = NewKeyBody,
    responses((status = 201, body = NewKeyDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"), (status = 422, description = "invalid-name, invalid-role")))]
pub async fn create_key(State(s): State<AppState>, admin: Admin, Json(body): Json<NewKeyBody>) -> ApiResult<Response> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("invalid-name", "name must be 1 to 100 characters."));
    }
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid("invalid-role", "role must be `operator` or `admin`."))?;
    let (secret, record) = new_key(name, role);
    key_store(&s)?.insert_key(&record).await?;
    tracing::info!(target: "flashcore::security", event = "key.created", key_id = %record.id, role = role.as_str(), by = %admin.key_id, "API key created");
    let mut res = (StatusCode::CREATED, Json(NewKeyDto { key: key_dto(record), secret })).into_response();
    // The secret must not be kept in the idempotency store.
    res.extensions_mut().insert(crate::idempotency::NotReplayable);
    Ok(res)
}

/// Revokes an API key (effective on every node within the key cache's lifetime).
#[utoipa::path(delete, path = "/v1/admin/keys/{key_id}", tag = "operators", security(("api_key" = [])),
    params(("key_id" = String, Path, description = "Key id")),
    responses((status = 204, description = "revoked"), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"), (status = 404, description = "key-not-found")))]
pub async fn revoke_key(State(s): State<AppState>, admin: Admin, Path(key_id): Path<String>) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found("key-not-found", "No API key with that id.");
    if uuid::Uuid::parse_str(&key_id).is_err() {
        return Err(not_found());
    }
    if !key_store(&s)?.revoke_key(&key_id).await? {
        return Err(not_found());
    }
    s.keys.forget();
    tracing::info!(target: "flashcore::security", event = "key.revoked", key_id = %key_id, by = %admin.key_id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
