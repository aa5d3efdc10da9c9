//! Wire formats (requests and responses) and their OpenAPI schemas.
//!
//! DTOs are converted from domain values here so the domain never learns about
//! JSON field names or RFC 3339.

use flashcore_actors::ProductView;
use flashcore_domain::{Cart, CartLine, CartStatus, Money, Order, Timestamp};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

/// Formats a timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.as_millis()) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// Parses an RFC 3339 instant.
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let d = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let ms = d.unix_timestamp_nanos() / 1_000_000;
    u64::try_from(ms).ok().map(Timestamp::from_millis)
}

/// An amount of money in minor units.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyDto {
    /// Minor units (cents); prices are positive.
    #[schema(example = 1999, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub amount: i64,
    /// ISO 4217 code: three upper-case letters.
    #[schema(example = "EUR", pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        MoneyDto { amount: m.amount(), currency: m.currency().to_string() }
    }
}

/// A product with its live availability.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductDto {
    /// The product's SKU code, as used in `/v1/products/{sku}`.
    #[schema(example = "FLASH-SNEAKER-01")]
    pub sku: String,
    /// Display name, 1 to 200 characters.
    pub title: String,
    /// Free-form description, at most 2,000 characters; may be empty.
    pub description: String,
    /// Price of one unit now; a cart keeps the price each line was added at.
    pub price: MoneyDto,
    /// Most units one order may contain, if limited.
    pub max_per_order: Option<u32>,
    /// When the sale starts (RFC 3339), if scheduled.
    pub sale_starts_at: Option<String>,
    /// Whether it can be added to a cart now.
    pub on_sale: bool,
    /// Units free to reserve now.
    pub available: u64,
    /// Units offered in all, sold and held ones included.
    pub total: u64,
    /// Present when buyers must queue: join `POST /v1/products/{sku}/queue`
    /// and add the product with the pass it gives.
    pub waiting_room: Option<WaitingRoomDto>,
}

/// A product's waiting-room settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitingRoomDto {
    /// Passes issued per second, 1 to 100,000.
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_second: u32,
    /// How long a pass lets its cart add the product, 10 to 86,400 seconds.
    #[schema(minimum = 10, maximum = 86_400)]
    pub pass_ttl_secs: u32,
}

impl From<flashcore_actors::waiting_room::RoomConfig> for WaitingRoomDto {
    fn from(c: flashcore_actors::waiting_room::RoomConfig) -> Self {
        WaitingRoomDto { admit_per_second: c.admit_per_second, pass_ttl_secs: c.pass_ttl_secs }
    }
}

impl From<ProductView> for ProductDto {
    fn from(v: ProductView) -> Self {
        let p = &v.product;
        ProductDto {
            sku: p.sku.to_string(),
            title: p.title.clone(),
            description: p.description.clone(),
            price: p.price.into(),
            max_per_order: p.max_per_order,
            sale_starts_at: p.sale_starts_at.map(rfc3339),
            on_sale: p.on_sale(flashcore_actors::clock::now()),
            available: v.availability.available,
            total: v.availability.total,
            waiting_room: v.waiting_room.map(WaitingRoomDto::from),
        }
    }
}

/// A page of products.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    /// Products in SKU order.
    pub items: Vec<ProductDto>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One product in a cart, with the stock held for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartLineDto {
    /// SKU code of the product.
    pub sku: String,
    /// The product's title when the line was added.
    pub title: String,
    /// Units in the line, held for this cart until `hold_expires_at`.
    pub quantity: u32,
    /// Price per unit when added.
    pub unit_price: MoneyDto,
    /// `unit_price * quantity`.
    pub line_total: MoneyDto,
    /// When the stock held for this line is released unless checked out (RFC 3339).
    pub hold_expires_at: String,
}

/// A cart: its lines with their held stock, its state and its total.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartDto {
    /// The cart's id (a UUID), as used in `/v1/carts/{cart_id}`.
    pub cart_id: String,
    /// `open` or `checked_out`.
    #[schema(example = "open")]
    pub status: String,
    /// The order it became, once checked out.
    pub order_id: Option<String>,
    /// Lines in SKU order.
    pub lines: Vec<CartLineDto>,
    /// Units across all lines (not the number of lines).
    pub item_count: u64,
    /// Sum of the lines; absent when empty.
    pub total: Option<MoneyDto>,
}

