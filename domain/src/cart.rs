//! A shopping cart: lines, the holds behind them and the price each was added at.

use std::collections::BTreeMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CartId, HoldId, Money, MoneyError, OrderId, Product, Sku, Timestamp};

/// A cart holds at most this many distinct SKUs.
pub const MAX_LINES: usize = 100;

/// Why a cart operation was refused. Nothing changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CartError {
    /// The cart was already checked out.
    #[error("cart is already checked out as order {0}")]
    CheckedOut(OrderId),
    /// More than [`crate::MAX_LINE_QUANTITY`] units.
    #[error("quantity must be at most {max}")]
    QuantityTooLarge {
        /// The cap, [`crate::MAX_LINE_QUANTITY`].
        max: u32,
    },
    /// More than the product's `max_per_order`.
    #[error("at most {max_per_order} per order")]
    LimitExceeded {
        /// Most units of the product one order may contain.
        max_per_order: u32,
    },
    /// The product's sale has not begun.
    #[error("the sale has not started yet")]
    SaleNotStarted {
        /// The instant from which the product can be added.
        starts_at: Timestamp,
    },
    /// Every line of a cart is priced in one currency.
    #[error("a cart holds one currency")]
    CurrencyMismatch,
    /// More than [`MAX_LINES`] distinct SKUs.
    #[error("a cart holds at most {MAX_LINES} lines")]
    TooManyLines,
    /// Checkout of an empty cart.
    #[error("the cart is empty")]
    Empty,
    /// Totals did not fit.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product; a cart has at most one line per SKU.
    pub sku: Sku,
    /// Its title when added.
    pub title: String,
    /// Units wanted, at least 1; the line's hold is sized to match.
    pub qty: u32,
    /// Unit price when added (price snapshot): later catalog changes don't move it.
    pub unit_price: Money,
    /// The SKU hold backing this line.
    pub hold_id: HoldId,
    /// When that hold lapses unless the cart checks out first.
    pub hold_expires_at: Timestamp,
}

/// A cart's lines, one per SKU, in SKU order: a sorted `Vec` sized to its lines
/// rather than a `BTreeMap`, whose first node has room for eleven. Most carts
/// hold one or two lines, and every open cart stays in memory, so this is the
/// bulk of a cart's size. Serialized exactly as the `BTreeMap<Sku, CartLine>` it
/// replaced (a JSON object keyed by SKU), so stored snapshots read the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines(Vec<CartLine>);

impl Lines {
    fn find(&self, sku: &Sku) -> Result<usize, usize> {
        self.0.binary_search_by(|l| l.sku.cmp(sku))
    }

    /// The line for `sku`, if the cart has one.
    pub fn get(&self, sku: &Sku) -> Option<&CartLine> {
        self.find(sku).ok().map(|i| &self.0[i])
    }

    /// The line for `sku`, to change in place.
    pub fn get_mut(&mut self, sku: &Sku) -> Option<&mut CartLine> {
        self.find(sku).ok().map(|i| &mut self.0[i])
    }

    /// Adds `line`, replacing the line of the same SKU if there is one, and
    /// returns it. Grows by exactly one slot: carts are small and many.
    pub fn insert(&mut self, line: CartLine) -> &mut CartLine {
        match self.find(&line.sku) {
            Ok(i) => {
                self.0[i] = line;
                &mut self.0[i]
            }
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, line);
                &mut self.0[i]
            }
        }
    }

    /// Removes and returns the line for `sku`.
    pub fn remove(&mut self, sku: &Sku) -> Option<CartLine> {
        let i = self.find(sku).ok()?;
        let line = self.0.remove(i);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
        Some(line)
    }

    /// The lines in SKU order.
    pub fn values(&self) -> std::slice::Iter<'_, CartLine> {
        self.0.iter()
    }

    /// How many lines (distinct SKUs).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty cart.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&Sku> for Lines {
    type Output = CartLine;

    fn index(&self, sku: &Sku) -> &CartLine {
        self.get(sku).expect("no line for that SKU")
    }
}

impl Serialize for Lines {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for line in &self.0 {
            map.serialize_entry(&line.sku, line)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read as the map it always was (sorted, one line per key), then keep it compact.
        let map = BTreeMap::<Sku, CartLine>::deserialize(deserializer)?;
        let mut lines = Vec::with_capacity(map.len());
        lines.extend(map.into_values());
        Ok(Lines(lines))
    }
}

/// Where a cart is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CartStatus {
    /// Lines can still be added, resized or removed.
    Open,
    /// Became an order; frozen.
    CheckedOut {
        /// The order the cart became.
        order_id: OrderId,
        /// The key of the checkout request that made it.
        idempotency_key: String,
    },
}

