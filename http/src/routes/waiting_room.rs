//! The waiting room (DESIGN §12): buyers join a product's line with their cart
//! token and read their ticket (or follow it as Server-Sent Events); admitted
//! tickets carry a signed pass that cart edits of that product require.
//! Operators read the rooms and pause, resume or re-rate them.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use flashcore_actors::Engine;
use flashcore_actors::ownership::Phase;
use flashcore_actors::ticket_relay::TicketFollow;
use flashcore_actors::waiting_room::{QueueError, RoomControl, RoomStats, TicketState, TicketView, check_rate};
use flashcore_domain::{CartId, Sku};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::cart_tokens::{CartTokens, PassError};
use crate::dto::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::principal::{Admin, CartBearer, Operator};
use crate::routes::products::parse_sku;
use crate::state::AppState;

/// The header carrying a pass on cart edits.
pub const PASS_HEADER: &str = "waiting-room-pass";

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/products/{sku}/queue", post(join))
        .route("/v1/products/{sku}/queue/{ticket_id}", get(get_ticket))
        .route("/v1/products/{sku}/queue/{ticket_id}/events", get(ticket_events))
        .route("/v1/admin/queues", get(list_rooms))
        .route("/v1/admin/products/{sku}/queue", get(get_room))
        .route("/v1/admin/products/{sku}/queue/pause", post(pause))
        .route("/v1/admin/products/{sku}/queue/resume", post(resume))
        .route("/v1/admin/products/{sku}/queue/rate", put(set_rate))
}

/// A waiting-room failure as a problem document.
pub fn problem(e: QueueError) -> ApiError {
    match e {
        QueueError::NoRoom => ApiError::new(
            StatusCode::CONFLICT,
            "no-waiting-room",
            "No waiting room",
            "This product has no waiting room: add it to a cart directly.",
        ),
        QueueError::SoldOut => {
            ApiError::new(StatusCode::CONFLICT, "sold-out", "Sold out", "This product is sold out; the line is closed.")
        }
        QueueError::TicketNotFound => ApiError::not_found("ticket-not-found", "No such ticket for this cart."),
        QueueError::Full => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting-room-full",
            "Waiting room full",
            "The waiting room holds as many tickets as it can.",
        )
        .retry_after(5),
        QueueError::Engine(e) => e.into(),
    }
}

/// Where buyers join `sku`'s line.
pub fn join_path(sku: &Sku) -> String {
    format!("/v1/products/{sku}/queue")
}

/// The check cart edits of a product with a waiting room pass: a valid
/// `Waiting-Room-Pass` for this cart and SKU, else 409 `waiting-room-required`
/// saying where to join. `Ok(true)` when a pass was checked (the room is then
/// told once the edit went through), `Ok(false)` for a product without a room.
pub fn require_pass(
    tokens: &CartTokens,
    engine: &Engine,
    headers: &HeaderMap,
    cart: &CartId,
    sku: &Sku,
) -> ApiResult<bool> {
    if engine.waiting_room(sku).is_none() {
        return Ok(false);
    }
    let refuse = |reason: &'static str, detail: &str| {
        ApiError::new(StatusCode::CONFLICT, "waiting-room-required", "Waiting room", detail.to_owned())
            .with("sku", sku.to_string())
            .with("join", join_path(sku))
            .with("reason", reason)
    };
    let Some(raw) = headers.get(PASS_HEADER) else {
        return Err(refuse("missing", "This product is sold through a waiting room: join the line for a pass."));
    };
    let pass = raw.to_str().map_err(|_| refuse("invalid", "The Waiting-Room-Pass is not valid."))?;
    match tokens.verify_pass(pass, cart, sku, flashcore_actors::clock::now()) {
        Ok(()) => Ok(true),
        Err(PassError::Expired) => Err(refuse("expired", "The Waiting-Room-Pass has expired: join the line again.")),
        Err(PassError::Invalid) => {
            Err(refuse("invalid", "The Waiting-Room-Pass is not valid for this cart and product."))
        }
    }
}

/// A ticket's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TicketStateDto {
    /// In line.
    Waiting,
    /// Admitted: add the product with `pass` until `pass_expires_at`.
    Admitted,
    /// The product sold out; the line is closed.
    SoldOut,
    /// Admitted, but the pass lapsed unused.
    Expired,
}

