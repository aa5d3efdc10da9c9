//! Calls between the nodes of a cluster (DESIGN §9): work for an entity whose
//! shard another node holds goes to that node, and its answer comes back.
//!
//! Two kinds of call cross the node port:
//!
//! - **A cart's calls to a SKU elsewhere**: reserve, release, prepare, abort,
//!   commit. The SKU's one writer stays its owner's SKU actor; a cart here only
//!   sends it the messages a local cart would. A prepare answers the owner's
//!   epoch and a deadline: the order that sells the hold is journaled by the
//!   cart's node under that [`ForeignLease`], which the store accepts only
//!   while the owner still holds the shard at that epoch and before the
//!   deadline. After it (and a margin) the owner settles the prepared hold on
//!   its own, from the journal ([`crate::sku`]), so a dead or frozen cart node
//!   never strands stock.
//! - **A request the edge got for a cart elsewhere** (read, line change,
//!   checkout), a SKU's availability when no shared feed carries it (a
//!   product list asks each other node once for all of its SKUs there), and
//!   the tickets of a waiting room that streams on the caller follow.
//!
//! Every call names the shard and the epoch the caller believes the callee
//! holds it under; the callee refuses it (`Elsewhere`) unless it does, so a
//! call never lands on a node that lost the shard since the caller looked. The
//! transport ([`Peers`]) is the binary's: authenticated, on the node port,
//! bounded by a deadline.

use std::time::Duration;

use async_trait::async_trait;
use flashcore_domain::{
    Availability, Cart, CartId, CheckoutRequest, HoldId, InventoryError, Order, OrderId, Sku, StockFact, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ports::{ForeignLease, Owner, Route};
use crate::sku::StockChange;
use crate::waiting_room::{QueueError, RoomConfig, RoomControl, RoomStats, TicketView};

/// How long a hold prepared for another node's order waits for that order:
/// the order's journal write must commit before then (the store checks it),
/// so it is longer than any checkout's budget.
pub const REMOTE_PREPARE_TTL: Duration = Duration::from_secs(20);

/// After the deadline, how much longer the owner waits before it reads the
/// journal and settles the hold: covers the difference between its clock and
/// the store's.
pub const SETTLE_MARGIN: Duration = Duration::from_secs(5);

/// One call to another node: what it is about and under which lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerCall {
    /// The shard of the entity the call is about.
    pub shard: u32,
    /// The epoch the caller believes the callee holds `shard` under.
    pub epoch: u64,
    /// What to do.
    pub op: PeerOp,
}

/// One SKU of a batched call, with the lease the caller believes serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuAt {
    /// The SKU's shard.
    pub shard: u32,
    /// The epoch the caller believes the callee holds `shard` under.
    pub epoch: u64,
    /// The SKU.
    pub sku: Sku,
}

