//! The waiting room (DESIGN §12): one queue actor per SKU whose sale has one,
//! the only writer of that SKU's line.
//!
//! Buyers join with their cart and get a ticket. Everyone who joined before the
//! product's `sale_starts_at` is placed in random order when the sale starts
//! (a seeded shuffle, so the fastest script gains nothing); later arrivals queue
//! first-come first-served. A timer admits `admit_per_second` tickets; the edge
//! turns an admitted ticket into a signed pass for its cart and SKU. Admission
//! pauses while nothing is free to reserve and ends when the SKU is sold out
//! (every waiting ticket then reads `sold-out`).
//!
//! The line is kept compact ([`Line`]): a cart id per ticket and two `u32`
//! indexes, plus the cart → ticket map, about 50 bytes per ticket. Its state is
//! written behind as a snapshot (kind `queue`) and recovered on activation; a
//! restart loses at most the joins and admissions of one flush interval, and
//! tickets admitted again after one keep their place in line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use flashcore_domain::{CartId, Sku, Timestamp};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::catalog::CatalogCache;
use crate::clock;
use crate::error::EngineError;
use crate::flusher::{Flusher, SnapshotRequest};
use crate::gate::Ticket;
use crate::ports::{AvailabilityFeed, EntityKind, SnapshotRecord, SnapshotStore, StateJson, StoreError};
use crate::registry::RegistryError;
use crate::reply::Reply;

/// How often a room admits (and notices a sale start or a sell-out).
pub const TICK: Duration = Duration::from_millis(100);

/// Most passes a room may issue per second.
pub const MAX_ADMIT_PER_SECOND: u32 = 100_000;
/// Shortest and longest pass lifetime, in seconds.
pub const PASS_TTL_SECS: std::ops::RangeInclusive<u32> = 10..=86_400;

/// A room's settings, chosen by an admin per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomConfig {
    /// Passes issued per second (1 to [`MAX_ADMIT_PER_SECOND`]).
    pub admit_per_second: u32,
    /// How long a pass lets its cart add the product ([`PASS_TTL_SECS`]).
    pub pass_ttl_secs: u32,
}

/// Why a room setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomConfigError {
    /// The rate is outside 1 to [`MAX_ADMIT_PER_SECOND`].
    #[error("admit_per_second must be between 1 and {MAX_ADMIT_PER_SECOND}")]
    Rate,
    /// The pass lifetime is outside [`PASS_TTL_SECS`].
    #[error("pass_ttl_secs must be between 10 and 86400")]
    PassTtl,
}

impl RoomConfig {
    /// Validates a room's settings.
    pub fn new(admit_per_second: u32, pass_ttl_secs: u32) -> Result<Self, RoomConfigError> {
        check_rate(admit_per_second)?;
        if !PASS_TTL_SECS.contains(&pass_ttl_secs) {
            return Err(RoomConfigError::PassTtl);
        }
        Ok(RoomConfig { admit_per_second, pass_ttl_secs })
    }
}

/// Checks an admission rate.
pub fn check_rate(admit_per_second: u32) -> Result<(), RoomConfigError> {
    if (1..=MAX_ADMIT_PER_SECOND).contains(&admit_per_second) { Ok(()) } else { Err(RoomConfigError::Rate) }
}

// ---------------------------------------------------------------------------
// The line: pure, compact, no clock and no I/O.
// ---------------------------------------------------------------------------

/// Where a ticket stands in its [`Line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Not admitted yet; `None` before the start draw (its place is not drawn yet).
    Waiting {
        /// 1-based place among those still waiting.
        position: Option<u64>,
    },
    /// Admitted at this instant.
    Admitted {
        /// When its pass was issued.
        at: Timestamp,
    },
}

/// The tickets of one room in queue order.
///
/// Ticket numbers (`seq`) are handed out in arrival order; `order` holds them in
/// queue order (arrival order, except that the draw shuffles the pre-start
/// pool); `order[..head]` are admitted. `admissions` records, per admission
/// step, how far `head` got and when, so an admitted ticket's pass expiry is
/// known without a timestamp per ticket.
#[derive(Debug, Default, Clone)]
pub struct Line {
    carts: Vec<u128>,
    order: Vec<u32>,
    pos_of: Vec<u32>,
    by_cart: CartIndex,
    head: u32,
    admissions: Vec<(u32, u64)>,
    drawn: bool,
}