impl From<TicketState> for TicketStateDto {
    fn from(s: TicketState) -> Self {
        match s {
            TicketState::Waiting => TicketStateDto::Waiting,
            TicketState::Admitted => TicketStateDto::Admitted,
            TicketState::SoldOut => TicketStateDto::SoldOut,
            TicketState::Expired => TicketStateDto::Expired,
        }
    }
}

/// A buyer's place in a product's waiting room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TicketDto {
    /// The ticket's id, as used in `/v1/products/{sku}/queue/{ticket_id}`.
    #[schema(pattern = "^[0-9]{1,10}$")]
    pub ticket_id: String,
    /// The product.
    pub sku: String,
    /// `waiting`, `admitted`, `sold-out` or `expired`.
    pub state: TicketStateDto,
    /// 1-based place among those waiting; `null` before the start draw (everyone
    /// who joined before the sale starts is placed in random order then) and
    /// once the ticket is no longer waiting.
    #[schema(minimum = 1)]
    pub position: Option<u64>,
    /// Seconds until admission, estimated from the rate (and the sale start).
    pub estimated_wait_secs: u64,
    /// When to read the ticket again, in milliseconds (waiting tickets; `null`
    /// once it is no longer waiting): about when it may be admitted, between 0.5
    /// and 60 s, so polling keeps pace with admission. Before the sale starts it
    /// points past the start, spread over a few seconds per ticket.
    pub poll_after_ms: Option<u64>,
    /// The pass to send as `Waiting-Room-Pass` when adding the product (admitted tickets).
    pub pass: Option<String>,
    /// When the pass stops being valid (RFC 3339).
    pub pass_expires_at: Option<String>,
    /// Tickets handed out in this room so far.
    pub joined: u64,
    /// Tickets admitted so far.
    pub admitted: u64,
    /// When the sale starts (RFC 3339), if scheduled.
    pub sale_starts_at: Option<String>,
}

/// One event of a ticket's stream: `event: ticket` and a [`TicketDto`] as
/// JSON in `data`.
#[derive(Debug)]
pub struct TicketEvent;

impl utoipa::PartialSchema for TicketEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        crate::dto::sse_event_schema("ticket", &TicketDto::name())
    }
}

impl ToSchema for TicketEvent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        schemas.push((TicketDto::name().into_owned(), <TicketDto as utoipa::PartialSchema>::schema()));
        <TicketDto as ToSchema>::schemas(schemas);
    }
}

impl TicketDto {
    fn new(v: &TicketView, sku: &Sku, cart: &CartId, tokens: &CartTokens) -> Self {
        let pass = (v.state == TicketState::Admitted)
            .then_some(v.pass_expires_at)
            .flatten()
            .map(|exp| tokens.issue_pass(cart, sku, exp));
        TicketDto {
            ticket_id: v.ticket.to_string(),
            sku: sku.to_string(),
            state: v.state.into(),
            position: v.position,
            estimated_wait_secs: v.estimated_wait_secs,
            poll_after_ms: v.poll_after_ms,
            pass,
            pass_expires_at: v.pass_expires_at.map(rfc3339),
            joined: v.room.joined,
            admitted: v.room.admitted,
            sale_starts_at: v.room.sale_starts_at.map(rfc3339),
        }
    }
}

/// A room's figures for operators.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomDto {
    /// The product.
    pub sku: String,
    /// Passes issued per second.
    pub admit_per_second: u32,
    /// How long a pass lasts, in seconds.
    pub pass_ttl_secs: u32,
    /// An operator paused admission (joins still queue).
    pub paused: bool,
    /// The product sold out: admission is over.
    pub sold_out: bool,
    /// Whether the start draw happened.
    pub drawn: bool,
    /// Tickets handed out.
    pub joined: u64,
    /// Tickets admitted.
    pub admitted: u64,
    /// Tickets waiting (the queue's length).
    pub waiting: u64,
    /// When the sale starts (RFC 3339), if scheduled.
    pub sale_starts_at: Option<String>,
}

