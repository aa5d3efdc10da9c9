//! Pure commerce rules for flashcore.
//!
//! Everything here is deterministic and synchronous: no clocks, no I/O, no async
//! runtime. Time is passed in as a [`Timestamp`], so the same rules run in actors,
//! in recovery and in property tests. The one invariant everything else protects
//! is the no-oversell rule of [`Inventory`]: `available = total - sold - held`
//! never goes below zero.

pub mod cart;
pub mod events;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod placement;
pub mod product;
pub mod shard;
pub mod time;

pub use cart::{Cart, CartError, CartLine, CartStatus, LineChange, Lines};
pub use events::{JournalEntry, JournalPos, StockFact, StockFactKind};
pub use ids::{CartId, HoldId, IdError, OrderId, Sku};
pub use inventory::{Availability, ExpiredHold, Hold, Inventory, InventoryError, InventorySnapshot};
pub use money::{Currency, Money, MoneyError};
pub use order::{CheckoutRequest, Order, OrderLine};
pub use product::{MAX_LINE_QUANTITY, Product, ProductError};
pub use shard::{ShardId, Shards};
pub use time::Timestamp;