/// What the SKU must do for a requested line change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineChange {
    /// Create or resize `hold_id` to `qty`.
    Reserve {
        /// The line's hold (new for a new line).
        hold_id: HoldId,
        /// Units the hold must cover after the change, at least 1.
        qty: u32,
    },
    /// Drop the line and its hold.
    Release {
        /// The hold to release.
        hold_id: HoldId,
    },
    /// Nothing to do (removing a line that is not there).
    Unchanged,
}

/// A shopper's cart: lines backed by SKU holds, open until checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Random (v4) id, so knowing one cart's id reveals no other.
    pub id: CartId,
    /// At most [`MAX_LINES`] lines, one per SKU, kept in SKU order.
    pub lines: Lines,
    /// Open or checked out.
    pub status: CartStatus,
}

impl Cart {
    /// An empty, open cart.
    pub fn new(id: CartId) -> Self {
        Cart { id, lines: Lines::default(), status: CartStatus::Open }
    }

    fn ensure_open(&self) -> Result<(), CartError> {
        match &self.status {
            CartStatus::Open => Ok(()),
            CartStatus::CheckedOut { order_id, .. } => Err(CartError::CheckedOut(*order_id)),
        }
    }

    /// Decides what setting `product`'s quantity to `qty` needs from its SKU.
    /// The cart itself changes only once the SKU agreed ([`Cart::apply_reserved`]).
    pub fn plan_set_quantity(&self, product: &Product, qty: u32, now: Timestamp) -> Result<LineChange, CartError> {
        self.ensure_open()?;
        product.check_quantity(qty, now)?;
        let line = self.lines.get(&product.sku);
        if qty == 0 {
            return Ok(line.map_or(LineChange::Unchanged, |l| LineChange::Release { hold_id: l.hold_id }));
        }
        if line.is_none() {
            if self.lines.len() >= MAX_LINES {
                return Err(CartError::TooManyLines);
            }
            if self.lines.values().any(|l| l.unit_price.currency() != product.price.currency()) {
                return Err(CartError::CurrencyMismatch);
            }
        }
        let hold_id = line.map_or_else(HoldId::new, |l| l.hold_id);
        Ok(LineChange::Reserve { hold_id, qty })
    }

    /// Records a hold the SKU granted. An existing line keeps its price snapshot.
    pub fn apply_reserved(&mut self, product: &Product, qty: u32, hold_id: HoldId, expires_at: Timestamp) {
        let line = match self.lines.get_mut(&product.sku) {
            Some(line) => line,
            None => self.lines.insert(CartLine {
                sku: product.sku.clone(),
                title: product.title.clone(),
                qty,
                unit_price: product.price,
                hold_id,
                hold_expires_at: expires_at,
            }),
        };
        line.qty = qty;
        line.hold_id = hold_id;
        line.hold_expires_at = expires_at;
    }

    /// Drops a line once its hold is released (or known gone).
    pub fn apply_released(&mut self, sku: &Sku) -> Option<CartLine> {
        self.lines.remove(sku)
    }

    /// Sum of all lines.
    pub fn total(&self) -> Result<Option<Money>, CartError> {
        let mut total: Option<Money> = None;
        for l in self.lines.values() {
            let line = l.unit_price.checked_mul(l.qty)?;
            total = Some(match total {
                None => line,
                Some(t) => t.checked_add(line)?,
            });
        }
        Ok(total)
    }

    /// Checks the cart can check out now: open and not empty.
    pub fn ensure_checkout_ready(&self) -> Result<(), CartError> {
        self.ensure_open()?;
        if self.lines.is_empty() {
            return Err(CartError::Empty);
        }
        Ok(())
    }