/// Cart id → ticket number: an open-addressing table of ticket numbers (4
/// bytes a slot, at most half full) that finds the cart itself in the line's
/// `carts`, instead of a map storing every 16-byte cart id a second time.
/// Cart ids are minted by the server (random), so a multiplicative hash is enough.
#[derive(Debug, Default, Clone)]
struct CartIndex {
    slots: Vec<u32>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

impl CartIndex {
    fn slot(slots: usize, cart: u128) -> usize {
        let folded = (cart as u64) ^ ((cart >> 64) as u64);
        let bits = slots.trailing_zeros();
        (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    fn get(&self, carts: &[u128], cart: u128) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::slot(self.slots.len(), cart);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                seq if carts[seq as usize] == cart => return Some(seq),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `seq` (whose cart, `carts[seq]`, is not in the index yet).
    fn insert(&mut self, carts: &[u128], seq: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            let size = (self.slots.len() * 2).max(16);
            let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
            for s in old.into_iter().filter(|s| *s != EMPTY) {
                self.place(carts, s);
            }
        }
        self.place(carts, seq);
        self.len += 1;
    }

    fn place(&mut self, carts: &[u128], seq: u32) {
        let mask = self.slots.len() - 1;
        let mut i = Self::slot(self.slots.len(), carts[seq as usize]);
        while self.slots[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = seq;
    }
}

/// A [`Line`] as stored: only what cannot be rebuilt.
#[derive(Debug, Serialize, Deserialize)]
struct StoredLine {
    carts: Vec<u128>,
    order: Vec<u32>,
    head: u32,
    admissions: Vec<(u32, u64)>,
    drawn: bool,
}

/// Why a stored line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored waiting line is inconsistent")]
pub struct CorruptLine;

impl Line {
    /// An empty line; `drawn` says whether the start draw is behind it already
    /// (a sale that has started, or has no start).
    pub fn new(drawn: bool) -> Self {
        Line { drawn, ..Line::default() }
    }

    /// Tickets ever handed out.
    pub fn len(&self) -> u64 {
        self.carts.len() as u64
    }

    /// True when nobody ever joined.
    pub fn is_empty(&self) -> bool {
        self.carts.is_empty()
    }

    /// Tickets admitted so far.
    pub fn admitted(&self) -> u64 {
        u64::from(self.head)
    }

    /// Tickets still waiting.
    pub fn waiting(&self) -> u64 {
        self.len() - self.admitted()
    }

    /// Whether the pre-start pool has been shuffled (or never needed it).
    pub fn drawn(&self) -> bool {
        self.drawn
    }

    /// `cart`'s ticket number, if it joined.
    pub fn ticket_of(&self, cart: u128) -> Option<u32> {
        self.by_cart.get(&self.carts, cart)
    }

    /// The cart that holds ticket `seq`.
    pub fn cart_of(&self, seq: u32) -> Option<u128> {
        self.carts.get(seq as usize).copied()
    }

    /// Gives `cart` a ticket at the end of the line (or in the pre-start pool
    /// before the draw); a cart that has one keeps it. Returns the ticket number
    /// and whether it is new. `None` once `u32::MAX` tickets exist.
    pub fn join(&mut self, cart: u128) -> Option<(u32, bool)> {
        if let Some(seq) = self.ticket_of(cart) {
            return Some((seq, false));
        }
        let seq = u32::try_from(self.carts.len()).ok().filter(|s| *s < u32::MAX)?;
        self.carts.push(cart);
        self.pos_of.push(seq);
        self.order.push(seq);
        self.by_cart.insert(&self.carts, seq);
        Some((seq, true))
    }

    /// The start draw: shuffles every ticket not admitted yet with an RNG seeded
    /// by `seed`, then the line is first-come first-served. Idempotent.
    pub fn draw(&mut self, seed: u64) {
        if self.drawn {
            return;
        }
        let head = self.head as usize;
        self.order[head..].shuffle(&mut StdRng::seed_from_u64(seed));
        for (i, seq) in self.order.iter().enumerate().skip(head) {
            self.pos_of[*seq as usize] = i as u32;
        }
        self.drawn = true;
    }

    /// Admits up to `n` waiting tickets at `now`; returns how many. Nothing is
    /// admitted before the draw.
    pub fn admit(&mut self, n: u64, now: Timestamp) -> u64 {
        if !self.drawn {
            return 0;
        }
        let n = n.min(self.waiting());
        if n > 0 {
            self.head += n as u32;
            self.admissions.push((self.head, now.as_millis()));
        }
        n
    }

    /// Where ticket `seq` stands.
    pub fn place(&self, seq: u32) -> Option<Place> {
        let index = *self.pos_of.get(seq as usize)?;
        if index < self.head {
            // The first admission step whose end is past the ticket admitted it.
            let step = self.admissions.partition_point(|(end, _)| *end <= index);
            let at = self.admissions.get(step).map_or(0, |(_, at)| *at);
            return Some(Place::Admitted { at: Timestamp::from_millis(at) });
        }
        let position = self.drawn.then(|| u64::from(index - self.head) + 1);
        Some(Place::Waiting { position })
    }

    /// Bytes this line holds on the heap (capacity, not length): what 1M
    /// waiting tickets cost.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.carts.capacity() * size_of::<u128>()
            + self.order.capacity() * size_of::<u32>()
            + self.pos_of.capacity() * size_of::<u32>()
            + self.by_cart.slots.capacity() * size_of::<u32>()
            + self.admissions.capacity() * size_of::<(u32, u64)>()
    }

    fn stored(&self) -> StoredLine {
        StoredLine {
            carts: self.carts.clone(),
            order: self.order.clone(),
            head: self.head,
            admissions: self.admissions.clone(),
            drawn: self.drawn,
        }
    }

    fn restore(s: StoredLine) -> Result<Self, CorruptLine> {
        let n = s.carts.len();
        if s.order.len() != n || s.head as usize > n {
            return Err(CorruptLine);
        }
        let mut pos_of = vec![u32::MAX; n];
        for (i, seq) in s.order.iter().enumerate() {
            let slot = pos_of.get_mut(*seq as usize).ok_or(CorruptLine)?;
            if *slot != u32::MAX {
                return Err(CorruptLine);
            }
            *slot = i as u32;
        }
        let mut by_cart = CartIndex::default();
        for seq in 0..n as u32 {
            if by_cart.get(&s.carts, s.carts[seq as usize]).is_some() {
                return Err(CorruptLine);
            }
            by_cart.insert(&s.carts, seq);
        }
        Ok(Line {
            carts: s.carts,
            order: s.order,
            pos_of,
            by_cart,
            head: s.head,
            admissions: s.admissions,
            drawn: s.drawn,
        })
    }
}

// ---------------------------------------------------------------------------
// What callers see.
// ---------------------------------------------------------------------------

/// A ticket's state as buyers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TicketState {
    /// In line.
    Waiting,
    /// Admitted: its pass is valid until `pass_expires_at`.
    Admitted,
    /// The SKU sold out before (or while) the ticket was admitted.
    SoldOut,
    /// Admitted, but the pass has lapsed.
    Expired,
}

/// One ticket, as its cart may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket number.
    pub ticket: u32,
    /// True when this call created it.
    pub created: bool,
    /// Where it stands.
    pub state: TicketState,
    /// 1-based place among those waiting; `None` before the start draw, and
    /// once it is no longer waiting.
    pub position: Option<u64>,
    /// Seconds until admission, estimated from the rate (and the start).
    pub estimated_wait_secs: u64,
    /// When its pass stops being valid (admitted or expired tickets).
    pub pass_expires_at: Option<Timestamp>,
    /// The room's figures at that moment (for a progress bar).
    pub room: RoomStats,
}

