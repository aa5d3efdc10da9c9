//! One SKU's stock: the no-oversell invariant lives here.
//!
//! `available = total - sold - held`, where `held` is the sum of all holds, and it
//! never goes below zero. Holds move through three states: held (expires at
//! `expires_at`), committing (prepared for an order; cannot expire or be released)
//! and gone (released, expired, or turned into sold units by a journal fact).

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::{CartId, HoldId, JournalPos, OrderId, StockFact, StockFactKind, Timestamp};

/// Why an inventory operation was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Reservations are for at least one unit.
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    /// Not enough units are free.
    #[error("only {available} available, {requested} requested")]
    OutOfStock {
        /// Units asked for (beyond what the hold already had).
        requested: u64,
        /// Units free right now.
        available: u64,
    },
    /// No such hold (never made, released, or expired and reaped).
    #[error("hold {0} not found")]
    UnknownHold(HoldId),
    /// The hold's time ran out.
    #[error("hold {0} has expired")]
    HoldExpired(HoldId),
    /// The hold is part of an order being committed.
    #[error("hold {0} is being committed")]
    HoldCommitting(HoldId),
    /// The hold belongs to another cart.
    #[error("hold {0} belongs to another cart")]
    NotYourHold(HoldId),
    /// No prepared order with that id.
    #[error("order {0} is not prepared on this SKU")]
    UnknownOrder(OrderId),
    /// `prepare` needs at least one hold.
    #[error("nothing to prepare")]
    NothingToPrepare,
    /// `set_total` below what is sold or held.
    #[error("total {requested} is below the {committed} units sold or held")]
    TotalBelowCommitted {
        /// The total asked for.
        requested: u64,
        /// `sold + held`.
        committed: u64,
    },
    /// A count would overflow.
    #[error("quantity out of range")]
    Overflow,
}

/// One reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The cart that owns it.
    pub cart: CartId,
    /// Units held.
    pub qty: u32,
    /// When it lapses unless committed first.
    pub expires_at: Timestamp,
    /// Set while the hold is prepared for an order.
    pub committing: Option<OrderId>,
}

/// A hold that lapsed, as reported by [`Inventory::expire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredHold {
    /// Which hold.
    pub hold: HoldId,
    /// Its cart.
    pub cart: CartId,
    /// Units returned to stock.
    pub qty: u32,
}

/// The public view of one SKU's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Units ever sellable.
    pub total: u64,
    /// Units sold.
    pub sold: u64,
    /// Units in holds.
    pub held: u64,
    /// Units free to reserve.
    pub available: u64,
}

/// One SKU's stock and holds. See the module docs for the invariant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    total: u64,
    sold: u64,
    held: u64,
    holds: HashMap<HoldId, Hold>,
    /// Expiry index of the holds that can expire (not committing): one ordered
    /// set is the SKU's timer wheel; the actor ticks it once for the earliest entry.
    expiry: BTreeSet<(Timestamp, HoldId)>,
    committing: HashMap<OrderId, BTreeSet<HoldId>>,
    /// Highest journal position reflected in this state.
    watermark: JournalPos,
}

/// The serialisable form of an [`Inventory`], written by snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventorySnapshot {
    /// Units ever sellable.
    pub total: u64,
    /// Units sold.
    pub sold: u64,
    /// Highest journal position reflected.
    pub watermark: JournalPos,
    /// All holds.
    pub holds: Vec<(HoldId, Hold)>,
}

impl Inventory {
    /// A SKU with `total` units and nothing sold or held.
    pub fn new(total: u64) -> Self {
        Inventory { total, ..Default::default() }
    }

    /// Units ever sellable.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Units sold.
    pub fn sold(&self) -> u64 {
        self.sold
    }

    /// Units held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Units free to reserve.
    pub fn available(&self) -> u64 {
        self.total.saturating_sub(self.sold.saturating_add(self.held))
    }

    /// All counts at once.
    pub fn availability(&self) -> Availability {
        Availability { total: self.total, sold: self.sold, held: self.held, available: self.available() }
    }

    /// Highest journal position reflected in this state.
    pub fn watermark(&self) -> JournalPos {
        self.watermark
    }

    /// Number of live holds.
    pub fn hold_count(&self) -> usize {
        self.holds.len()
    }