/// What a [`PeerCall`] asks the owner to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum PeerOp {
    /// A cart's hold on the owner's SKU: create or resize.
    Reserve {
        /// The SKU.
        sku: Sku,
        /// The line's hold.
        hold: HoldId,
        /// The cart the hold is for.
        cart: CartId,
        /// The line's whole quantity.
        qty: u32,
        /// When the hold lapses.
        expires_at: Timestamp,
    },
    /// Drop a hold.
    Release {
        /// The SKU.
        sku: Sku,
        /// The hold.
        hold: HoldId,
    },
    /// Prepare a cart's holds for an order (answers [`PeerAnswer::Prepared`]).
    Prepare {
        /// The SKU.
        sku: Sku,
        /// The order.
        order: OrderId,
        /// The cart whose holds they are.
        cart: CartId,
        /// The holds.
        holds: Vec<HoldId>,
    },
    /// Return an order's prepared holds.
    Abort {
        /// The SKU.
        sku: Sku,
        /// The order.
        order: OrderId,
    },
    /// The order is journaled: its facts on this SKU.
    Commit {
        /// The SKU.
        sku: Sku,
        /// Its sold facts there.
        facts: Vec<StockFact>,
    },
    /// The SKU's counts.
    Availability {
        /// The SKU.
        sku: Sku,
    },
    /// Several SKUs' counts in one call (a product list's SKUs of one node),
    /// each under its own shard's lease: the call's own shard and epoch are
    /// not checked, every entry's are (answers [`PeerAnswer::Availabilities`]).
    AvailabilityBatch {
        /// The SKUs, each with the lease the caller believes serves it.
        skus: Vec<SkuAt>,
    },
    /// A cart as it is.
    Cart {
        /// The cart.
        cart: CartId,
    },
    /// A cart's line change.
    SetQuantity {
        /// The cart.
        cart: CartId,
        /// The product.
        sku: Sku,
        /// The new quantity.
        qty: u32,
    },
    /// A cart's checkout.
    Checkout {
        /// The cart.
        cart: CartId,
        /// What the buyer sent, checked by the edge that got it.
        req: CheckoutRequest,
    },
    /// An operator's stock change of the owner's SKU (answers the counts).
    AdjustStock {
        /// The SKU.
        sku: Sku,
        /// The change.
        change: StockChange,
    },
    /// Sent to every node: a product was created or changed in the store's
    /// catalog; read it again (no shard or epoch needed: it only reads).
    CatalogChanged {
        /// The product.
        sku: Sku,
    },
    /// An operator's waiting room settings of the owner's SKU (`None`: off).
    ConfigureRoom {
        /// The SKU.
        sku: Sku,
        /// The settings.
        config: Option<RoomConfig>,
    },
    /// Sent to every node: the SKU's waiting room settings changed; read them
    /// again (cart edits through any node need a pass).
    RoomChanged {
        /// The product.
        sku: Sku,
    },
    /// A cart joins the line of the owner's SKU.
    Join {
        /// The SKU.
        sku: Sku,
        /// The cart.
        cart: CartId,
    },
    /// A cart reads its ticket.
    Ticket {
        /// The SKU.
        sku: Sku,
        /// The ticket number.
        seq: u32,
        /// The cart holding it.
        cart: CartId,
    },
    /// The tickets of the owner's room that streams on the caller's node
    /// follow, read in one call (answers [`PeerAnswer::Tickets`]).
    Tickets {
        /// The SKU.
        sku: Sku,
        /// Each ticket number with the cart holding it.
        tickets: Vec<(u32, CartId)>,
    },
    /// An operator's pause, resume or rate change of the owner's room.
    ControlRoom {
        /// The SKU.
        sku: Sku,
        /// The change.
        op: RoomControl,
    },
}

impl PeerOp {
    /// The operation's name, for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            PeerOp::Reserve { .. } => "reserve",
            PeerOp::Release { .. } => "release",
            PeerOp::Prepare { .. } => "prepare",
            PeerOp::Abort { .. } => "abort",
            PeerOp::Commit { .. } => "commit",
            PeerOp::Availability { .. } => "availability",
            PeerOp::AvailabilityBatch { .. } => "availability_batch",
            PeerOp::Cart { .. } => "cart",
            PeerOp::SetQuantity { .. } => "set_quantity",
            PeerOp::Checkout { .. } => "checkout",
            PeerOp::AdjustStock { .. } => "adjust_stock",
            PeerOp::CatalogChanged { .. } => "catalog_changed",
            PeerOp::ConfigureRoom { .. } => "configure_room",
            PeerOp::RoomChanged { .. } => "room_changed",
            PeerOp::Join { .. } => "join",
            PeerOp::Ticket { .. } => "ticket",
            PeerOp::Tickets { .. } => "tickets",
            PeerOp::ControlRoom { .. } => "control_room",
        }
    }
}

