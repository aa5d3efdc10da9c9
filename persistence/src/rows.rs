//! Decoding stored rows into domain values, shared by the SQL adapters.
//!
//! Both adapters read ids as text (Postgres casts `uuid::text`), money as minor
//! units plus a currency code, and instants as epoch milliseconds, so one set of
//! conversions serves both. A row that does not decode is a corrupt store: it is
//! reported as a [`StoreError`], never papered over.

use flashcore_actors::ports::{EntityKind, FactCursor, SnapshotRecord, StateJson, StoreError};
use flashcore_domain::{
    CartId, Currency, HoldId, JournalPos, Money, Order, OrderId, OrderLine, Product, Sku, StockFact, StockFactKind,
    Timestamp,
};
use flashcore_http_ports::{ApiKeyRecord, Role};

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("corrupt {what} in store: {detail}"))
}

/// SQLSTATE of Postgres' `flashcore_fence` when a writer's epochs are stale.
pub const FENCED_SQLSTATE: &str = "FC409";

/// SQLSTATE of Postgres' `flashcore_fence_foreign` when another node's lease a
/// write relied on is no longer current.
pub const MOVED_SQLSTATE: &str = "FC410";

/// A `sqlx::Error` as a [`StoreError`]: the fences' refusals as
/// [`StoreError::Fenced`] and [`StoreError::Moved`], anything else as unavailable.
pub fn db(e: sqlx::Error) -> StoreError {
    match e.as_database_error().and_then(|d| d.code()).as_deref() {
        Some(FENCED_SQLSTATE) => StoreError::Fenced(e.to_string()),
        Some(MOVED_SQLSTATE) => StoreError::Moved(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// Parses a stored SKU.
pub fn sku(s: &str) -> Result<Sku, StoreError> {
    Sku::parse(s).map_err(|e| corrupt("sku", e))
}

/// Parses stored money: minor units plus ISO code; a bad code or negative amount is corruption.
pub fn money(amount: i64, currency: &str) -> Result<Money, StoreError> {
    let c = Currency::parse(currency).map_err(|e| corrupt("currency", e))?;
    Money::new(amount, c).map_err(|e| corrupt("amount", e))
}

fn uuid_id<T>(s: &str, parse: fn(&str) -> Result<T, flashcore_domain::IdError>) -> Result<T, StoreError> {
    parse(s).map_err(|e| corrupt("id", e))
}

/// Parses a stored order id.
pub fn order_id(s: &str) -> Result<OrderId, StoreError> {
    uuid_id(s, OrderId::parse)
}

/// Parses a stored milliseconds instant.
pub fn instant(ms: i64) -> Result<Timestamp, StoreError> {
    u64::try_from(ms).map(Timestamp::from_millis).map_err(|e| corrupt("timestamp", e))
}

/// Converts a count for storage.
pub fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Unavailable(format!("{n} does not fit the store")))
}

/// A `products` row.
#[derive(Debug, sqlx::FromRow)]
pub struct ProductRow {
    /// The product's SKU code, the primary key.
    pub sku: String,
    /// Display name, 1 to 200 characters (checked when read back).
    pub title: String,
    /// Free-form text, at most 2,000 characters; empty by default.
    pub description: String,
    /// Price in minor units.
    pub price_amount: i64,
    /// ISO 4217 code of `price_amount`, three upper-case letters.
    pub currency: String,
    /// Most units one order may contain; `NULL` for no limit.
    pub max_per_order: Option<i32>,
    /// Sale start, epoch ms.
    pub sale_starts_at_ms: Option<i64>,
}

impl ProductRow {
    /// Into a domain product.
    pub fn into_product(self) -> Result<Product, StoreError> {
        let max = self.max_per_order.map(|m| u32::try_from(m).map_err(|e| corrupt("max_per_order", e))).transpose()?;
        let starts = self.sale_starts_at_ms.map(instant).transpose()?;
        Product::new(
            sku(&self.sku)?,
            self.title,
            self.description,
            money(self.price_amount, &self.currency)?,
            max,
            starts,
        )
        .map_err(|e| corrupt("product", e))
    }
}

/// An `orders` row (ids as text).
#[derive(Debug, sqlx::FromRow)]
pub struct OrderRow {
    /// The order's UUID, the primary key.
    pub order_id: String,
    /// The cart it came from; unique, since a cart becomes at most one order.
    pub cart_id: String,
    /// The checkout's `Idempotency-Key`; unique, so a retried checkout is not written twice.
    pub idempotency_key: String,
    /// Total in minor units.
    pub total_amount: i64,
    /// ISO 4217 code of every amount in the order, its lines' included.
    pub currency: String,
    /// Where to send the receipt, if the client gave one.
    pub email: Option<String>,
    /// The payment provider's authorization reference.
    pub payment_ref: String,
    /// Creation, epoch ms.
    pub created_at_ms: i64,
}

/// An `order_lines` row (ids as text).
#[derive(Debug, sqlx::FromRow)]
pub struct LineRow {
    /// The SKU bought; one line per SKU per order.
    pub sku: String,
    /// The product's title when it was added to the cart.
    pub title: String,
    /// Units bought, at least 1.
    pub qty: i32,
    /// Unit price in minor units.
    pub unit_amount: i64,
    /// Line total in minor units.
    pub line_amount: i64,
    /// The hold the units came from; its `sold` fact carries the same id.
    pub hold_id: String,
}

impl OrderRow {
    /// Into a domain order with `lines`.
    pub fn into_order(self, lines: Vec<LineRow>) -> Result<Order, StoreError> {
        let currency = self.currency.clone();
        let lines = lines
            .into_iter()
            .map(|l| {
                Ok(OrderLine {
                    sku: sku(&l.sku)?,
                    title: l.title,
                    qty: u32::try_from(l.qty).map_err(|e| corrupt("qty", e))?,
                    unit_price: money(l.unit_amount, &currency)?,
                    line_total: money(l.line_amount, &currency)?,
                    hold_id: uuid_id(&l.hold_id, HoldId::parse)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Order {
            id: order_id(&self.order_id)?,
            cart_id: uuid_id(&self.cart_id, CartId::parse)?,
            lines,
            total: money(self.total_amount, &self.currency)?,
            email: self.email,
            payment_ref: self.payment_ref,
            idempotency_key: self.idempotency_key,
            created_at: instant(self.created_at_ms)?,
        })
    }
}

/// A `stock_facts` row (ids as text).
#[derive(Debug, sqlx::FromRow)]
pub struct FactRow {
    /// Journal position, assigned in commit order; unique per SKU.
    pub pos: i64,
    /// The SKU whose stock the fact changes.
    pub sku: String,
    /// `sold`, `restocked` or `total_set`.
    pub kind: String,
    /// Units sold or restocked; for `total_set`, the new total.
    pub qty: i64,
    /// Order (sold facts).
    pub order_id: Option<String>,
    /// Hold (sold facts).
    pub hold_id: Option<String>,
}

impl FactRow {
    /// Into a domain fact.
    pub fn into_fact(self) -> Result<StockFact, StoreError> {
        let qty = u64::try_from(self.qty).map_err(|e| corrupt("qty", e))?;
        let kind = match self.kind.as_str() {
            "sold" => StockFactKind::Sold {
                order: order_id(self.order_id.as_deref().unwrap_or_default())?,
                hold: uuid_id(self.hold_id.as_deref().unwrap_or_default(), HoldId::parse)?,
                qty: u32::try_from(qty).map_err(|e| corrupt("qty", e))?,
            },
            "restocked" => StockFactKind::Restocked { qty },
            "total_set" => StockFactKind::TotalSet { total: qty },
            other => return Err(corrupt("fact kind", other)),
        };
        Ok(StockFact {
            pos: JournalPos(u64::try_from(self.pos).map_err(|e| corrupt("pos", e))?),
            sku: sku(&self.sku)?,
            kind,
        })
    }
}

/// How a fact is stored: (kind, qty, order id, hold id).
pub fn fact_columns(kind: &StockFactKind) -> (&'static str, u64, Option<String>, Option<String>) {
    match kind {
        StockFactKind::Sold { order, hold, qty } => {
            ("sold", u64::from(*qty), Some(order.to_string()), Some(hold.to_string()))
        }
        StockFactKind::Restocked { qty } => ("restocked", *qty, None, None),
        StockFactKind::TotalSet { total } => ("total_set", *total, None, None),
    }
}

/// The `(pos, sku)` a page of facts starts after, as the SQL stores compare it
/// (`WHERE (pos, sku) > (?, ?)`): with no SKU, every fact after `pos` is after
/// `(pos + 1, "")`, as no SKU is empty.
pub fn fact_cursor_pos(after: &FactCursor) -> Result<i64, StoreError> {
    to_i64(if after.sku.is_some() { after.pos.0 } else { after.pos.0.saturating_add(1) })
}

/// The SKU half of [`fact_cursor_pos`]'s bound.
pub fn fact_cursor_sku(after: &FactCursor) -> &str {
    after.sku.as_ref().map_or("", Sku::as_str)
}

/// A `snapshots` row: (pos, version, state as JSON text).
pub type SnapshotRow = (i64, i64, String);

/// Into a snapshot record of entity `kind`/`id`.
pub fn snapshot(kind: EntityKind, id: &str, (pos, version, state): SnapshotRow) -> Result<SnapshotRecord, StoreError> {
    let unsigned = |n: i64| u64::try_from(n).map_err(|e| corrupt("snapshot", e));
    Ok(SnapshotRecord {
        kind,
        id: id.to_owned(),
        pos: JournalPos(unsigned(pos)?),
        version: unsigned(version)?,
        state: StateJson::from_stored(state),
    })
}

/// An `api_keys` row, with the creation instant as epoch ms and revocation as a flag
/// (each adapter converts its timestamp column in SQL, so one row type serves both).
#[derive(Debug, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Key id (text).
    pub id: String,
    /// The label given at creation, to tell keys apart.
    pub name: String,
    /// SHA-256 of the secret.
    pub key_sha256: Vec<u8>,
    /// `operator` or `admin`.
    pub role: String,
    /// Creation, epoch ms.
    pub created_at_ms: i64,
    /// Whether `revoked_at` is set.
    pub revoked: bool,
}

impl ApiKeyRow {
    /// Into a key record.
    pub fn into_record(self) -> Result<ApiKeyRecord, StoreError> {
        let key_sha256 = <[u8; 32]>::try_from(self.key_sha256.as_slice())
            .map_err(|_| corrupt("key hash", format!("{} bytes", self.key_sha256.len())))?;
        Ok(ApiKeyRecord {
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", &self.role))?,
            id: self.id,
            name: self.name,
            key_sha256,
            created_at: instant(self.created_at_ms)?,
            revoked: self.revoked,
        })
    }
}
