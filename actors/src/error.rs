//! What an engine call can fail with.
//!
//! Its own module because both the facade ([`crate::engine`]) and the actors
//! behind it ([`crate::cart`]) produce these errors: the cart actor answers with
//! them, the engine passes them through, and neither has to import the other.

use flashcore_domain::{CartError, InventoryError, OrderId, Sku};

use crate::ports::StoreError;
use crate::registry::RegistryError;
use crate::sku::StockChangeError;

/// Everything an engine call can fail with. Each has a stable [`EngineError::code`].
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum EngineError {
    /// The catalog has no product with that SKU.
    #[error("product not found")]
    ProductNotFound,
    /// Not enough stock for the requested quantity.
    #[error("only {available} of {sku} available")]
    OutOfStock {
        /// The product that ran short.
        sku: Sku,
        /// Units that could be had (including the line's own).
        available: u64,
    },
    /// A line's hold was lost and its stock is gone.
    #[error("stock for {sku} is no longer held for this cart")]
    StockLost {
        /// The product whose hold is gone (lapsed, or refused when preparing).
        sku: Sku,
    },
    /// A cart rule refused the change.
    #[error(transparent)]
    Cart(#[from] CartError),
    /// The cart became an order already (with another idempotency key).
    #[error("cart already checked out as order {0}")]
    CartCheckedOut(OrderId),
    /// The payment issuer declined the charge (HTTP 402).
    #[error("payment declined")]
    PaymentDeclined,
    /// The payment token is not recognised.
    #[error("payment token not recognised")]
    InvalidPaymentToken,
    /// The payment provider failed.
    #[error("payment provider failed")]
    PaymentProvider(String),
    /// An operator tried to set a total below the units sold or held.
    #[error("total would be below the {committed} units sold or held")]
    TotalBelowCommitted {
        /// `sold + held`.
        committed: u64,
    },
    /// The idempotency key belongs to another cart's order.
    #[error("idempotency key already used for another order")]
    IdempotencyKeyReused,
    /// A store or actor is unavailable; try again.
    #[error("temporarily unavailable: {reason}")]
    Unavailable {
        /// The client's `Retry-After`, in seconds.
        retry_after_secs: u64,
        /// For the log, never the client.
        reason: String,
    },
    /// Cluster mode: the entity's shard is served by another node (this one
    /// does not hold its lease now).
    #[error("shard {shard} is served by another node")]
    Elsewhere {
        /// The entity's shard.
        shard: u32,
    },
    /// An actor's mailbox is full; try again.
    #[error("overloaded")]
    Overloaded {
        /// The client's `Retry-After`, in seconds.
        retry_after_secs: u64,
    },
    /// A bug or an impossible state; for the log, never the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A store failure, as "unavailable".
    pub fn store(e: StoreError) -> Self {
        EngineError::Unavailable { retry_after_secs: 1, reason: e.message().to_owned() }
    }

    /// The stable machine-readable code (the problem document's `type` suffix).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::ProductNotFound => "product-not-found",
            EngineError::OutOfStock { .. } => "out-of-stock",
            EngineError::StockLost { .. } => "stock-lost",
            EngineError::Cart(e) => match e {
                CartError::CheckedOut(_) => "cart-checked-out",
                CartError::QuantityTooLarge { .. } => "invalid-quantity",
                CartError::LimitExceeded { .. } => "limit-exceeded",
                CartError::SaleNotStarted { .. } => "sale-not-started",
                CartError::CurrencyMismatch => "currency-mismatch",
                CartError::TooManyLines => "too-many-lines",
                CartError::Empty => "cart-empty",
                CartError::Money(_) => "invalid-amount",
            },
            EngineError::CartCheckedOut(_) => "cart-checked-out",
            EngineError::PaymentDeclined => "payment-declined",
            EngineError::InvalidPaymentToken => "invalid-payment-token",
            EngineError::PaymentProvider(_) => "payment-provider-error",
            EngineError::TotalBelowCommitted { .. } => "total-below-committed",
            EngineError::IdempotencyKeyReused => "idempotency-key-reused",
            EngineError::Unavailable { .. } => "unavailable",
            EngineError::Overloaded { .. } => "overloaded",
            EngineError::Elsewhere { .. } => "shard-elsewhere",
            EngineError::Internal(_) => "internal",
        }
    }
}

impl From<RegistryError> for EngineError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Busy { .. } => EngineError::Overloaded { retry_after_secs: 1 },
            RegistryError::Quarantined { retry_after } => {
                EngineError::Unavailable { retry_after_secs: retry_after.as_secs().max(1), reason: e.to_string() }
            }
            other => EngineError::Unavailable { retry_after_secs: 1, reason: other.to_string() },
        }
    }
}

impl From<StockChangeError> for EngineError {
    fn from(e: StockChangeError) -> Self {
        match e {
            StockChangeError::Store(s) => EngineError::store(s),
            StockChangeError::Inventory(InventoryError::TotalBelowCommitted { committed, .. }) => {
                EngineError::TotalBelowCommitted { committed }
            }
            StockChangeError::Inventory(i) => EngineError::Internal(i.to_string()),
        }
    }
}