/// What the owner answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum PeerAnswer {
    /// Abort and commit: delivered.
    Done,
    /// A reserve or release by the inventory's rules (release answers the
    /// units freed).
    Inventory {
        /// The inventory's verdict.
        result: Result<u32, InventoryError>,
    },
    /// A prepare: all or nothing; when prepared, under which lease and until when.
    Prepared {
        /// The verdict, and the lease the order's write relies on.
        result: Result<ForeignLeaseWire, InventoryError>,
    },
    /// Counts.
    Availability {
        /// The SKU's counts.
        availability: Availability,
    },
    /// A cart.
    Cart {
        /// The cart after the call.
        cart: Cart,
    },
    /// Each entry's counts of an [`PeerOp::AvailabilityBatch`], in its
    /// order: `Elsewhere` for an entry whose shard this node does not hold
    /// under the entry's epoch (the caller routes it again).
    Availabilities {
        /// One verdict per entry.
        results: Vec<Result<Availability, EngineError>>,
    },
    /// Each ticket of a [`PeerOp::Tickets`], in its order.
    Tickets {
        /// One verdict per ticket.
        results: Vec<Result<TicketView, QueueError>>,
    },
    /// A waiting room's ticket, or why not.
    Ticket {
        /// The room's verdict.
        result: Result<TicketView, QueueError>,
    },
    /// A waiting room's figures, or why not.
    Room {
        /// The room's verdict.
        result: Result<RoomStats, QueueError>,
    },
    /// A checkout's order.
    Order {
        /// The order.
        order: Order,
        /// True when it replays an earlier checkout.
        replay: bool,
    },
}

/// A [`ForeignLease`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForeignLeaseWire {
    /// The shard.
    pub shard: u32,
    /// The owner's epoch.
    pub epoch: u64,
    /// The owner's node id.
    pub node: String,
    /// The owner's generation.
    pub generation: u64,
    /// The write's deadline.
    pub until: Timestamp,
}

impl From<ForeignLease> for ForeignLeaseWire {
    fn from(f: ForeignLease) -> Self {
        ForeignLeaseWire {
            shard: f.shard.get(),
            epoch: f.epoch,
            node: f.owner.node,
            generation: f.owner.generation,
            until: f.until,
        }
    }
}

impl ForeignLeaseWire {
    /// Back to a [`ForeignLease`]; `None` for a shard out of range.
    pub fn into_lease(self, shards: flashcore_domain::Shards) -> Option<ForeignLease> {
        let shard = shards.shard(self.shard)?;
        Some(ForeignLease {
            shard,
            epoch: self.epoch,
            owner: Owner { node: self.node, generation: self.generation },
            until: self.until,
        })
    }
}

/// The transport between nodes (the binary's node port client).
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Sends `call` to the node at `route` and waits at most `deadline` for the
    /// answer. A transport failure is `Unavailable`; the callee's refusal is
    /// its own [`EngineError`] (`Elsewhere` when it no longer holds the shard).
    async fn call(&self, route: &Route, call: PeerCall, deadline: Duration) -> Result<PeerAnswer, EngineError>;
}

/// Holds this node prepared for other nodes' orders, until the order's commit
/// or abort arrives, or its deadline (plus [`SETTLE_MARGIN`]) passes and this
/// node settles it from the journal.
#[derive(Debug, Default)]
pub struct RemotePrepares(std::sync::Mutex<Vec<(OrderId, Sku, Timestamp)>>);

impl RemotePrepares {
    fn with<R>(&self, f: impl FnOnce(&mut Vec<(OrderId, Sku, Timestamp)>) -> R) -> R {
        let mut guard = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// `order`'s holds on `sku` are prepared until `until`.
    pub fn add(&self, order: OrderId, sku: Sku, until: Timestamp) {
        self.with(|v| v.push((order, sku, until)));
    }

    /// `order`'s outcome on `sku` arrived.
    pub fn done(&self, order: OrderId, sku: &Sku) {
        self.with(|v| v.retain(|(o, s, _)| !(*o == order && s == sku)));
    }

    /// Takes out those whose deadline plus `margin` is before `now`.
    pub fn overdue(&self, now: Timestamp, margin: Duration) -> Vec<(OrderId, Sku, Timestamp)> {
        let margin = margin.as_millis() as u64;
        self.with(|v| {
            let (due, keep) = std::mem::take(v).into_iter().partition(|(_, _, until)| until.plus_millis(margin) < now);
            *v = keep;
            due
        })
    }

    /// Forgets those of the SKUs `pred` picks (their shard moved: the next
    /// owner settles every prepared hold it recovers).
    pub fn forget_where(&self, pred: impl Fn(&Sku) -> bool) {
        self.with(|v| v.retain(|(_, sku, _)| !pred(sku)));
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.with(|v| v.len())
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