/// A room's figures, published on every change (the SSE streams and the
/// operator console read them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomStats {
    /// The room's settings.
    pub config: RoomConfig,
    /// An operator paused admission.
    pub paused: bool,
    /// The SKU is sold out: admission is over.
    pub sold_out: bool,
    /// Whether the start draw happened.
    pub drawn: bool,
    /// Tickets handed out.
    pub joined: u64,
    /// Tickets admitted.
    pub admitted: u64,
    /// Tickets still waiting.
    pub waiting: u64,
    /// When the sale starts, if it has a start.
    pub sale_starts_at: Option<Timestamp>,
}

/// An operator's change to a running room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomControl {
    /// Stop admitting (joins still queue).
    Pause,
    /// Admit again.
    Resume,
    /// Admit at this rate from now on.
    Rate(u32),
}

/// What a waiting-room call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The product has no waiting room.
    #[error("this product has no waiting room")]
    NoRoom,
    /// The product is sold out: nobody is admitted any more.
    #[error("sold out")]
    SoldOut,
    /// No such ticket for this cart.
    #[error("ticket not found")]
    TicketNotFound,
    /// The room holds as many tickets as it can.
    #[error("the waiting room is full")]
    Full,
    /// Anything the engine fails with (product unknown, store, overload).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<RegistryError> for QueueError {
    fn from(e: RegistryError) -> Self {
        QueueError::Engine(e.into())
    }
}

