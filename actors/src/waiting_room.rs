//! The waiting room (DESIGN §12): one queue actor per SKU whose sale has one,
//! the only writer of that SKU's line.
//!
//! Buyers join with their cart and get a ticket. Everyone who joined before the
//! product's `sale_starts_at` is placed in random order when the sale starts
//! (a seeded shuffle, so the fastest script gains nothing); later arrivals queue
//! first-come first-served. A timer admits `admit_per_second` tickets; the edge
//! turns an admitted ticket into a signed pass for its cart and SKU. Admission
//! never leaves more unused valid passes than free units (so an admitted buyer
//! finds stock; a cart edit with a pass tells the room it was used), and ends
//! when the SKU is sold out (every waiting ticket then reads `sold-out`).
//!
//! The line is kept compact ([`Line`]): a cart id per ticket and two `u32`
//! indexes, plus the cart → ticket map, about 32 bytes per ticket. Its state is
//! written behind as a snapshot (kind `queue`) and recovered on activation; a
//! restart loses at most the joins and admissions of one flush interval, and
//! tickets admitted again after one keep their place in line. Ticket reads are
//! answered from the line as the actor last published it ([`Rooms::ticket`]),
//! not by the actor, and tell pollers when to come back ([`poll_after_ms`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
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

mod chunked;
use chunked::Chunked;

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
    /// How long a pass lasts, in milliseconds.
    pub fn pass_ttl_ms(&self) -> u64 {
        u64::from(self.pass_ttl_secs) * 1_000
    }

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
/// pool); `order[..head]` are admitted. What ticket reads need is kept apart in
/// [`Tickets`], which the queue actor publishes. `redeemed` holds the line
/// indexes of admitted tickets whose pass has reserved the product (only those
/// whose pass is still valid are kept): the other valid passes are claims on
/// free units that admission leaves room for.
#[derive(Debug, Default, Clone)]
pub struct Line {
    tickets: Tickets,
    order: Vec<u32>,
    by_cart: CartIndex,
    redeemed: BTreeSet<u32>,
}

/// The part of a [`Line`] that answers ticket reads: each ticket's cart and
/// place, how far admission got, and when. Clones share its chunks, so the
/// queue actor publishes one per tick and reads need no call to the actor.
///
/// `admissions` records, per admission step, how far `head` got and when, so an
/// admitted ticket's pass expiry is known without a timestamp per ticket.
#[derive(Debug, Default, Clone)]
pub struct Tickets {
    carts: Chunked<u128>,
    pos_of: Chunked<u32>,
    admissions: Chunked<(u32, u64)>,
    head: u32,
    drawn: bool,
}

impl Tickets {
    /// Tickets ever handed out.
    pub fn len(&self) -> u64 {
        self.carts.len() as u64
    }

    /// True when nobody ever joined.
    pub fn is_empty(&self) -> bool {
        self.carts.len() == 0
    }

    /// Tickets admitted so far.
    pub fn admitted(&self) -> u64 {
        u64::from(self.head)
    }

    /// Tickets still waiting.
    pub fn waiting(&self) -> u64 {
        self.len() - self.admitted()
    }

    /// The cart that holds ticket `seq`.
    pub fn cart_of(&self, seq: u32) -> Option<u128> {
        self.carts.get(seq as usize)
    }

    /// Where ticket `seq` stands.
    pub fn place(&self, seq: u32) -> Option<Place> {
        let index = self.pos_of.get(seq as usize)?;
        if index < self.head {
            // The first admission step whose end is past the ticket admitted it.
            let step = self.admissions.partition_point(|(end, _)| *end <= index);
            let at = self.admissions.get(step).map_or(0, |(_, at)| at);
            return Some(Place::Admitted { at: Timestamp::from_millis(at) });
        }
        let position = self.drawn.then(|| u64::from(index - self.head) + 1);
        Some(Place::Waiting { position })
    }

    /// The first line index whose pass is still valid at `now`, passes lasting
    /// `ttl_ms`: admission steps are in time order, so the lapsed ones are a prefix.
    fn live_from(&self, now: Timestamp, ttl_ms: u64) -> u32 {
        let lapsed = self.admissions.partition_point(|(_, at)| at.saturating_add(ttl_ms) <= now.as_millis());
        lapsed.checked_sub(1).and_then(|step| self.admissions.get(step)).map_or(0, |(end, _)| end)
    }
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

