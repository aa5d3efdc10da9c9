//! Catalog entries and the per-product purchase rules.

use serde::{Deserialize, Serialize};

use crate::{CartError, Money, Sku, Timestamp};

/// No cart line may hold more than this many units, whatever the product says.
pub const MAX_LINE_QUANTITY: u32 = 1_000;

/// Why a product definition was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// Titles are 1 to 200 characters.
    #[error("title must be 1 to 200 characters")]
    InvalidTitle,
    /// Descriptions are at most 2,000 characters.
    #[error("description must be at most 2000 characters")]
    InvalidDescription,
    /// `max_per_order` is 1 to [`MAX_LINE_QUANTITY`].
    #[error("max_per_order must be between 1 and {MAX_LINE_QUANTITY}")]
    InvalidMaxPerOrder,
}

/// A product as sold: what it is, what it costs and the rules of its sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The SKU code: the product's key, shared with its stock.
    pub sku: Sku,
    /// Display name, 1 to 200 characters; copied onto cart and order lines.
    pub title: String,
    /// Free-form text, at most 2,000 characters; may be empty.
    pub description: String,
    /// Price of one unit; carts snapshot it when a line is added.
    pub price: Money,
    /// Most units one order may contain, if limited.
    pub max_per_order: Option<u32>,
    /// Before this instant the product cannot be added to a cart.
    pub sale_starts_at: Option<Timestamp>,
}

impl Product {
    /// Validates and builds a product.
    pub fn new(
        sku: Sku,
        title: impl Into<String>,
        description: impl Into<String>,
        price: Money,
        max_per_order: Option<u32>,
        sale_starts_at: Option<Timestamp>,
    ) -> Result<Self, ProductError> {
        let title = title.into();
        let description = description.into();
        let title_len = title.chars().count();
        if title_len == 0 || title_len > 200 || title.trim().is_empty() {
            return Err(ProductError::InvalidTitle);
        }
        if description.chars().count() > 2_000 {
            return Err(ProductError::InvalidDescription);
        }
        if max_per_order.is_some_and(|m| m == 0 || m > MAX_LINE_QUANTITY) {
            return Err(ProductError::InvalidMaxPerOrder);
        }
        Ok(Product { sku, title, description, price, max_per_order, sale_starts_at })
    }

    /// Checks that `qty` units may be in one cart line at `now`.
    pub fn check_quantity(&self, qty: u32, now: Timestamp) -> Result<(), CartError> {
        if qty > MAX_LINE_QUANTITY {
            return Err(CartError::QuantityTooLarge { max: MAX_LINE_QUANTITY });
        }
        if let Some(max) = self.max_per_order
            && qty > max
        {
            return Err(CartError::LimitExceeded { max_per_order: max });
        }
        if let Some(starts) = self.sale_starts_at
            && qty > 0
            && now < starts
        {
            return Err(CartError::SaleNotStarted { starts_at: starts });
        }
        Ok(())
    }

    /// True once the sale has started (or when it has no start).
    pub fn on_sale(&self, now: Timestamp) -> bool {
        self.sale_starts_at.is_none_or(|s| now >= s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn product(max: Option<u32>, starts: Option<u64>) -> Product {
        Product::new(
            Sku::parse("P").unwrap(),
            "Thing",
            "",
            Money::new(100, Currency::EUR).unwrap(),
            max,
            starts.map(Timestamp::from_millis),
        )
        .unwrap()
    }

    #[test]
    fn validation_rejects_bad_definitions() {
        let sku = Sku::parse("P").unwrap();
        let price = Money::zero(Currency::EUR);
        assert_eq!(Product::new(sku.clone(), " ", "", price, None, None), Err(ProductError::InvalidTitle));
        assert_eq!(
            Product::new(sku.clone(), "t", "x".repeat(2001), price, None, None),
            Err(ProductError::InvalidDescription)
        );
        assert_eq!(Product::new(sku, "t", "", price, Some(0), None), Err(ProductError::InvalidMaxPerOrder));
    }

    #[test]
    fn quantity_rules() {
        let now = Timestamp::from_millis(1_000);
        assert_eq!(product(Some(2), None).check_quantity(3, now), Err(CartError::LimitExceeded { max_per_order: 2 }));
        assert_eq!(product(None, None).check_quantity(1001, now), Err(CartError::QuantityTooLarge { max: 1000 }));
        let later = product(None, Some(2_000));
        assert!(matches!(later.check_quantity(1, now), Err(CartError::SaleNotStarted { .. })));
        assert!(later.check_quantity(0, now).is_ok());
        assert!(later.check_quantity(1, Timestamp::from_millis(2_000)).is_ok());
    }
}