// ---------------------------------------------------------------------------
// The rooms' directory: which SKUs have a room, readable without an actor.
// ---------------------------------------------------------------------------

/// Which SKUs have a waiting room, and each room's latest figures. Cart edits
/// check it on the hot path, so it is a concurrent map, not an actor call.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: DashMap<Sku, watch::Sender<RoomStats>>,
}

impl Rooms {
    /// The settings of `sku`'s room, if it has one.
    pub fn config(&self, sku: &Sku) -> Option<RoomConfig> {
        self.rooms.get(sku).map(|r| r.borrow().config)
    }

    /// The figures of `sku`'s room as last published.
    pub fn stats(&self, sku: &Sku) -> Option<RoomStats> {
        self.rooms.get(sku).map(|r| r.borrow().clone())
    }

    /// A stream of `sku`'s room figures.
    pub fn watch(&self, sku: &Sku) -> Option<watch::Receiver<RoomStats>> {
        self.rooms.get(sku).map(|r| r.subscribe())
    }

    /// Every SKU with a room.
    pub fn skus(&self) -> Vec<Sku> {
        self.rooms.iter().map(|r| r.key().clone()).collect()
    }

    fn publish(&self, sku: &Sku, stats: Option<RoomStats>) {
        match stats {
            None => {
                self.rooms.remove(sku);
            }
            Some(stats) => match self.rooms.get(sku) {
                Some(tx) => {
                    tx.send_if_modified(|old| {
                        let changed = *old != stats;
                        *old = stats;
                        changed
                    });
                }
                None => {
                    self.rooms.insert(sku.clone(), watch::channel(stats).0);
                }
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The actor.
// ---------------------------------------------------------------------------

/// What every queue actor shares.
#[derive(Clone)]
pub struct QueueDeps {
    /// Where the line is written behind.
    pub flusher: Flusher,
    /// Where it is read back on activation.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// The SKU's counts: admission pauses at 0 available and ends at 0 left.
    pub feed: Arc<dyn AvailabilityFeed>,
    /// The product's sale start.
    pub catalog: Arc<CatalogCache>,
    /// Where each room's figures are published.
    pub rooms: Arc<Rooms>,
}

impl std::fmt::Debug for QueueDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueDeps").finish_non_exhaustive()
    }
}

/// Messages to a queue actor; those sent through the registry carry its ticket.
#[derive(Debug)]
pub enum QueueMsg {
    /// Turn the room on (or change its settings), or off (`None`); answered once stored.
    Configure { ticket: Ticket, config: Option<RoomConfig>, reply: Reply<Result<(), QueueError>> },
    /// Give a cart a ticket (or its ticket again).
    Join { ticket: Ticket, cart: CartId, reply: Reply<Result<TicketView, QueueError>> },
    /// Read a ticket, for the cart that holds it.
    Read { ticket: Ticket, seq: u32, cart: CartId, reply: Reply<Result<TicketView, QueueError>> },
    /// An operator's pause, resume or rate change.
    Control { ticket: Ticket, op: RoomControl, reply: Reply<Result<RoomStats, QueueError>> },
    /// Timer: draw at the start, admit, notice a sell-out.
    Tick,
    /// Serialize state for write-behind (marks the actor clean).
    Snapshot { reply: Reply<SnapshotRecord> },
    /// Register with the flusher now (the paced registration's timer).
    RegisterDirty,
    /// Save and stop if nobody is waiting; `Ok(false)`: it stays.
    Passivate { reply: Reply<Result<bool, String>> },
}

impl SnapshotRequest for QueueMsg {
    fn snapshot_request(reply: Reply<SnapshotRecord>) -> Self {
        QueueMsg::Snapshot { reply }
    }
}

/// A room's stored state.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRoom {
    config: Option<RoomConfig>,
    paused: bool,
    seed: u64,
    line: StoredLine,
}

/// A queue actor spends at most one part in this many of its time on snapshots.
const SNAPSHOT_PACING: u32 = 20;

/// The queue actor behaviour.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueActor;

/// A queue actor's state.
#[derive(Debug)]
pub struct QueueState {
    sku: Sku,
    deps: QueueDeps,
    config: Option<RoomConfig>,
    paused: bool,
    seed: u64,
    line: Line,
    sold_out: bool,
    /// Admissions owed by the rate but not made yet (fractions carry over).
    credit: f64,
    last_tick: Instant,
    version: u64,
    dirty: bool,
    deferred: bool,
    pace_until: Option<Instant>,
}

/// Reads a room's latest snapshot.
async fn recover(sku: &Sku, snapshots: &dyn SnapshotStore) -> Result<(StoredRoom, u64), StoreError> {
    match snapshots.load(EntityKind::Queue, sku.as_str()).await? {
        Some(rec) => {
            let room: StoredRoom = rec
                .state
                .decode()
                .map_err(|e| StoreError::Unavailable(format!("corrupt waiting room of SKU {sku}: {e}")))?;
            Ok((room, rec.version))
        }
        None => {
            Ok((StoredRoom { config: None, paused: false, seed: rand::random(), line: Line::new(false).stored() }, 0))
        }
    }
}

/// Every room stored, for start-up: SKU, settings, and whether anyone waits.
pub async fn stored_rooms(snapshots: &dyn SnapshotStore) -> Result<Vec<(Sku, RoomConfig, bool)>, StoreError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = snapshots.load_page(EntityKind::Queue, after.as_deref(), 100).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for rec in page {
            let Ok(sku) = Sku::parse(&rec.id) else { continue };
            let room: StoredRoom = rec
                .state
                .decode()
                .map_err(|e| StoreError::Unavailable(format!("corrupt waiting room of SKU {sku}: {e}")))?;
            if let Some(config) = room.config {
                let waiting = room.line.order.len() > room.line.head as usize;
                out.push((sku, config, waiting));
            }
        }
    }
    Ok(out)
}