    fn get(&self, carts: &Chunked<u128>, cart: u128) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::slot(self.slots.len(), cart);
        loop {
            match self.slots[i] {
                EMPTY => return None,
                seq if carts.get(seq as usize) == Some(cart) => return Some(seq),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `seq` (whose cart, `carts[seq]`, is not in the index yet).
    fn insert(&mut self, carts: &Chunked<u128>, seq: u32) {
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

    fn place(&mut self, carts: &Chunked<u128>, seq: u32) {
        let mask = self.slots.len() - 1;
        let cart = carts.get(seq as usize).expect("an indexed ticket has a cart");
        let mut i = Self::slot(self.slots.len(), cart);
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
    /// Line indexes of admitted tickets whose pass was used (absent in lines
    /// stored before passes were tracked: a restart then counts them unused,
    /// which admits less, never more).
    #[serde(default)]
    redeemed: Vec<u32>,
}

/// Why a stored line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored waiting line is inconsistent")]
pub struct CorruptLine;

impl Line {
    /// An empty line; `drawn` says whether the start draw is behind it already
    /// (a sale that has started, or has no start).
    pub fn new(drawn: bool) -> Self {
        Line { tickets: Tickets { drawn, ..Tickets::default() }, ..Line::default() }
    }

    /// What ticket reads need (clone it to publish it).
    pub fn tickets(&self) -> &Tickets {
        &self.tickets
    }

    /// Tickets ever handed out.
    pub fn len(&self) -> u64 {
        self.tickets.len()
    }

    /// True when nobody ever joined.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// Tickets admitted so far.
    pub fn admitted(&self) -> u64 {
        self.tickets.admitted()
    }

    /// Tickets still waiting.
    pub fn waiting(&self) -> u64 {
        self.tickets.waiting()
    }

    /// Whether the pre-start pool has been shuffled (or never needed it).
    pub fn drawn(&self) -> bool {
        self.tickets.drawn
    }

    /// `cart`'s ticket number, if it joined.
    pub fn ticket_of(&self, cart: u128) -> Option<u32> {
        self.by_cart.get(&self.tickets.carts, cart)
    }

    /// The cart that holds ticket `seq`.
    pub fn cart_of(&self, seq: u32) -> Option<u128> {
        self.tickets.cart_of(seq)
    }

    /// Where ticket `seq` stands.
    pub fn place(&self, seq: u32) -> Option<Place> {
        self.tickets.place(seq)
    }

    /// Gives `cart` a ticket at the end of the line (or in the pre-start pool
    /// before the draw); a cart that has one keeps it. Returns the ticket number
    /// and whether it is new. `None` once `u32::MAX` tickets exist.
    pub fn join(&mut self, cart: u128) -> Option<(u32, bool)> {
        if let Some(seq) = self.ticket_of(cart) {
            return Some((seq, false));
        }
        let t = &mut self.tickets;
        let seq = u32::try_from(t.carts.len()).ok().filter(|s| *s < u32::MAX)?;
        t.carts.push(cart);
        t.pos_of.push(seq);
        self.order.push(seq);
        self.by_cart.insert(&t.carts, seq);
        Some((seq, true))
    }

    /// The start draw: shuffles every ticket not admitted yet with an RNG seeded
    /// by `seed`, then the line is first-come first-served. Idempotent.
    pub fn draw(&mut self, seed: u64) {
        let t = &mut self.tickets;
        if t.drawn {
            return;
        }
        let head = t.head as usize;
        self.order[head..].shuffle(&mut StdRng::seed_from_u64(seed));
        for (i, seq) in self.order.iter().enumerate().skip(head) {
            t.pos_of.set(*seq as usize, i as u32);
        }
        t.drawn = true;
    }

    /// Admits up to `n` waiting tickets at `now`; returns how many. Nothing is
    /// admitted before the draw.
    pub fn admit(&mut self, n: u64, now: Timestamp) -> u64 {
        if !self.drawn() {
            return 0;
        }
        let n = n.min(self.waiting());
        if n > 0 {
            let t = &mut self.tickets;
            t.head += n as u32;
            t.admissions.push((t.head, now.as_millis()));
        }
        n
    }

    /// Passes valid at `now` whose cart has not used them yet: each may still
    /// claim a free unit.
    pub fn outstanding(&self, now: Timestamp, ttl_ms: u64) -> u64 {
        let from = self.tickets.live_from(now, ttl_ms);
        u64::from(self.tickets.head - from) - self.redeemed.range(from..).count() as u64
    }

    /// Records that ticket `seq`'s pass reserved the product, so it claims no
    /// free unit any more. False when the ticket is not admitted, its pass has
    /// lapsed, or it was recorded already.
    pub fn redeem(&mut self, seq: u32, now: Timestamp, ttl_ms: u64) -> bool {
        let Some(index) = self.tickets.pos_of.get(seq as usize) else { return false };
        index < self.tickets.head && index >= self.tickets.live_from(now, ttl_ms) && self.redeemed.insert(index)
    }

    /// Admits up to `due` waiting tickets at `now`, but never so many that the
    /// unused valid passes outnumber the `free` units (available, not held):
    /// an admitted buyer finds stock. More are admitted as holds are released
    /// (`free` grows) or unused passes lapse. Returns how many.
    pub fn admit_within(&mut self, due: u64, free: u64, now: Timestamp, ttl_ms: u64) -> u64 {
        let from = self.tickets.live_from(now, ttl_ms);
        self.redeemed = self.redeemed.split_off(&from);
        let room = free.saturating_sub(self.outstanding(now, ttl_ms));
        self.admit(due.min(room), now)
    }

    /// Bytes this line holds on the heap (capacity, not length): what 1M
    /// waiting tickets cost.
    pub fn heap_bytes(&self) -> usize {
        self.tickets.carts.heap_bytes()
            + self.tickets.pos_of.heap_bytes()
            + self.tickets.admissions.heap_bytes()
            + self.order.capacity() * size_of::<u32>()
            + self.by_cart.slots.capacity() * size_of::<u32>()
            + self.redeemed.len() * size_of::<u32>()
    }

    fn stored(&self) -> StoredLine {
        StoredLine {
            carts: self.tickets.carts.to_vec(),
            order: self.order.clone(),
            head: self.tickets.head,
            admissions: self.tickets.admissions.to_vec(),
            drawn: self.tickets.drawn,
            redeemed: self.redeemed.iter().copied().collect(),
        }
    }

    fn restore(s: StoredLine) -> Result<Self, CorruptLine> {
        let n = s.carts.len();
        if s.order.len() != n || s.head as usize > n || s.redeemed.iter().any(|i| *i >= s.head) {
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
        let carts: Chunked<u128> = s.carts.into_iter().collect();
        let mut by_cart = CartIndex::default();
        for seq in 0..n as u32 {
            if by_cart.get(&carts, carts.get(seq as usize).ok_or(CorruptLine)?).is_some() {
                return Err(CorruptLine);
            }
            by_cart.insert(&carts, seq);
        }
        Ok(Line {
            tickets: Tickets {
                carts,
                pos_of: pos_of.into_iter().collect(),
                admissions: s.admissions.into_iter().collect(),
                head: s.head,
                drawn: s.drawn,
            },
            order: s.order,
            by_cart,
            redeemed: s.redeemed.into_iter().collect(),
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// When to read it again, in milliseconds (waiting tickets only): see
    /// [`poll_after_ms`].
    pub poll_after_ms: Option<u64>,
    /// The room's figures at that moment (for a progress bar).
    pub room: RoomStats,
}

/// Shortest and longest wait a waiting ticket is told before reading it again.
pub const POLL_MS: std::ops::RangeInclusive<u64> = 500..=60_000;
/// Before the draw nobody knows their place, so every pre-start ticket is read
/// again after the start; those reads are spread over a window long enough
/// that about this many arrive per admission the rate allows…
const FIRST_READS_PER_ADMISSION: u64 = 8;
/// …but no longer than this.
const FIRST_READS_SPREAD_MAX_MS: u64 = 10_000;
/// A ticket read earlier than this before the start is told to read again in
/// the last seconds before it, when the pool (and so the window) is about known.
const RECHECK_BEFORE_START_MS: u64 = 20_000;

/// When a waiting ticket should be read again, in milliseconds: about when it
/// may be admitted (its place over the rate, within [`POLL_MS`]), so the
/// polling load of a room follows its admission rate, not the size of its
/// crowd. Before the draw: after the start, at a point of a window that grows
/// with the pool (fixed per ticket by its number, which says nothing about the
/// place it will draw); long before the start, once more shortly before it,
/// when the pool is about complete.
pub fn poll_after_ms(position: Option<u64>, seq: u32, waiting: u64, rate: u64, to_start_ms: u64) -> u64 {
    let rate = rate.max(1);
    // A fixed share of a window per ticket: a multiplicative hash of its number.
    let share = u64::from(seq).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    let at_share = |window: u64| (window * share) >> 32;
    match position {
        Some(p) => (p.saturating_mul(1_000) / rate).clamp(*POLL_MS.start(), *POLL_MS.end()),
        None if to_start_ms > RECHECK_BEFORE_START_MS => {
            to_start_ms - RECHECK_BEFORE_START_MS + at_share(RECHECK_BEFORE_START_MS / 2)
        }
        None => {
            let spread =
                (waiting.saturating_mul(1_000) / (FIRST_READS_PER_ADMISSION * rate)).min(FIRST_READS_SPREAD_MAX_MS);
            to_start_ms + POLL_MS.start() + at_share(spread)
        }
    }
}

/// Ticket `seq` as it reads at `now`, from a line and its room's figures: the
/// one rule for the actor's answers and for reads of a published line.
fn ticket_view(
    tickets: &Tickets,
    room: &RoomStats,
    seq: u32,
    created: bool,
    now: Timestamp,
) -> Result<TicketView, QueueError> {
    let config = room.config;
    let place = tickets.place(seq).ok_or(QueueError::TicketNotFound)?;
    let rate = u64::from(config.admit_per_second.max(1));
    let view = |state, position, estimated_wait_secs, pass_expires_at, poll_after_ms| TicketView {
        ticket: seq,
        created,
        state,
        position,
        estimated_wait_secs,
        pass_expires_at,
        poll_after_ms,
        room: room.clone(),
    };
    Ok(match place {
        Place::Admitted { at } => {
            let expires = at.plus_millis(config.pass_ttl_ms());
            let state = if now < expires { TicketState::Admitted } else { TicketState::Expired };
            view(state, None, 0, Some(expires), None)
        }
        Place::Waiting { .. } if room.sold_out => view(TicketState::SoldOut, None, 0, None, None),
        Place::Waiting { position } => {
            let to_start_ms = room.sale_starts_at.map_or(0, |s| now.millis_until(s));
            // Before the draw, the expected place is the middle of the pool.
            let ahead = position.unwrap_or_else(|| tickets.waiting().div_ceil(2));
            let poll = poll_after_ms(position, seq, tickets.waiting(), rate, to_start_ms);
            view(TicketState::Waiting, position, to_start_ms.div_ceil(1_000) + ahead.div_ceil(rate), None, Some(poll))
        }
    })
}

/// A room's figures, published on every change (the SSE streams and the
/// operator console read them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomControl {
    /// Stop admitting (joins still queue).
    Pause,
    /// Admit again.
    Resume,
    /// Admit at this rate from now on.
    Rate(u32),
}

/// What a waiting-room call can fail with.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
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

/// Which SKUs have a waiting room, each room's latest figures, and its line as
/// last published. Cart edits check it on the hot path and ticket reads are
/// answered from it, so it is a concurrent map, not an actor call.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: DashMap<Sku, Room>,
    /// Cluster mode: the settings of the rooms other nodes serve, so that a
    /// cart edit through this node needs a pass all the same.
    foreign: DashMap<Sku, RoomConfig>,
}

/// One room as its queue actor last published it.
#[derive(Debug)]
struct Room {
    stats: watch::Sender<RoomStats>,
    /// The line with the figures it was published with; `None` while the actor
    /// is passivated (a read then wakes it, which notices a restock).
    line: ArcSwapOption<Published>,
}

/// A line and its room's figures, published together so a read sees one moment.
#[derive(Debug)]
struct Published {
    tickets: Tickets,
    stats: RoomStats,
}

impl Rooms {
    /// The settings of `sku`'s room, if it has one (here, or in cluster mode
    /// on the node serving `sku`).
    pub fn config(&self, sku: &Sku) -> Option<RoomConfig> {
        match self.rooms.get(sku) {
            Some(r) => Some(r.stats.borrow().config),
            None => self.foreign.get(sku).map(|c| *c),
        }
    }

    /// The settings of `sku`'s room where another node serves it (`None`: it
    /// has none).
    pub fn set_foreign(&self, sku: &Sku, config: Option<RoomConfig>) {
        match config {
            Some(c) => self.foreign.insert(sku.clone(), c),
            None => self.foreign.remove(sku).map(|(_, c)| c),
        };
    }

    /// `sku`'s room moved to another node (its line written first): only its
    /// settings stay known here, as another node's.
    pub fn hand_over(&self, sku: &Sku) {
        if let Some((_, room)) = self.rooms.remove(sku) {
            let config = room.stats.borrow().config;
            self.foreign.insert(sku.clone(), config);
        }
    }

    /// `sku` is served here now: its queue actor publishes its room.
    pub fn adopt(&self, sku: &Sku) {
        self.foreign.remove(sku);
    }

    /// The figures of `sku`'s room as last published.
    pub fn stats(&self, sku: &Sku) -> Option<RoomStats> {
        self.rooms.get(sku).map(|r| r.stats.borrow().clone())
    }

    /// A stream of `sku`'s room figures.
    pub fn watch(&self, sku: &Sku) -> Option<watch::Receiver<RoomStats>> {
        self.rooms.get(sku).map(|r| r.stats.subscribe())
    }

    /// Every SKU with a room.
    pub fn skus(&self) -> Vec<Sku> {
        self.rooms.iter().map(|r| r.key().clone()).collect()
    }

    /// Ticket `seq` of `sku`'s room for `cart`, from the line as last published
    /// (at most one [`TICK`] old); `None` when that line does not have the
    /// ticket yet (or none is published): the queue actor answers then.
    pub fn ticket(&self, sku: &Sku, seq: u32, cart: CartId, now: Timestamp) -> Option<Result<TicketView, QueueError>> {
        let line = self.rooms.get(sku)?.line.load_full()?;
        if u64::from(seq) >= line.tickets.len() {
            return None;
        }
        if line.tickets.cart_of(seq) != Some(cart.as_uuid().as_u128()) {
            return Some(Err(QueueError::TicketNotFound));
        }
        Some(ticket_view(&line.tickets, &line.stats, seq, false, now))
    }

    fn publish(&self, sku: &Sku, stats: Option<RoomStats>, tickets: Option<&Tickets>) {
        let Some(stats) = stats else {
            self.rooms.remove(sku);
            return;
        };
        let line = tickets.map(|t| Arc::new(Published { tickets: t.clone(), stats: stats.clone() }));
        match self.rooms.get(sku) {
            Some(room) => {
                // The line first: whoever the figures wake reads a line as new.
                room.line.store(line);
                room.stats.send_if_modified(|old| {
                    let changed = *old != stats;
                    *old = stats;
                    changed
                });
            }
            None => {
                let room = Room { stats: watch::channel(stats).0, line: ArcSwapOption::new(line) };
                self.rooms.insert(sku.clone(), room);
            }
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
    /// The SKU's counts: admission leaves room for the available units and ends at 0 left.
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
    /// The cart's pass reserved the product: its claim on a free unit is spent.
    Redeemed { ticket: Ticket, cart: CartId },
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
    /// Changed since it last published its line and figures (done once a tick).
    unpublished: bool,
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

/// The settings of `sku`'s stored room, if it has one on.
pub async fn stored_room_config(snapshots: &dyn SnapshotStore, sku: &Sku) -> Result<Option<RoomConfig>, StoreError> {
    Ok(recover(sku, snapshots).await?.0.config)
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

    /// Publishes the line and the figures now.
    fn publish(&mut self) {
        self.unpublished = false;
        self.deps.rooms.publish(&self.sku, self.stats(), Some(self.line.tickets()));
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

    /// A change to write behind, and to publish at the next tick (a join storm
    /// publishes ten times a second, not once per join).
    fn changed(&mut self, myself: &ActorRef<QueueMsg>) {
        self.version += 1;
        self.unpublished = true;
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
        if self.paused || self.sold_out || !self.line.drawn() {
            self.credit = 0.0;
            return changed;
        }
        let free = avail.map_or(0, |a| a.available);
        self.credit += f64::from(config.admit_per_second) * elapsed.as_secs_f64();
        let due = self.credit.floor() as u64;
        let admitted = self.line.admit_within(due, free, now, config.pass_ttl_ms());
        self.credit -= admitted as f64;
        if admitted < due {
            // No one to admit, or no unit to admit them to: the rate does not
            // bank a burst for later.
            self.credit = self.credit.min(1.0);
        }
        changed || admitted > 0
    }

    fn view(&self, seq: u32, created: bool, now: Timestamp) -> Result<TicketView, QueueError> {
        let room = self.stats().ok_or(QueueError::NoRoom)?;
        ticket_view(self.line.tickets(), &room, seq, created, now)
    }

    async fn passivate(&mut self) -> Result<bool, StoreError> {
        if self.config.is_some() && self.line.waiting() > 0 && !self.sold_out {
            return Ok(false);
        }
        self.deps.flusher.save_now(&[self.record()]).await?;
        // Reads wake the actor again (so a restock reopens the room).
        self.deps.rooms.publish(&self.sku, self.stats(), None);
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
            unpublished: false,
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
            QueueMsg::Redeemed { ticket: _ticket, cart } => {
                let ttl_ms = state.config.map_or(0, |c| c.pass_ttl_ms());
                let seq = state.line.ticket_of(cart.as_uuid().as_u128());
                if seq.is_some_and(|seq| state.line.redeem(seq, clock::now(), ttl_ms)) {
                    state.changed(&myself);
                }
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
                if state.unpublished {
                    state.publish();
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
        let bad = StoredLine {
            carts: vec![1, 2],
            order: vec![0, 0],
            head: 0,
            admissions: vec![],
            drawn: true,
            redeemed: vec![],
        };
        assert_eq!(Line::restore(bad).unwrap_err(), CorruptLine);
        let twice = StoredLine {
            carts: vec![1, 1],
            order: vec![0, 1],
            head: 0,
            admissions: vec![],
            drawn: true,
            redeemed: vec![],
        };
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
    fn admission_leaves_room_only_for_free_units() {
        let mut line = Line::new(true);
        for i in 0..10 {
            line.join(cart(i));
        }
        let ttl = 60_000;
        let t = Timestamp::from_millis(1_000);
        // 3 free units: 3 admitted, however much the rate allows.
        assert_eq!(line.admit_within(8, 3, t, ttl), 3);
        assert_eq!(line.outstanding(t, ttl), 3);
        assert_eq!(line.admit_within(8, 3, t, ttl), 0, "every free unit is claimed");
        // Ticket 0 uses its pass: one unit fewer free, one claim fewer.
        assert!(line.redeem(0, t, ttl));
        assert!(!line.redeem(0, t, ttl), "once");
        assert!(!line.redeem(5, t, ttl), "not admitted");
        assert_eq!((line.outstanding(t, ttl), line.admit_within(8, 2, t, ttl)), (2, 0));
        // Its hold is released: a unit is free again.
        assert_eq!(line.admit_within(8, 3, t, ttl), 1);
        // The unused passes lapse: their units go to the next in line.
        let later = t.plus_millis(ttl);
        assert_eq!(line.outstanding(later, ttl), 0);
        assert!(!line.redeem(1, later, ttl), "a lapsed pass");
        assert_eq!(line.admit_within(8, 3, later, ttl), 3);
        assert_eq!(line.admitted(), 7);
    }

    #[test]
    fn polls_follow_the_admission_rate_not_the_crowd() {
        // After the draw: about when the place comes up, within POLL_MS.
        assert_eq!(poll_after_ms(Some(1), 0, 10, 250, 0), 500);
        assert_eq!(poll_after_ms(Some(2_500), 0, 10, 250, 0), 10_000);
        assert_eq!(poll_after_ms(Some(10_000_000), 0, 10, 250, 0), 60_000);
        // Reads per second of a whole line: about rate x (1 + ln(120)) for
        // the first minute of admissions, plus the tail once a minute.
        let load = |waiting: u64, rate: u64| -> f64 {
            (1..=waiting).map(|p| 1_000.0 / poll_after_ms(Some(p), 0, waiting, rate, 0) as f64).sum()
        };
        let bound = |waiting: u64, rate: u64| rate as f64 * 6.0 + waiting.saturating_sub(60 * rate) as f64 / 60.0;
        for (waiting, rate) in [(20_000, 250), (20_000, 10), (1_000_000, 250), (100, 5)] {
            let l = load(waiting, rate);
            assert!(l <= bound(waiting, rate), "{waiting} waiting at {rate}/s: {l:.0} reads/s");
        }
        // Before the draw: everyone after the start, spread over a window that
        // grows with the pool (here 20,000 / (8 x 250) s = 10 s) and is fixed per ticket.
        let first: Vec<u64> = (0..20_000).map(|seq| poll_after_ms(None, seq, 20_000, 250, 4_000)).collect();
        assert!(first.iter().all(|ms| (4_500..4_500 + 10_000).contains(ms)));
        let early = first.iter().filter(|ms| **ms < 4_500 + 5_000).count();
        assert!((9_500..10_500).contains(&early), "{early} in the first half of the window");
        assert_eq!(poll_after_ms(None, 7, 20_000, 250, 4_000), first[7]);
        // Long before the start: once more 20 to 10 s before it.
        assert!((0..50).all(|seq| (40_000..50_000).contains(&poll_after_ms(None, seq, 10, 250, 60_000))));
        assert!(poll_after_ms(None, 7, 20, 250, 0) < 510, "a small pool comes back at once");
    }

    #[test]
    fn a_published_line_answers_reads_like_the_actor() {
        let sku = Sku::parse("ROOM-1").unwrap();
        let rooms = Rooms::default();
        let config = RoomConfig::new(10, 60).unwrap();
        let mut line = Line::new(true);
        let carts: Vec<CartId> = (0..5).map(|_| CartId::new()).collect();
        for c in &carts {
            line.join(c.as_uuid().as_u128());
        }
        let now = Timestamp::from_millis(10_000);
        line.admit(2, now);
        let stats = |line: &Line| RoomStats {
            config,
            paused: false,
            sold_out: false,
            drawn: true,
            joined: line.len(),
            admitted: line.admitted(),
            waiting: line.waiting(),
            sale_starts_at: None,
        };
        rooms.publish(&sku, Some(stats(&line)), Some(line.tickets()));
        for (seq, c) in carts.iter().enumerate() {
            let read = rooms.ticket(&sku, seq as u32, *c, now).unwrap().unwrap();
            assert_eq!(read, ticket_view(line.tickets(), &stats(&line), seq as u32, false, now).unwrap());
        }
        let t = rooms.ticket(&sku, 2, carts[2], now).unwrap().unwrap();
        assert_eq!((t.state, t.position, t.poll_after_ms), (TicketState::Waiting, Some(1), Some(500)));
        assert!(matches!(rooms.ticket(&sku, 2, carts[0], now), Some(Err(QueueError::TicketNotFound))));
        // Changes since the publication are not seen; a newer ticket is the actor's to answer.
        line.admit(1, now);
        line.join(CartId::new().as_uuid().as_u128());
        assert_eq!(rooms.ticket(&sku, 2, carts[2], now).unwrap().unwrap().state, TicketState::Waiting);
        assert!(rooms.ticket(&sku, 5, carts[0], now).is_none());
        rooms.publish(&sku, Some(stats(&line)), Some(line.tickets()));
        assert_eq!(rooms.ticket(&sku, 2, carts[2], now).unwrap().unwrap().state, TicketState::Admitted);
        // A passivated room publishes no line: reads go to the actor.
        rooms.publish(&sku, Some(stats(&line)), None);
        assert!(rooms.ticket(&sku, 2, carts[2], now).is_none());
        assert_eq!(rooms.config(&sku), Some(config));
    }

    #[test]
    fn room_settings_are_validated() {
        assert!(RoomConfig::new(50, 120).is_ok());
        assert_eq!(RoomConfig::new(0, 120), Err(RoomConfigError::Rate));
        assert_eq!(RoomConfig::new(MAX_ADMIT_PER_SECOND + 1, 120), Err(RoomConfigError::Rate));
        assert_eq!(RoomConfig::new(5, 9), Err(RoomConfigError::PassTtl));
    }
}

#[cfg(all(test, not(loom)))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// What happens to a room between two checks.
    #[derive(Debug, Clone)]
    enum Op {
        /// Buyers join.
        Join(u8),
        /// A timer step that the rate allows `due` admissions in, `ms` later.
        Tick { due: u8, ms: u16 },
        /// The `n`-th admitted ticket's cart adds the product with its pass.
        Buy(u16),
        /// A cart's hold is released (abandoned, expired, removed).
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..20).prop_map(Op::Join),
            (0u8..30, 0u16..3_000).prop_map(|(due, ms)| Op::Tick { due, ms }),
            any::<u16>().prop_map(Op::Buy),
            Just(Op::Release),
        ]
    }

    proptest! {
        /// Whatever the joins, timer steps, purchases and releases: unused
        /// valid passes never outnumber the free units (admitted buyers find
        /// stock), admission takes the line in order (the first `n` waiting,
        /// the others move up by `n`), and a stored line comes back the same.
        #[test]
        fn admission_never_promises_more_than_is_free(
            stock in 0u64..40,
            ttl_ms in 1_000u64..5_000,
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut line = Line::new(true);
            let (mut free, mut held) = (stock, 0u64);
            let mut now = Timestamp::from_millis(1_000_000);
            let mut next_cart = 1u128;
            for op in ops {
                match op {
                    Op::Join(n) => {
                        for _ in 0..n {
                            line.join(next_cart);
                            next_cart += 1;
                        }
                    }
                    Op::Tick { due, ms } => {
                        now = now.plus_millis(u64::from(ms));
                        let before: Vec<Option<Place>> = (0..line.len() as u32).map(|s| line.place(s)).collect();
                        let n = line.admit_within(u64::from(due), free, now, ttl_ms);
                        prop_assert!(n <= u64::from(due));
                        for (seq, was) in before.iter().enumerate() {
                            let is = line.place(seq as u32);
                            match (was, is) {
                                (Some(Place::Waiting { position: Some(p) }), Some(Place::Admitted { at })) => {
                                    prop_assert!(*p <= n, "ticket {} admitted from place {} of {} admitted", seq, p, n);
                                    prop_assert_eq!(at, now);
                                }
                                (Some(Place::Waiting { position: Some(p) }), Some(Place::Waiting { position: Some(q) })) => {
                                    prop_assert!(*p > n && q == p - n, "place {} became {} after {} admitted", p, q, n);
                                }
                                (Some(a @ Place::Admitted { .. }), b) => prop_assert_eq!(Some(*a), b),
                                (a, b) => prop_assert!(false, "ticket {}: {:?} -> {:?}", seq, a, b),
                            }
                        }
                    }
                    Op::Buy(k) => {
                        let admitted = line.admitted();
                        if admitted > 0 {
                            let index = u64::from(k) % admitted;
                            let seq = (0..line.len() as u32)
                                .find(|s| line.tickets.pos_of.get(*s as usize) == Some(index as u32))
                                .expect("every place has a ticket");
                            if line.redeem(seq, now, ttl_ms) {
                                prop_assert!(free > 0, "a valid unused pass found no free unit");
                                free -= 1;
                                held += 1;
                            }
                        }
                    }
                    Op::Release => {
                        if held > 0 {
                            held -= 1;
                            free += 1;
                        }
                    }
                }
                prop_assert!(line.outstanding(now, ttl_ms) <= free,
                    "{} unused passes for {} free units", line.outstanding(now, ttl_ms), free);
            }
            let back = Line::restore(line.stored()).expect("a stored line restores");
            prop_assert_eq!(back.outstanding(now, ttl_ms), line.outstanding(now, ttl_ms));
            for seq in 0..line.len() as u32 {
                prop_assert_eq!(back.place(seq), line.place(seq));
            }
        }
    }
}
