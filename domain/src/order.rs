//! Orders: what a checkout wrote to the journal.

use serde::{Deserialize, Serialize};

use crate::{Cart, CartError, CartId, HoldId, Money, OrderId, Sku, StockFactKind, Timestamp};

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The SKU bought; the line's `Sold` fact goes to this SKU.
    pub sku: Sku,
    /// The product's title as its cart line had it (taken when the line was added).
    pub title: String,
    /// Units bought: the cart line's quantity at checkout.
    pub qty: u32,
    /// Unit price (the cart's price snapshot).
    pub unit_price: Money,
    /// `unit_price * qty`.
    pub line_total: Money,
    /// The hold these units came from.
    pub hold_id: HoldId,
}

/// A placed, paid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Time-ordered (v7) id, also the cursor orders are paged by.
    pub id: OrderId,
    /// The cart it came from.
    pub cart_id: CartId,
    /// Lines, in SKU order.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines.
    pub total: Money,
    /// Where to send the receipt.
    pub email: Option<String>,
    /// The payment provider's authorization reference.
    pub payment_ref: String,
    /// The checkout request's `Idempotency-Key`; unique across orders.
    pub idempotency_key: String,
    /// When it was placed.
    pub created_at: Timestamp,
}

impl Order {
    /// Builds the order for `cart` (which must be ready to check out).
    pub fn from_cart(
        cart: &Cart,
        id: OrderId,
        idempotency_key: String,
        email: Option<String>,
        payment_ref: String,
        created_at: Timestamp,
    ) -> Result<Order, CartError> {
        cart.ensure_checkout_ready()?;
        let total = cart.total()?.ok_or(CartError::Empty)?;
        let lines = cart
            .lines
            .values()
            .map(|l| {
                Ok(OrderLine {
                    sku: l.sku.clone(),
                    title: l.title.clone(),
                    qty: l.qty,
                    unit_price: l.unit_price,
                    line_total: l.unit_price.checked_mul(l.qty)?,
                    hold_id: l.hold_id,
                })
            })
            .collect::<Result<Vec<_>, CartError>>()?;
        Ok(Order { id, cart_id: cart.id, lines, total, email, payment_ref, idempotency_key, created_at })
    }

    /// The `Sold` fact each line implies, by SKU.
    pub fn sold_facts(&self) -> impl Iterator<Item = (&Sku, StockFactKind)> + '_ {
        self.lines.iter().map(|l| (&l.sku, StockFactKind::Sold { order: self.id, hold: l.hold_id, qty: l.qty }))
    }
}

/// A checkout request, already validated by the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// What the payment provider authorizes the amount against.
    pub payment_token: String,
    /// Where the receipt goes, if the buyer gave one; kept on the order.
    pub email: Option<String>,
    /// The request's `Idempotency-Key`: the same key on the same cart replays the
    /// order instead of placing another.
    pub idempotency_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Currency, Product};

    #[test]
    fn order_from_cart_copies_lines_and_totals() {
        let mut cart = Cart::new(CartId::new());
        for (sku, cents, qty) in [("A", 250, 2), ("B", 100, 1)] {
            let p =
                Product::new(Sku::parse(sku).unwrap(), sku, "", Money::new(cents, Currency::EUR).unwrap(), None, None)
                    .unwrap();
            cart.apply_reserved(&p, qty, HoldId::new(), Timestamp::EPOCH);
        }
        let o = Order::from_cart(&cart, OrderId::new(), "k".into(), None, "pay_1".into(), Timestamp::EPOCH).unwrap();
        assert_eq!(o.total.amount(), 600);
        assert_eq!(o.lines.len(), 2);
        assert_eq!(o.sold_facts().count(), 2);
        let empty = Cart::new(CartId::new());
        assert_eq!(
            Order::from_cart(&empty, OrderId::new(), "k".into(), None, "p".into(), Timestamp::EPOCH),
            Err(CartError::Empty)
        );
    }
}