impl QueueState {
    fn now_started(&self, now: Timestamp) -> bool {
        self.sale_starts_at().is_none_or(|s| now >= s)
    }

    fn sale_starts_at(&self) -> Option<Timestamp> {
        self.deps.catalog.get(&self.sku).and_then(|p| p.sale_starts_at)
    }

    fn stats(&self) -> Option<RoomStats> {
        let config = self.config?;
        Some(RoomStats {
            config,
            paused: self.paused,
            sold_out: self.sold_out,
            drawn: self.line.drawn(),
            joined: self.line.len(),
            admitted: self.line.admitted(),
            waiting: self.line.waiting(),
            sale_starts_at: self.sale_starts_at(),
        })
    }

    fn publish(&self) {
        self.deps.rooms.publish(&self.sku, self.stats());
    }

    fn record(&self) -> SnapshotRecord {
        let room = StoredRoom { config: self.config, paused: self.paused, seed: self.seed, line: self.line.stored() };
        SnapshotRecord {
            kind: EntityKind::Queue,
            id: self.sku.to_string(),
            pos: flashcore_domain::JournalPos(0),
            version: self.version,
            state: StateJson::encode(&room).expect("a waiting room always serializes"),
        }
    }

    fn changed(&mut self, myself: &ActorRef<QueueMsg>) {
        self.version += 1;
        self.publish();
        if !self.dirty {
            self.dirty = true;
            let now = Instant::now();
            match self.pace_until.filter(|&until| until > now) {
                Some(until) => {
                    self.deferred = true;
                    myself.send_after(until - now, || QueueMsg::RegisterDirty);
                }
                None => self.deps.flusher.mark_dirty(Box::new(myself.clone())),
            }
        }
    }

    /// Sold out: nothing left to sell, ever (a restock reopens it).
    fn check_sold_out(&mut self, now: Timestamp) -> Option<flashcore_domain::Availability> {
        let avail = self.deps.feed.latest(&self.sku);
        let sold_out = self.now_started(now) && avail.is_some_and(|a| a.total.saturating_sub(a.sold) == 0);
        if sold_out != self.sold_out {
            self.sold_out = sold_out;
            if sold_out {
                tracing::info!(sku = %self.sku, waiting = self.line.waiting(), "sold out: the waiting room closes");
            }
        }
        avail
    }