impl RoomDto {
    fn new(sku: &Sku, r: &RoomStats) -> Self {
        RoomDto {
            sku: sku.to_string(),
            admit_per_second: r.config.admit_per_second,
            pass_ttl_secs: r.config.pass_ttl_secs,
            paused: r.paused,
            sold_out: r.sold_out,
            drawn: r.drawn,
            joined: r.joined,
            admitted: r.admitted,
            waiting: r.waiting,
            sale_starts_at: r.sale_starts_at.map(rfc3339),
        }
    }
}

/// Every waiting room.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// Rooms in SKU order.
    pub items: Vec<RoomDto>,
}

/// Body of `PUT /v1/admin/products/{sku}/queue/rate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    /// Passes issued per second from now on, 1 to 100,000.
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_second: u32,
}

fn parse_ticket(raw: &str) -> ApiResult<u32> {
    let ok = !raw.is_empty() && raw.len() <= 10 && raw.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| raw.parse().ok())
        .flatten()
        .ok_or_else(|| ApiError::not_found("ticket-not-found", "No such ticket for this cart."))
}

/// Joins the product's waiting room with the cart of the token: 201 with a new
/// ticket, 200 with the cart's ticket when it joined already.
#[utoipa::path(post, path = "/v1/products/{sku}/queue", tag = "storefront", security(("cart_token" = [])),
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 201, body = TicketDto, description = "joined"),
        (status = 200, body = TicketDto, description = "this cart's ticket, from an earlier join"),
        (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (an API key)"),
        (status = 404, description = "product-not-found"),
        (status = 409, description = "no-waiting-room, sold-out"),
        (status = 503, description = "waiting-room-full")))]
pub async fn join(State(s): State<AppState>, auth: CartBearer, Path(sku): Path<String>) -> ApiResult<Response> {
    let sku = parse_sku(&sku)?;
    let engine = s.engine()?;
    let view = engine.join_queue(&sku, auth.0).await.map_err(problem)?;
    let status = if view.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(TicketDto::new(&view, &sku, &auth.0, &s.tokens))).into_response())
}

/// Reads the cart's ticket: its place, estimate and state; an admitted ticket
/// carries the pass.
#[utoipa::path(get, path = "/v1/products/{sku}/queue/{ticket_id}", tag = "storefront", security(("cart_token" = [])),
    params(("sku" = String, Path, description = "SKU code"), ("ticket_id" = String, Path, description = "Ticket id")),
    responses((status = 200, body = TicketDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (an API key)"),
        (status = 404, description = "product-not-found, ticket-not-found"),
        (status = 409, description = "no-waiting-room")))]
pub async fn get_ticket(
    State(s): State<AppState>,
    auth: CartBearer,
    Path((sku, ticket)): Path<(String, String)>,
) -> ApiResult<Json<TicketDto>> {
    let sku = parse_sku(&sku)?;
    let seq = parse_ticket(&ticket)?;
    let view = s.engine()?.queue_ticket(&sku, seq, auth.0).await.map_err(problem)?;
    Ok(Json(TicketDto::new(&view, &sku, &auth.0, &s.tokens)))
}

/// What one ticket stream follows.
struct Follow {
    ticket: TicketFollow,
    tokens: CartTokens,
    sku: Sku,
    cart: CartId,
    sent: Option<TicketDto>,
}

/// A Server-Sent Events stream of the cart's ticket: one `ticket` event now and
/// one per change (place, admission with its pass, sold out). It ends once the
/// ticket is no longer waiting.
#[utoipa::path(get, path = "/v1/products/{sku}/queue/{ticket_id}/events", tag = "storefront", security(("cart_token" = [])),
    params(("sku" = String, Path, description = "SKU code"), ("ticket_id" = String, Path, description = "Ticket id")),
    responses((status = 200, content_type = "text/event-stream", body = TicketEvent,
            description = "`event: ticket` events, each with a TicketDto as its JSON data"),
        (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (an API key)"),
        (status = 404, description = "product-not-found, ticket-not-found"),
        (status = 409, description = "no-waiting-room")))]