    /// Freezes the cart as `order_id`.
    pub fn mark_checked_out(&mut self, order_id: OrderId, idempotency_key: String) {
        self.status = CartStatus::CheckedOut { order_id, idempotency_key };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn product(sku: &str, cents: i64, currency: Currency) -> Product {
        Product::new(Sku::parse(sku).unwrap(), sku, "", Money::new(cents, currency).unwrap(), Some(5), None).unwrap()
    }

    #[test]
    fn set_quantity_plans_reserve_then_release() {
        let now = Timestamp::from_millis(0);
        let mut cart = Cart::new(CartId::new());
        let p = product("A", 250, Currency::EUR);
        let LineChange::Reserve { hold_id, qty } = cart.plan_set_quantity(&p, 2, now).unwrap() else { panic!() };
        cart.apply_reserved(&p, qty, hold_id, Timestamp::from_millis(10));
        assert_eq!(cart.total().unwrap().unwrap().amount(), 500);
        // Resizing keeps the hold id.
        assert_eq!(cart.plan_set_quantity(&p, 3, now).unwrap(), LineChange::Reserve { hold_id, qty: 3 });
        assert_eq!(cart.plan_set_quantity(&p, 0, now).unwrap(), LineChange::Release { hold_id });
        assert_eq!(cart.plan_set_quantity(&p, 6, now), Err(CartError::LimitExceeded { max_per_order: 5 }));
    }

    #[test]
    fn price_snapshot_survives_catalog_change() {
        let mut cart = Cart::new(CartId::new());
        let p = product("A", 250, Currency::EUR);
        cart.apply_reserved(&p, 1, HoldId::new(), Timestamp::EPOCH);
        let repriced = product("A", 999, Currency::EUR);
        let h = cart.lines[&p.sku].hold_id;
        cart.apply_reserved(&repriced, 2, h, Timestamp::EPOCH);
        assert_eq!(cart.lines[&p.sku].unit_price.amount(), 250);
    }

    /// A snapshot written when the lines were a `BTreeMap` decodes and encodes
    /// back byte for byte.
    #[test]
    fn an_old_snapshot_decodes_and_reencodes_identically() {
        let old = concat!(
            r#"{"id":"6f0b9d3e-1c2a-4b5d-9e8f-0a1b2c3d4e5f","lines":{"#,
            r#""A-1":{"sku":"A-1","title":"First","qty":2,"unit_price":{"amount":250,"currency":"EUR"},"#,
            r#""hold_id":"0c9a8b7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d","hold_expires_at":1700000000000},"#,
            r#""B-2":{"sku":"B-2","title":"Second","qty":1,"unit_price":{"amount":99,"currency":"EUR"},"#,
            r#""hold_id":"1d0b9c8e-7f6a-4b4c-9d3e-2f1a0b9c8d7e","hold_expires_at":1700000000001}},"#,
            r#""status":{"state":"open"}}"#
        );
        let cart: Cart = serde_json::from_str(old).unwrap();
        assert_eq!(cart.lines.len(), 2);
        assert_eq!(cart.lines[&Sku::parse("B-2").unwrap()].qty, 1);
        assert_eq!(serde_json::to_string(&cart).unwrap(), old);
        // And the lines encode as the map type they replaced would.
        let as_map: BTreeMap<Sku, CartLine> = cart.lines.values().map(|l| (l.sku.clone(), l.clone())).collect();
        assert_eq!(serde_json::to_string(&cart.lines).unwrap(), serde_json::to_string(&as_map).unwrap());
        let empty = r#"{"id":"6f0b9d3e-1c2a-4b5d-9e8f-0a1b2c3d4e5f","lines":{},"status":{"state":"open"}}"#;
        assert_eq!(serde_json::to_string(&serde_json::from_str::<Cart>(empty).unwrap()).unwrap(), empty);
    }

    #[test]
    fn lines_stay_in_sku_order_one_per_sku() {
        let mut cart = Cart::new(CartId::new());
        for (sku, qty) in [("C", 1), ("A", 2), ("B", 3), ("A", 4)] {
            cart.apply_reserved(&product(sku, 1, Currency::EUR), qty, HoldId::new(), Timestamp::EPOCH);
        }
        let got: Vec<_> = cart.lines.values().map(|l| (l.sku.as_str().to_owned(), l.qty)).collect();
        assert_eq!(got, [("A".to_owned(), 4), ("B".to_owned(), 3), ("C".to_owned(), 1)]);
        assert!(cart.apply_released(&Sku::parse("B").unwrap()).is_some());
        assert!(cart.apply_released(&Sku::parse("B").unwrap()).is_none());
        assert_eq!(cart.lines.len(), 2);
    }

    #[test]
    fn one_currency_per_cart_and_frozen_after_checkout() {
        let now = Timestamp::EPOCH;
        let mut cart = Cart::new(CartId::new());
        let eur = product("A", 1, Currency::EUR);
        cart.apply_reserved(&eur, 1, HoldId::new(), now);
        assert_eq!(cart.plan_set_quantity(&product("B", 1, Currency::USD), 1, now), Err(CartError::CurrencyMismatch));
        let order = OrderId::new();
        cart.mark_checked_out(order, "k".into());
        assert_eq!(cart.plan_set_quantity(&eur, 2, now), Err(CartError::CheckedOut(order)));
        assert_eq!(Cart::new(CartId::new()).ensure_checkout_ready(), Err(CartError::Empty));
    }
}
