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

/// An entity's state as JSON text, serialized straight from the entity (never
/// through a `serde_json::Value` tree: a SKU with 40k holds is megabytes of JSON,
/// and a tree of maps for it costs several times the text).
#[derive(Debug, Clone)]
pub struct StateJson(Box<str>);

impl StateJson {
    /// Serializes `value`.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(|s| StateJson(s.into_boxed_str()))
    }

    /// Parses the state back into `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.0)
    }

    /// State as a store returned it; [`StateJson::decode`] checks it.
    pub fn from_stored(text: String) -> Self {
        StateJson(text.into_boxed_str())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Equal as JSON documents: a store may hand back the same document with other
/// whitespace or member order (a `jsonb` column does).
impl PartialEq for StateJson {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
            || matches!(
                (self.decode::<serde_json::Value>(), other.decode::<serde_json::Value>()),
                (Ok(a), Ok(b)) if a == b
            )
    }
}

impl Eq for StateJson {}

/// One entity's state at one journal position.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub state: StateJson,
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

// ---------------------------------------------------------------------------
// Edge ports: state every HTTP edge node shares (Redis in production, in-process
// fallbacks when `REDIS_URL` is unset) and the operators' API keys.
// ---------------------------------------------------------------------------

/// A response kept under an idempotency key, replayed to retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers worth replaying (content type, location, …), in order.
    pub headers: Vec<(String, String)>,
    /// The body, as sent (responses are UTF-8 JSON).
    pub body: String,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was free: the caller owns it and must `complete` or `release` it.
    Acquired,
    /// A request with this key and the same fingerprint is still running (409).
    InProgress,
    /// The key was used for a request with another fingerprint (422).
    Mismatch,
    /// The key's request finished: replay this response.
    Completed(StoredResponse),
}

/// Idempotency keys (IETF `Idempotency-Key` draft). Keys are already scoped by
/// the caller (per client); adapters add their own namespace prefix.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for a request with `fingerprint`, as `owner` (unique per
    /// attempt). A claim never completed lapses after `lock_ttl` (its node died).
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lock_ttl: std::time::Duration,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Stores the response of `owner`'s claim, kept for `ttl`. Does nothing if
    /// `owner` no longer holds the claim.
    async fn complete(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError>;
    /// Gives `owner`'s claim up (the request failed in a way a retry may fix).
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError>;
}

/// A rate: `per_second` sustained, with bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained requests per second (at least 1).
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// A rate limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Go ahead.
    Allowed,
    /// Over the limit: retry after this long.
    Limited {
        /// How long until one more request would be allowed.
        retry_after: std::time::Duration,
    },
}

/// Admission control: GCRA per key (a client, a hot SKU).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `key` under `quota`.
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, StoreError>;
}

/// What an operator API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read operator views (`GET /v1/admin/*`, any order).
    Operator,
    /// Everything an operator may, plus writes (`PUT`/`POST /v1/admin/*`).
    Admin,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An operator API key as stored: only the SHA-256 of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id (a UUID, as text).
    pub id: String,
    /// A human label ("ci", "alice").
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// SHA-256 of the full secret key.
    pub key_sha256: [u8; 32],
    /// When it was created (ms since the epoch).
    pub created_at: flashcore_domain::Timestamp,
    /// Revoked keys authenticate nothing.
    pub revoked: bool,
}

/// Operator API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key (its id and hash must be unique).
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_key(&self, key_sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key; false if there is no such key.
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError>;
}