pub async fn ticket_events(
    State(s): State<AppState>,
    auth: CartBearer,
    Path((sku, ticket)): Path<(String, String)>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let sku = parse_sku(&sku)?;
    let seq = parse_ticket(&ticket)?;
    let ticket = s.engine()?.follow_ticket(&sku, seq, auth.0).await.map_err(problem)?;
    let follow = Follow { ticket, tokens: s.tokens.clone(), sku, cart: auth.0, sent: None };
    let stream = futures::stream::unfold(Some(follow), |state| async move {
        let mut f = state?;
        loop {
            let dto = TicketDto::new(f.ticket.view(), &f.sku, &f.cart, &f.tokens);
            if f.sent.as_ref() != Some(&dto) {
                f.sent = Some(dto.clone());
                let event = Event::default().event("ticket").json_data(&dto).unwrap_or_default();
                return Some((Ok(event), Some(f)));
            }
            if f.ticket.view().state != TicketState::Waiting {
                return None;
            }
            f.ticket.changed().await?;
        }
    });
    let mut shutdown = s.shutdown.clone();
    let mut phases = s.node.ownership().watch();
    let stream = stream.take_until(async move {
        tokio::select! {
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {}
            _ = async { phases.wait_for(|p| *p != Phase::Serving).await.is_ok() } => {}
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Every waiting room with its figures.
#[utoipa::path(get, path = "/v1/admin/queues", tag = "operators", security(("api_key" = [])),
    responses((status = 200, body = RoomList), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (a cart token)")))]
pub async fn list_rooms(State(s): State<AppState>, _op: Operator) -> ApiResult<Json<RoomList>> {
    let engine = s.engine()?;
    let mut skus = engine.rooms();
    skus.sort();
    let items = skus.iter().filter_map(|sku| engine.room_stats(sku).ok().map(|r| RoomDto::new(sku, &r))).collect();
    Ok(Json(RoomList { items }))
}

/// One product's waiting room.
#[utoipa::path(get, path = "/v1/admin/products/{sku}/queue", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 200, body = RoomDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (a cart token)"), (status = 404, description = "product-not-found"),
        (status = 409, description = "no-waiting-room")))]
pub async fn get_room(State(s): State<AppState>, _op: Operator, Path(sku): Path<String>) -> ApiResult<Json<RoomDto>> {
    let sku = parse_sku(&sku)?;
    let room = s.engine()?.room_stats(&sku).map_err(problem)?;
    Ok(Json(RoomDto::new(&sku, &room)))
}

async fn control(s: &AppState, sku: &str, op: RoomControl) -> ApiResult<Json<RoomDto>> {
    let sku = parse_sku(sku)?;
    let room = s.engine()?.control_room(&sku, op).await.map_err(problem)?;
    Ok(Json(RoomDto::new(&sku, &room)))
}

/// Stops admitting (joins still queue) until resumed.
#[utoipa::path(post, path = "/v1/admin/products/{sku}/queue/pause", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 200, body = RoomDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"),
        (status = 404, description = "product-not-found"), (status = 409, description = "no-waiting-room")))]
pub async fn pause(State(s): State<AppState>, _admin: Admin, Path(sku): Path<String>) -> ApiResult<Json<RoomDto>> {
    control(&s, &sku, RoomControl::Pause).await
}

/// Admits again at the room's rate.
#[utoipa::path(post, path = "/v1/admin/products/{sku}/queue/resume", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")),
    responses((status = 200, body = RoomDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"),
        (status = 404, description = "product-not-found"), (status = 409, description = "no-waiting-room")))]
pub async fn resume(State(s): State<AppState>, _admin: Admin, Path(sku): Path<String>) -> ApiResult<Json<RoomDto>> {
    control(&s, &sku, RoomControl::Resume).await
}

/// Changes the admission rate from now on.
#[utoipa::path(put, path = "/v1/admin/products/{sku}/queue/rate", tag = "operators", security(("api_key" = [])),
    params(("sku" = String, Path, description = "SKU code")), request_body = RateBody,
    responses((status = 200, body = RoomDto), (status = 401, description = "missing-credential"),
        (status = 403, description = "forbidden (not an admin key, or a cart token)"),
        (status = 404, description = "product-not-found"), (status = 409, description = "no-waiting-room"),
        (status = 422, description = "invalid-rate")))]
pub async fn set_rate(
    State(s): State<AppState>,
    _admin: Admin,
    Path(sku): Path<String>,
    Json(body): Json<RateBody>,
) -> ApiResult<Json<RoomDto>> {
    check_rate(body.admit_per_second).map_err(|e| ApiError::invalid("invalid-rate", format!("{e}.")))?;
    control(&s, &sku, RoomControl::Rate(body.admit_per_second)).await
}