impl From<&Cart> for CartDto {
    fn from(c: &Cart) -> Self {
        let (status, order_id) = match &c.status {
            CartStatus::Open => ("open", None),
            CartStatus::CheckedOut { order_id, .. } => ("checked_out", Some(order_id.to_string())),
        };
        CartDto {
            cart_id: c.id.to_string(),
            status: status.into(),
            order_id,
            lines: c
                .lines
                .values()
                .map(|l| CartLineDto {
                    sku: l.sku.to_string(),
                    title: l.title.clone(),
                    quantity: l.qty,
                    unit_price: l.unit_price.into(),
                    line_total: l.unit_price.checked_mul(l.qty).unwrap_or(l.unit_price).into(),
                    hold_expires_at: rfc3339(l.hold_expires_at),
                })
                .collect(),
            item_count: c.lines.values().map(|l| u64::from(l.qty)).sum(),
            total: c.total().ok().flatten().map(Into::into),
        }
    }
}

/// A cart as the API answers it: serialized exactly as [`CartDto`] (whose
/// schema the OpenAPI document shows), straight from the cart, without the
/// strings a `CartDto` would allocate. Every cart edit answers with one.
#[derive(Debug)]
pub struct CartBody(pub Cart);

impl Serialize for CartBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.0;
        let (status, order_id) = match &c.status {
            CartStatus::Open => ("open", None),
            CartStatus::CheckedOut { order_id, .. } => ("checked_out", Some(Shown(order_id))),
        };
        let mut m = s.serialize_struct("CartDto", 6)?;
        m.serialize_field("cart_id", &Shown(&c.id))?;
        m.serialize_field("status", status)?;
        m.serialize_field("order_id", &order_id)?;
        m.serialize_field("lines", &Lines(c))?;
        m.serialize_field("item_count", &c.lines.values().map(|l| u64::from(l.qty)).sum::<u64>())?;
        m.serialize_field("total", &c.total().ok().flatten().map(MoneyBody))?;
        m.end()
    }
}

/// A cart's lines, as [`CartLineDto`]s.
struct Lines<'a>(&'a Cart);

impl Serialize for Lines<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.lines.len()))?;
        for l in self.0.lines.values() {
            seq.serialize_element(&LineBody(l))?;
        }
        seq.end()
    }
}

/// One line, as a [`CartLineDto`].
struct LineBody<'a>(&'a CartLine);

impl Serialize for LineBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut m = s.serialize_struct("CartLineDto", 6)?;
        m.serialize_field("sku", l.sku.as_str())?;
        m.serialize_field("title", &l.title)?;
        m.serialize_field("quantity", &l.qty)?;
        m.serialize_field("unit_price", &MoneyBody(l.unit_price))?;
        m.serialize_field("line_total", &MoneyBody(l.unit_price.checked_mul(l.qty).unwrap_or(l.unit_price)))?;
        m.serialize_field("hold_expires_at", &rfc3339(l.hold_expires_at))?;
        m.end()
    }
}

/// An amount, as a [`MoneyDto`].
struct MoneyBody(Money);

impl Serialize for MoneyBody {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("MoneyDto", 2)?;
        m.serialize_field("amount", &self.0.amount())?;
        m.serialize_field("currency", &Shown(self.0.currency()))?;
        m.end()
    }
}

/// A value serialized as the string its `Display` writes, without allocating one.
struct Shown<T>(T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// A new cart and the token that grants access to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewCartDto {
    /// The new cart's id (a UUID), as used in `/v1/carts/{cart_id}`.
    pub cart_id: String,
    /// Send as `Authorization: Bearer <token>` on every call about this cart.
    pub token: String,
    /// The (empty) cart.
    pub cart: CartDto,
}

/// Body of `PUT /v1/carts/{cart_id}/items/{sku}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityBody {
    /// Units wanted, at most 1,000; 0 removes the line.
    #[schema(example = 1, minimum = 0, maximum = 1000)]
    pub quantity: u32,
}

/// The payment part of a checkout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentDto {
    /// Provider token, at most 128 characters. The built-in `test` provider:
    /// `tok_decline` is declined, `tok_error` fails, `tok_slow` is approved after
    /// 2 s, any other `tok_…` is approved, anything else is `invalid-payment-token`.
    #[schema(example = "tok_visa", min_length = 4, max_length = 128, pattern = "^tok_[!-~]*$")]
    pub token: String,
}

/// Body of `POST /v1/carts/{cart_id}/checkout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The payment to authorize for the cart's total.
    pub payment: PaymentDto,
    /// Where to send the receipt: at most 254 visible ASCII characters, one `@`,
    /// a dot inside the domain (what `valid_email` in [`crate::routes::carts`] accepts).
    #[schema(
        example = "buyer@example.com",
        max_length = 254,
        pattern = r"^[\x21-\x3f\x41-\x7e]+@[\x21-\x2d\x2f-\x3f\x41-\x7e][\x21-\x3f\x41-\x7e]*\.[\x21-\x3f\x41-\x7e]*[\x21-\x2d\x2f-\x3f\x41-\x7e]$"
    )]
    pub email: Option<String>,
}

