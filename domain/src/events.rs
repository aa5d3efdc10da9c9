//! What the journal records: orders and the per-SKU stock facts they imply.

use serde::{Deserialize, Serialize};

use crate::{HoldId, Order, OrderId, Sku};

/// A position in the journal. Positions are assigned by the journal in commit
/// order (one batch at a time), so a higher position committed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JournalPos(pub u64);

/// A durable fact about one SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockFact {
    /// Where the fact sits in the journal.
    pub pos: JournalPos,
    /// The SKU it is about.
    pub sku: Sku,
    /// The change to the SKU's counts: sold, restocked or total set.
    pub kind: StockFactKind,
}

/// The kinds of stock fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StockFactKind {
    /// Units of a hold became sold as part of an order.
    Sold {
        /// The order that bought them.
        order: OrderId,
        /// The hold they came from.
        hold: HoldId,
        /// Units moved from held to sold.
        qty: u32,
    },
    /// An operator added units.
    Restocked {
        /// Units added to the total.
        qty: u64,
    },
    /// An operator set the total number of units ever sellable.
    TotalSet {
        /// The new total; holds that no longer fit are evicted.
        total: u64,
    },
}

/// One thing to append to the journal; the journal assigns its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JournalEntry {
    /// An order with its lines; each line is also a `Sold` fact for its SKU.
    Order(Order),
    /// An operator's stock change on one SKU.
    Stock {
        /// The SKU whose stock changes.
        sku: Sku,
        /// `Restocked` or `TotalSet`.
        kind: StockFactKind,
    },
}