    /// One timer step: the draw once the sale starts, then the admissions the
    /// rate allows since the last step.
    fn tick(&mut self) -> bool {
        let Some(config) = self.config else { return false };
        let now = clock::now();
        let elapsed = self.last_tick.elapsed().min(Duration::from_secs(1));
        self.last_tick = Instant::now();
        let was_sold_out = self.sold_out;
        let mut changed = false;
        if self.now_started(now) && !self.line.drawn() {
            self.line.draw(self.seed);
            tracing::info!(sku = %self.sku, pool = self.line.len(), "sale started: waiting room drawn");
            changed = true;
        }
        let avail = self.check_sold_out(now);
        changed |= was_sold_out != self.sold_out;
        let free = avail.is_some_and(|a| a.available > 0);
        if self.paused || self.sold_out || !free || !self.line.drawn() {
            self.credit = 0.0;
            return changed;
        }
        self.credit += f64::from(config.admit_per_second) * elapsed.as_secs_f64();
        let due = self.credit.floor() as u64;
        let admitted = self.line.admit(due, now);
        self.credit -= admitted as f64;
        if self.line.waiting() == 0 {
            // No one to admit: the rate does not bank a burst for later arrivals.
            self.credit = self.credit.min(1.0);
        }
        changed || admitted > 0
    }

    fn view(&self, seq: u32, created: bool, now: Timestamp) -> Result<TicketView, QueueError> {
        let config = self.config.ok_or(QueueError::NoRoom)?;
        let room = self.stats().ok_or(QueueError::NoRoom)?;
        let place = self.line.place(seq).ok_or(QueueError::TicketNotFound)?;
        let rate = u64::from(config.admit_per_second);
        let view = |state, position, estimated_wait_secs, pass_expires_at| TicketView {
            ticket: seq,
            created,
            state,
            position,
            estimated_wait_secs,
            pass_expires_at,
            room: room.clone(),
        };
        Ok(match place {
            Place::Admitted { at } => {
                let expires = at.plus_millis(u64::from(config.pass_ttl_secs) * 1_000);
                let state = if now < expires { TicketState::Admitted } else { TicketState::Expired };
                view(state, None, 0, Some(expires))
            }
            Place::Waiting { .. } if self.sold_out => view(TicketState::SoldOut, None, 0, None),
            Place::Waiting { position } => {
                let to_start = self.sale_starts_at().map_or(0, |s| now.millis_until(s).div_ceil(1_000));
                // Before the draw, the expected place is the middle of the pool.
                let ahead = position.unwrap_or_else(|| self.line.waiting().div_ceil(2));
                view(TicketState::Waiting, position, to_start + ahead.div_ceil(rate), None)
            }
        })
    }

    async fn passivate(&mut self) -> Result<bool, StoreError> {
        if self.config.is_some() && self.line.waiting() > 0 && !self.sold_out {
            return Ok(false);
        }
        self.deps.flusher.save_now(&[self.record()]).await?;
        Ok(true)
    }
}

impl Actor for QueueActor {
    type Msg = QueueMsg;
    type State = QueueState;
    type Arguments = (Sku, QueueDeps);