/// One product of a placed order, at the price it was bought at.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderLineDto {
    /// SKU code of the product bought.
    pub sku: String,
    /// The product's title when it was added to the cart.
    pub title: String,
    /// Units bought.
    pub quantity: u32,
    /// Price of one unit when it was added to the cart.
    pub unit_price: MoneyDto,
    /// `unit_price * quantity`.
    pub line_total: MoneyDto,
}

/// An order placed by a checkout: paid, with its lines and total.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDto {
    /// The order's id (a UUID), as used in `/v1/orders/{order_id}`.
    pub order_id: String,
    /// The cart it came from.
    pub cart_id: String,
    /// Always `paid`: an order exists only once payment was authorized and it was journaled.
    #[schema(example = "paid")]
    pub status: String,
    /// One line per product bought, in SKU order.
    pub lines: Vec<OrderLineDto>,
    /// Sum of the lines.
    pub total: MoneyDto,
    /// Where the receipt goes, if the checkout gave an email address.
    pub email: Option<String>,
    /// The payment provider's reference.
    pub payment_ref: String,
    /// When it was placed (RFC 3339).
    pub created_at: String,
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        OrderDto {
            order_id: o.id.to_string(),
            cart_id: o.cart_id.to_string(),
            status: "paid".into(),
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineDto {
                    sku: l.sku.to_string(),
                    title: l.title.clone(),
                    quantity: l.qty,
                    unit_price: l.unit_price.into(),
                    line_total: l.line_total.into(),
                })
                .collect(),
            total: o.total.into(),
            email: o.email.clone(),
            payment_ref: o.payment_ref.clone(),
            created_at: rfc3339(o.created_at),
        }
    }
}

/// One event of the availability stream, as the OpenAPI schema of a
/// `text/event-stream` response describes each event: `event: availability`
/// and an [`AvailabilityDto`] as JSON in `data`.
#[derive(Debug)]
pub struct AvailabilityEvent;

impl utoipa::PartialSchema for AvailabilityEvent {
    fn schema() -> RefOr<Schema> {
        sse_event_schema("availability", &AvailabilityDto::name())
    }
}

/// The OpenAPI schema of one Server-Sent Event named `event` whose `data` is
/// the JSON of the component schema `dto` (the shape schemathesis checks each
/// event of a `text/event-stream` response against).
pub fn sse_event_schema(event: &str, dto: &str) -> RefOr<Schema> {
    use utoipa::openapi::{ObjectBuilder, Type};
    let data = ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .description(Some(format!("A {dto}")))
        .extensions(Some(
            [("contentSchema", serde_json::json!({ "$ref": format!("#/components/schemas/{dto}") }))]
                .into_iter()
                .collect(),
        ));
    ObjectBuilder::new()
        .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([event])))
        .required("event")
        .property("data", data)
        .required("data")
        .into()
}

impl ToSchema for AvailabilityEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((AvailabilityDto::name().into_owned(), <AvailabilityDto as utoipa::PartialSchema>::schema()));
    }
}

/// One availability update on the SSE stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityDto {
    /// SKU code of the product the update is about.
    pub sku: String,
    /// Units free to reserve.
    pub available: u64,
    /// Units offered in all, sold and held ones included.
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cart_body_is_exactly_its_cart_dto() {
        use flashcore_domain::{CartId, Currency, HoldId, OrderId, Product, Sku};
        let product = |sku: &str, amount| Product {
            sku: Sku::parse(sku).unwrap(),
            title: format!("The \"{sku}\" \u{e9}"),
            description: String::new(),
            price: Money::new(amount, Currency::EUR).unwrap(),
            max_per_order: None,
            sale_starts_at: None,
        };
        let mut cart = Cart::new(CartId::new());
        let empty = cart.clone();
        for (p, qty, at) in [(product("B-2", 250), 3, 1_764_000_000_120), (product("A-1", 1999), 1, 1_764_000_000_000)]
        {
            cart.apply_reserved(&p, qty, HoldId::new(), Timestamp::from_millis(at));
        }
        let mut done = cart.clone();
        done.mark_checked_out(OrderId::new(), "key".into());
        for c in [empty, cart, done] {
            let dto = serde_json::to_string(&CartDto::from(&c)).unwrap();
            assert_eq!(serde_json::to_string(&CartBody(c)).unwrap(), dto, "same bytes, field for field");
        }
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::from_millis(1_764_000_000_123);
        let s = rfc3339(t);
        assert_eq!(s, "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