    /// Orders with holds prepared on this SKU (recovery looks their facts up).
    pub fn committing_orders(&self) -> Vec<OrderId> {
        self.committing.keys().copied().collect()
    }

    /// A hold by id.
    pub fn hold(&self, id: &HoldId) -> Option<&Hold> {
        self.holds.get(id)
    }

    /// The earliest instant at which some hold expires, for the actor's single timer.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry.first().map(|(t, _)| *t)
    }

    /// True when `sold + held <= total` and the cached sums match the holds.
    /// Asserted after every change in debug builds and by the property tests.
    pub fn invariant_holds(&self) -> bool {
        let held: u64 = self.holds.values().map(|h| u64::from(h.qty)).sum();
        let expirable = self.holds.values().filter(|h| h.committing.is_none()).count();
        held == self.held
            && expirable == self.expiry.len()
            && self.sold.checked_add(self.held).is_some_and(|c| c <= self.total)
    }

    fn debug_check(&self) {
        debug_assert!(self.invariant_holds(), "inventory invariant broken: {self:?}");
    }

    /// Creates or resizes hold `id` for `cart` to `qty` units until `expires_at`.
    ///
    /// Resizing an existing hold only needs the difference to be available, and
    /// refreshes its expiry. A committing hold cannot be changed.
    pub fn reserve(&mut self, id: HoldId, cart: CartId, qty: u32, expires_at: Timestamp) -> Result<(), InventoryError> {
        if qty == 0 {
            return Err(InventoryError::InvalidQuantity);
        }
        let old_qty = match self.holds.get(&id) {
            Some(h) if h.cart != cart => return Err(InventoryError::NotYourHold(id)),
            Some(h) if h.committing.is_some() => return Err(InventoryError::HoldCommitting(id)),
            Some(h) => h.qty,
            None => 0,
        };
        if qty > old_qty {
            let extra = u64::from(qty - old_qty);
            let available = self.available();
            if extra > available {
                return Err(InventoryError::OutOfStock { requested: extra, available });
            }
        }
        if let Some(old) = self.holds.insert(id, Hold { cart, qty, expires_at, committing: None }) {
            self.expiry.remove(&(old.expires_at, id));
        }
        self.expiry.insert((expires_at, id));
        self.held = self.held - u64::from(old_qty) + u64::from(qty);
        self.debug_check();
        Ok(())
    }

    /// Drops hold `id` and returns its units to stock. Returns the units freed.
    pub fn release(&mut self, id: HoldId) -> Result<u32, InventoryError> {
        match self.holds.get(&id) {
            None => return Err(InventoryError::UnknownHold(id)),
            Some(h) if h.committing.is_some() => return Err(InventoryError::HoldCommitting(id)),
            Some(_) => {}
        }
        let qty = self.remove_hold(id).map_or(0, |h| h.qty);
        self.debug_check();
        Ok(qty)
    }

    fn remove_hold(&mut self, id: HoldId) -> Option<Hold> {
        let h = self.holds.remove(&id)?;
        match h.committing {
            None => {
                self.expiry.remove(&(h.expires_at, id));
            }
            Some(order) => {
                // Keep the order's prepared set exact: it must never name a gone hold.
                if let Some(ids) = self.committing.get_mut(&order) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.committing.remove(&order);
                    }
                }
            }
        }
        self.held -= u64::from(h.qty);
        Some(h)
    }

    /// Marks `holds` (all owned by `cart`) as committing for `order`: all or none.
    ///
    /// Prepared holds can no longer expire or be released; they end in
    /// [`Inventory::apply_fact`] (sold) or [`Inventory::abort`] (held again).
    /// Preparing the same order twice with the same holds is a no-op.
    pub fn prepare(
        &mut self,
        order: OrderId,
        cart: CartId,
        holds: &[HoldId],
        now: Timestamp,
    ) -> Result<(), InventoryError> {
        let set: BTreeSet<HoldId> = holds.iter().copied().collect();
        if set.is_empty() {
            return Err(InventoryError::NothingToPrepare);
        }
        if let Some(prepared) = self.committing.get(&order) {
            return if *prepared == set && set.len() == holds.len() {
                Ok(())
            } else {
                Err(InventoryError::UnknownOrder(order))
            };
        }
        for id in holds {
            let h = self.holds.get(id).ok_or(InventoryError::UnknownHold(*id))?;
            if h.cart != cart {
                return Err(InventoryError::NotYourHold(*id));
            }
            if h.committing.is_some() {
                return Err(InventoryError::HoldCommitting(*id));
            }
            if h.expires_at <= now {
                return Err(InventoryError::HoldExpired(*id));
            }
        }
        for id in &set {
            if let Some(h) = self.holds.get_mut(id) {
                h.committing = Some(order);
                self.expiry.remove(&(h.expires_at, *id));
            }
        }
        self.committing.insert(order, set);
        self.debug_check();
        Ok(())
    }

    /// Returns `order`'s prepared holds to the held state (they may expire again).
    /// Returns how many holds were restored; an unknown order restores none.
    pub fn abort(&mut self, order: OrderId) -> usize {
        let n = self.abort_inner(order);
        self.debug_check();
        n
    }

    fn abort_inner(&mut self, order: OrderId) -> usize {
        let Some(ids) = self.committing.remove(&order) else { return 0 };
        let mut n = 0;
        for id in ids {
            if let Some(h) = self.holds.get_mut(&id)
                && h.committing == Some(order)
            {
                h.committing = None;
                self.expiry.insert((h.expires_at, id));
                n += 1;
            }
        }
        n
    }

    /// Removes every hold that expired at or before `now` and returns them.
    pub fn expire(&mut self, now: Timestamp) -> Vec<ExpiredHold> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                break;
            }
            if let Some(h) = self.remove_hold(id) {
                out.push(ExpiredHold { hold: id, cart: h.cart, qty: h.qty });
            } else {
                self.expiry.pop_first();
            }
        }
        self.debug_check();
        out
    }

    /// Adds `qty` units.
    pub fn restock(&mut self, qty: u64) -> Result<(), InventoryError> {
        self.total = self.total.checked_add(qty).ok_or(InventoryError::Overflow)?;
        self.debug_check();
        Ok(())
    }

    /// Sets the total; it may not drop below what is sold or held.
    pub fn set_total(&mut self, total: u64) -> Result<(), InventoryError> {
        let committed = self.sold.saturating_add(self.held);
        if total < committed {
            return Err(InventoryError::TotalBelowCommitted { requested: total, committed });
        }
        self.total = total;
        self.debug_check();
        Ok(())
    }

    /// Applies a durable journal fact, live (after its batch committed) or during
    /// recovery. Idempotent: a fact already reflected in this state changes nothing.
    ///
    /// A `Sold` fact is applied when its hold is still here (whatever its state), or
    /// when the fact is newer than the watermark (the hold was lost with unflushed
    /// write-behind state). Journal facts are the truth; holds are not: if a sold
    /// fact leaves too little stock for the remaining uncommitted holds, the
    /// latest-expiring of those are evicted (a later checkout of theirs gets 409),
    /// and the evicted holds are returned. Operator facts apply only when newer
    /// than the watermark.
    pub fn apply_fact(&mut self, fact: &StockFact) -> Vec<ExpiredHold> {
        let newer = fact.pos > self.watermark;
        let mut evicted = Vec::new();
        match fact.kind {
            StockFactKind::Sold { hold, qty, .. } => {
                let present = self.remove_hold(hold).is_some();
                if present || newer {
                    self.sold = self.sold.saturating_add(u64::from(qty));
                    self.total = self.total.max(self.sold);
                    evicted = self.evict_overcommitted();
                }
            }
            StockFactKind::Restocked { qty } if newer => {
                self.total = self.total.saturating_add(qty);
            }
            StockFactKind::TotalSet { total } if newer => {
                self.total = total.max(self.sold);
                evicted = self.evict_overcommitted();
            }
            StockFactKind::Restocked { .. } | StockFactKind::TotalSet { .. } => {}
        }
        self.watermark = self.watermark.max(fact.pos);
        self.debug_check();
        evicted
    }

    /// Evicts uncommitted holds, latest-expiring first, until `sold + held <= total`.
    fn evict_overcommitted(&mut self) -> Vec<ExpiredHold> {
        let mut out = Vec::new();
        while self.sold.saturating_add(self.held) > self.total {
            let Some(&(_, id)) = self.expiry.last() else { break };
            if let Some(h) = self.remove_hold(id) {
                out.push(ExpiredHold { hold: id, cart: h.cart, qty: h.qty });
            }
        }
        // Only committing holds are left over the line: their orders never reached
        // the journal (a fact would have consumed them), so they go back to held
        // and are evicted like the rest.
        if self.sold.saturating_add(self.held) > self.total {
            let orders: Vec<OrderId> = self.committing.keys().copied().collect();
            for o in orders {
                self.abort_inner(o);
            }
            out.extend(self.evict_overcommitted());
        }
        out
    }

    /// Returns every committing hold to the held state. Used after recovery, when no
    /// checkout can still be in flight for the recovered state.
    pub fn abort_all(&mut self) {
        let orders: Vec<OrderId> = self.committing.keys().copied().collect();
        for o in orders {
            self.abort(o);
        }
    }

    /// The serialisable form, for write-behind snapshots.
    pub fn snapshot(&self) -> InventorySnapshot {
        InventorySnapshot {
            total: self.total,
            sold: self.sold,
            watermark: self.watermark,
            holds: self.holds.iter().map(|(id, h)| (*id, h.clone())).collect(),
        }
    }

    /// Rebuilds an inventory from a snapshot, re-deriving every index. A snapshot
    /// that would break the invariant (corrupt or hand-edited) is repaired by
    /// evicting holds, never by inventing stock.
    pub fn restore(s: InventorySnapshot) -> Self {
        let mut inv =
            Inventory { total: s.total.max(s.sold), sold: s.sold, watermark: s.watermark, ..Default::default() };
        for (id, h) in s.holds {
            if inv.holds.contains_key(&id) {
                continue; // a corrupt snapshot listing a hold twice: count it once
            }
            inv.held += u64::from(h.qty);
            match h.committing {
                Some(order) => {
                    inv.committing.entry(order).or_default().insert(id);
                }
                None => {
                    inv.expiry.insert((h.expires_at, id));
                }
            }
            inv.holds.insert(id, h);
        }
        inv.evict_overcommitted();
        inv.debug_check();
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sku;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn reserve_takes_stock_and_release_returns_it() {
        let mut inv = Inventory::new(10);
        let (h, c) = (HoldId::new(), CartId::new());
        inv.reserve(h, c, 4, t(100)).unwrap();
        assert_eq!(inv.available(), 6);
        assert_eq!(inv.release(h), Ok(4));
        assert_eq!(inv.available(), 10);
        assert_eq!(inv.release(h), Err(InventoryError::UnknownHold(h)));
    }

    #[test]
    fn reserve_beyond_stock_is_refused_and_changes_nothing() {
        let mut inv = Inventory::new(3);
        let before = inv.clone();
        let err = inv.reserve(HoldId::new(), CartId::new(), 4, t(1)).unwrap_err();
        assert_eq!(err, InventoryError::OutOfStock { requested: 4, available: 3 });
        assert_eq!(inv, before);
    }

    #[test]
    fn resizing_a_hold_needs_only_the_difference() {
        let mut inv = Inventory::new(5);
        let (h, c) = (HoldId::new(), CartId::new());
        inv.reserve(h, c, 3, t(10)).unwrap();
        inv.reserve(h, c, 5, t(20)).unwrap();
        assert_eq!((inv.held(), inv.available()), (5, 0));
        inv.reserve(h, c, 1, t(30)).unwrap();
        assert_eq!(inv.available(), 4);
        assert_eq!(inv.next_expiry(), Some(t(30)));
        assert_eq!(inv.reserve(h, CartId::new(), 1, t(30)), Err(InventoryError::NotYourHold(h)));
    }

    #[test]
    fn holds_expire_in_order_and_committing_ones_never_do() {
        let mut inv = Inventory::new(10);
        let c = CartId::new();
        let (a, b, p) = (HoldId::new(), HoldId::new(), HoldId::new());
        inv.reserve(a, c, 1, t(10)).unwrap();
        inv.reserve(b, c, 2, t(20)).unwrap();
        inv.reserve(p, c, 3, t(15)).unwrap();
        inv.prepare(OrderId::new(), c, &[p], t(5)).unwrap();
        let gone: Vec<_> = inv.expire(t(20)).into_iter().map(|e| e.hold).collect();
        assert_eq!(gone, vec![a, b]);
        assert_eq!((inv.held(), inv.available()), (3, 7));
    }

    #[test]
    fn prepare_is_all_or_nothing() {
        let mut inv = Inventory::new(10);
        let c = CartId::new();
        let (a, missing) = (HoldId::new(), HoldId::new());
        inv.reserve(a, c, 1, t(10)).unwrap();
        let before = inv.clone();
        assert_eq!(inv.prepare(OrderId::new(), c, &[a, missing], t(1)), Err(InventoryError::UnknownHold(missing)));
        assert_eq!(inv, before);
        assert_eq!(inv.prepare(OrderId::new(), c, &[a], t(10)), Err(InventoryError::HoldExpired(a)));
        assert_eq!(inv.prepare(OrderId::new(), CartId::new(), &[a], t(1)), Err(InventoryError::NotYourHold(a)));
    }

    #[test]
    fn commit_turns_holds_into_sold_units_once() {
        let sku = Sku::parse("S").unwrap();
        let mut inv = Inventory::new(10);
        let (h, c, o) = (HoldId::new(), CartId::new(), OrderId::new());
        inv.reserve(h, c, 2, t(10)).unwrap();
        inv.prepare(o, c, &[h], t(1)).unwrap();
        assert_eq!(inv.release(h), Err(InventoryError::HoldCommitting(h)));
        let fact = StockFact { pos: JournalPos(7), sku, kind: StockFactKind::Sold { order: o, hold: h, qty: 2 } };
        inv.apply_fact(&fact);
        inv.apply_fact(&fact);
        assert_eq!((inv.sold(), inv.held(), inv.available()), (2, 0, 8));
        assert_eq!(inv.watermark(), JournalPos(7));
    }

    #[test]
    fn abort_returns_holds_to_held_and_they_can_expire_again() {
        let mut inv = Inventory::new(10);
        let (h, c, o) = (HoldId::new(), CartId::new(), OrderId::new());
        inv.reserve(h, c, 2, t(10)).unwrap();
        inv.prepare(o, c, &[h], t(1)).unwrap();
        assert_eq!(inv.abort(o), 1);
        assert_eq!(inv.abort(o), 0);
        assert_eq!(inv.expire(t(10)).len(), 1);
        assert_eq!(inv.available(), 10);
    }

    #[test]
    fn set_total_cannot_go_below_sold_plus_held() {
        let mut inv = Inventory::new(10);
        inv.reserve(HoldId::new(), CartId::new(), 6, t(10)).unwrap();
        assert_eq!(inv.set_total(5), Err(InventoryError::TotalBelowCommitted { requested: 5, committed: 6 }));
        inv.set_total(6).unwrap();
        assert_eq!(inv.available(), 0);
        assert_eq!(inv.restock(u64::MAX), Err(InventoryError::Overflow));
    }

    #[test]
    fn a_newer_sold_fact_for_a_lost_hold_evicts_holds_rather_than_oversell() {
        // The snapshot knew cart A's holds; cart B's hold was never flushed, yet B's
        // order reached the journal. Recovery must count B's units and drop A's holds.
        let sku = Sku::parse("S").unwrap();
        let mut inv = Inventory::new(10);
        inv.reserve(HoldId::new(), CartId::new(), 10, t(100)).unwrap();
        let evicted = inv.apply_fact(&StockFact {
            pos: JournalPos(1),
            sku,
            kind: StockFactKind::Sold { order: OrderId::new(), hold: HoldId::new(), qty: 10 },
        });
        assert_eq!(evicted.len(), 1);
        assert_eq!((inv.sold(), inv.held(), inv.available()), (10, 0, 0));
        assert!(inv.invariant_holds());
    }

    #[test]
    fn snapshot_round_trips() {
        let mut inv = Inventory::new(10);
        let c = CartId::new();
        let (a, b) = (HoldId::new(), HoldId::new());
        inv.reserve(a, c, 1, t(10)).unwrap();
        inv.reserve(b, c, 2, t(20)).unwrap();
        inv.prepare(OrderId::new(), c, &[b], t(1)).unwrap();
        let restored = Inventory::restore(inv.snapshot());
        assert_eq!(restored, inv);
    }
}