    async fn pre_start(
        &self,
        myself: ActorRef<QueueMsg>,
        (sku, deps): Self::Arguments,
    ) -> Result<QueueState, ActorProcessingErr> {
        let (room, version) = recover(&sku, deps.snapshots.as_ref()).await?;
        let line = Line::restore(room.line).map_err(|e| format!("waiting room of SKU {sku}: {e}"))?;
        let mut state = QueueState {
            sku,
            deps,
            config: room.config,
            paused: room.paused,
            seed: room.seed,
            line,
            sold_out: false,
            credit: 0.0,
            last_tick: Instant::now(),
            version: crate::flusher::next_incarnation(version),
            dirty: false,
            deferred: false,
            pace_until: None,
        };
        state.check_sold_out(clock::now());
        state.publish();
        myself.send_interval(TICK, || QueueMsg::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<QueueMsg>,
        msg: QueueMsg,
        state: &mut QueueState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            QueueMsg::Configure { ticket: _ticket, config, reply } => {
                let was = state.config;
                state.config = config;
                if config.is_none() || was.is_none() {
                    // Off clears the line; a new room starts empty.
                    state.line = Line::new(state.now_started(clock::now()));
                    state.paused = false;
                    state.seed = rand::random();
                }
                state.version += 1;
                // Durable before the answer: the admin's change survives a crash.
                let saved = state.deps.flusher.save_now(&[state.record()]).await;
                match saved {
                    Ok(()) => {
                        state.check_sold_out(clock::now());
                        state.publish();
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        state.config = was;
                        let _ = reply.send(Err(EngineError::store(e).into()));
                    }
                }
            }
            QueueMsg::Join { ticket: _ticket, cart, reply } => {
                let now = clock::now();
                if state.config.is_none() {
                    let _ = reply.send(Err(QueueError::NoRoom));
                    return Ok(());
                }
                if state.now_started(now) && !state.line.drawn() {
                    state.line.draw(state.seed);
                }
                state.check_sold_out(now);
                let cart_key = cart.as_uuid().as_u128();
                let result = match state.line.ticket_of(cart_key) {
                    Some(seq) => state.view(seq, false, now),
                    None if state.sold_out => Err(QueueError::SoldOut),
                    None => match state.line.join(cart_key) {
                        Some((seq, _)) => {
                            state.changed(&myself);
                            state.view(seq, true, now)
                        }
                        None => Err(QueueError::Full),
                    },
                };
                let _ = reply.send(result);
            }
            QueueMsg::Read { ticket: _ticket, seq, cart, reply } => {
                let owned = state.line.cart_of(seq) == Some(cart.as_uuid().as_u128());
                let result = if owned { state.view(seq, false, clock::now()) } else { Err(QueueError::TicketNotFound) };
                let _ = reply.send(result);
            }
            QueueMsg::Control { ticket: _ticket, op, reply } => {
                let Some(config) = state.config.as_mut() else {
                    let _ = reply.send(Err(QueueError::NoRoom));
                    return Ok(());
                };
                match op {
                    RoomControl::Pause => state.paused = true,
                    RoomControl::Resume => state.paused = false,
                    RoomControl::Rate(r) => config.admit_per_second = r,
                }
                state.version += 1;
                let saved = state.deps.flusher.save_now(&[state.record()]).await;
                state.publish();
                let result = match saved {
                    Ok(()) => state.stats().ok_or(QueueError::NoRoom),
                    Err(e) => Err(EngineError::store(e).into()),
                };
                let _ = reply.send(result);
            }
            QueueMsg::Tick => {
                if state.tick() {
                    state.changed(&myself);
                }
            }
            QueueMsg::Snapshot { reply } => {
                let started = Instant::now();
                state.dirty = false;
                let _ = reply.send(state.record());
                let cost = started.elapsed();
                state.pace_until = (cost >= Duration::from_millis(1)).then(|| started + cost * (SNAPSHOT_PACING + 1));
            }
            QueueMsg::RegisterDirty => {
                if state.deferred {
                    state.deferred = false;
                    state.deps.flusher.mark_dirty(Box::new(myself.clone()));
                }
            }
            QueueMsg::Passivate { reply } => {
                let result = state.passivate().await.map_err(|e| e.to_string());
                let stopping = matches!(result, Ok(true));
                let _ = reply.send(result);
                if stopping {
                    myself.stop(Some("passivated".into()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn cart(i: u32) -> u128 {
        u128::from(i) * 7_919 + 1
    }

    #[test]
    fn a_cart_keeps_its_one_ticket() {
        let mut line = Line::new(true);
        assert_eq!(line.join(cart(1)), Some((0, true)));
        assert_eq!(line.join(cart(2)), Some((1, true)));
        assert_eq!(line.join(cart(1)), Some((0, false)));
        assert_eq!(line.len(), 2);
        assert_eq!(line.place(1), Some(Place::Waiting { position: Some(2) }));
    }

    #[test]
    fn later_arrivals_are_first_come_first_served() {
        let mut line = Line::new(true);
        for i in 0..10 {
            line.join(cart(i));
        }
        assert_eq!(line.admit(3, Timestamp::from_millis(5)), 3);
        for seq in 0..3 {
            assert_eq!(line.place(seq), Some(Place::Admitted { at: Timestamp::from_millis(5) }));
        }
        assert_eq!(line.admit(2, Timestamp::from_millis(9)), 2);
        assert_eq!(line.place(4), Some(Place::Admitted { at: Timestamp::from_millis(9) }));
        assert_eq!(line.place(5), Some(Place::Waiting { position: Some(1) }));
        assert_eq!(line.admit(100, Timestamp::from_millis(10)), 5);
        assert_eq!(line.waiting(), 0);
        assert_eq!(line.place(10), None);
    }

    #[test]
    fn nothing_is_admitted_before_the_draw() {
        let mut line = Line::new(false);
        line.join(cart(1));
        assert_eq!(line.place(0), Some(Place::Waiting { position: None }));
        assert_eq!(line.admit(5, Timestamp::EPOCH), 0);
        line.draw(1);
        assert_eq!(line.admit(5, Timestamp::EPOCH), 1);
    }

    /// 10,000 pre-start joiners end up in a random permutation: a fixed seed
    /// makes the test exact, and the checks are those a fair shuffle passes
    /// with overwhelming probability: no rank correlation with arrival order,
    /// arrival deciles spread evenly over the first tenth of the line, and few
    /// tickets left where they were.
    #[test]
    fn the_draw_is_a_fair_permutation_of_the_pre_start_pool() {
        const N: u32 = 10_000;
        let mut line = Line::new(false);
        for i in 0..N {
            line.join(cart(i));
        }
        line.draw(0x5eed_f1a5);
        let mut positions: Vec<u64> = (0..N)
            .map(|seq| match line.place(seq) {
                Some(Place::Waiting { position: Some(p) }) => p,
                other => panic!("ticket {seq}: {other:?}"),
            })
            .collect();
        // Spearman's rho between arrival and place: std dev ≈ 1/sqrt(N) = 0.01.
        let n = f64::from(N);
        let d2: f64 = positions.iter().enumerate().map(|(i, p)| (i as f64 + 1.0 - *p as f64).powi(2)).sum();
        let rho = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
        assert!(rho.abs() < 0.04, "rank correlation {rho}");
        // The first 1,000 places: about 100 from each arrival decile (binomial,
        // sd ≈ 9.5; 5 sd either way).
        let mut deciles = [0u32; 10];
        for (i, p) in positions.iter().enumerate() {
            if *p <= 1_000 {
                deciles[i * 10 / N as usize] += 1;
            }
        }
        assert!(deciles.iter().all(|d| (52..=148).contains(d)), "deciles {deciles:?}");
        // Fixed points of a random permutation: Poisson(1).
        let fixed = positions.iter().enumerate().filter(|(i, p)| *i as u64 + 1 == **p).count();
        assert!(fixed <= 8, "{fixed} tickets kept their arrival place");
        // A permutation: every place exactly once.
        positions.sort_unstable();
        assert!(positions.iter().copied().eq(1..=u64::from(N)));
        // After the draw, arrivals queue behind the pool.
        let (seq, _) = line.join(cart(N)).unwrap();
        assert_eq!(line.place(seq), Some(Place::Waiting { position: Some(u64::from(N) + 1) }));
    }

    #[test]
    fn a_stored_line_comes_back_the_same() {
        let mut line = Line::new(false);
        for i in 0..50 {
            line.join(cart(i));
        }
        line.draw(7);
        line.admit(10, Timestamp::from_millis(1_000));
        let json = serde_json::to_string(&line.stored()).unwrap();
        let back = Line::restore(serde_json::from_str(&json).unwrap()).unwrap();
        for seq in 0..50 {
            assert_eq!(back.place(seq), line.place(seq));
        }
        assert_eq!(back.ticket_of(cart(3)), Some(3));
        let bad = StoredLine { carts: vec![1, 2], order: vec![0, 0], head: 0, admissions: vec![], drawn: true };
        assert_eq!(Line::restore(bad).unwrap_err(), CorruptLine);
        let twice = StoredLine { carts: vec![1, 1], order: vec![0, 1], head: 0, admissions: vec![], drawn: true };
        assert_eq!(Line::restore(twice).unwrap_err(), CorruptLine);
    }

    /// DESIGN §12 / issue 17: at most 100 bytes per waiting ticket.
    #[test]
    fn a_million_waiting_tickets_fit_in_100_mib() {
        let mut line = Line::new(true);
        for i in 0..1_000_000u32 {
            line.join(u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1);
        }
        assert_eq!(line.ticket_of(2), None);
        for i in (0..1_000_000u32).step_by(9_973) {
            let c = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1;
            assert_eq!(line.ticket_of(c), Some(i));
        }
        let bytes = line.heap_bytes();
        eprintln!("1M tickets: {bytes} bytes ({:.1} MiB)", bytes as f64 / 1_048_576.0);
        assert!(bytes <= 100 * 1_048_576, "{bytes} bytes");
    }

    #[test]
    fn room_settings_are_validated() {
        assert!(RoomConfig::new(50, 120).is_ok());
        assert_eq!(RoomConfig::new(0, 120), Err(RoomConfigError::Rate));
        assert_eq!(RoomConfig::new(MAX_ADMIT_PER_SECOND + 1, 120), Err(RoomConfigError::Rate));
        assert_eq!(RoomConfig::new(5, 9), Err(RoomConfigError::PassTtl));
    }
}
