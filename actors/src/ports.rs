//! The ports this crate needs from the outside world. Adapters (in-process,
//! SQLite, Postgres, Redis) live in `flashcore-persistence`; one conformance suite
//! runs against each.

use async_trait::async_trait;
use flashcore_domain::{
    Availability, CartId, JournalEntry, JournalPos, Money, Order, OrderId, Product, Sku, StockFact,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// A store failed: unreachable, timed out, or refused the write. Callers treat it
/// as "try again later" (503); the cause goes to the log, not to the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

/// Outcome of one entry of an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Written at this position.
    Written(JournalPos),
    /// An order with the same idempotency key already exists; nothing written.
    DuplicateKey,
}

/// The journal: orders and stock facts, durable once `append` returns.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Appends `batch` in one transaction, assigning increasing positions in
    /// order. A duplicate idempotency key skips only its own entry. `Err` means
    /// nothing of the batch was written.
    async fn append(&self, batch: &[JournalEntry]) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Stock facts of `sku` newer than `after`, plus those of `orders` whatever
    /// their position, in position order.
    async fn stock_facts(&self, sku: &Sku, after: JournalPos, orders: &[OrderId])
    -> Result<Vec<StockFact>, StoreError>;

    /// An order by id.
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;

    /// The order a cart became, if any.
    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError>;

    /// Orders newest first, after the `before` cursor.
    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError>;
}

/// Which kind of entity a snapshot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A SKU actor's inventory.
    Sku,
    /// A cart actor's cart.
    Cart,
}

impl EntityKind {
    /// The label used in metrics and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Sku => "sku",
            EntityKind::Cart => "cart",
        }
    }
}

/// One entity's state at one journal position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// SKU or cart.
    pub kind: EntityKind,
    /// The entity id as text.
    pub id: String,
    /// The journal position this state reflects.
    pub pos: JournalPos,
    /// The writer's shard epoch, so a later multi-node mode can fence stale owners.
    pub epoch: u64,
    /// Increases with every change of the entity; a store keeps the highest, so a
    /// late retry of an older snapshot never overwrites a newer one.
    pub version: u64,
    /// The state, as JSON.
    pub state: serde_json::Value,
}

/// Latest-state snapshots written behind.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// Upserts a batch in one transaction; a record replaces the stored one only if
    /// its `version` is higher.
    async fn save(&self, batch: &[SnapshotRecord]) -> Result<(), StoreError>;
    /// The latest snapshot of one entity.
    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError>;
}

/// Product definitions.
#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// All products in SKU order after `after`, at most `limit`.
    async fn list(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<Product>, StoreError>;
    /// Creates or replaces a product.
    async fn upsert(&self, product: &Product) -> Result<(), StoreError>;
}

/// What a payment provider needs to authorize a charge.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The order being paid.
    pub order_id: OrderId,
    /// How much.
    pub amount: Money,
    /// The client's payment token.
    pub token: String,
}

/// Why a payment was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The issuer said no (HTTP 402).
    #[error("payment declined")]
    Declined,
    /// The token is not one this provider knows (HTTP 422).
    #[error("payment token not recognised")]
    InvalidToken,
    /// The provider failed (HTTP 502).
    #[error("payment provider error: {0}")]
    Provider(String),
}

/// A payment provider.
#[async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Authorizes a charge; returns the provider's reference.
    async fn authorize(&self, req: &PaymentRequest) -> Result<String, PaymentError>;
    /// Voids an authorization that will not be captured (the order was not written).
    async fn void(&self, reference: &str) -> Result<(), PaymentError>;
}

/// Where one SKU actor publishes its availability. Called after every change on
/// the hot path: must not block; adapters coalesce.
pub trait AvailabilityPublisher: Send + Sync + 'static {
    /// Publishes the latest availability.
    fn publish(&self, availability: Availability);
}

/// Fan-out of SKU availability to every reader, coalesced by the adapter.
pub trait AvailabilityFeed: Send + Sync + 'static {
    /// The publishing handle for `sku`, taken once by its actor (so publishing
    /// needs no lookup).
    fn publisher(&self, sku: &Sku) -> Box<dyn AvailabilityPublisher>;
    /// The latest availability known for `sku`, if any was published.
    fn latest(&self, sku: &Sku) -> Option<Availability>;
    /// A stream of `sku`'s availability (latest value first).
    fn subscribe(&self, sku: &Sku) -> watch::Receiver<Option<Availability>>;
}
