//! Money in integer minor units. Never floats.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a money value or operation was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MoneyError {
    /// Not a three-letter upper-case ISO 4217 code.
    #[error("currency must be a three-letter ISO 4217 code such as EUR")]
    InvalidCurrency,
    /// Amounts in different currencies were combined.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    /// The result does not fit.
    #[error("amount out of range")]
    Overflow,
    /// Prices are never negative.
    #[error("amount must not be negative")]
    Negative,
}

/// An ISO 4217 currency code such as `EUR`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Euro; the demo catalog's currency.
    pub const EUR: Currency = Currency(*b"EUR");
    /// US dollar; a cart holds one currency, so it never mixes with `EUR` lines.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a three-letter upper-case code.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::InvalidCurrency)
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A non-negative amount in minor units (cents) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    /// `amount` minor units of `currency`; negative amounts are rejected.
    pub fn new(amount: i64, currency: Currency) -> Result<Self, MoneyError> {
        if amount < 0 {
            return Err(MoneyError::Negative);
        }
        Ok(Money { amount, currency })
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Money { amount: 0, currency }
    }

    /// The amount in minor units (cents), never negative.
    pub const fn amount(&self) -> i64 {
        self.amount
    }

    /// The currency `amount` is counted in; sums only combine equal ones.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// `self + other`, same currency only.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(self.currency, other.currency));
        }
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }

    /// `self * n`.
    pub fn checked_mul(self, n: u32) -> Result<Money, MoneyError> {
        let amount = self.amount.checked_mul(i64::from(n)).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount, currency: self.currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_parsing_is_strict() {
        assert_eq!(Currency::parse("EUR"), Ok(Currency::EUR));
        for bad in ["eur", "EU", "EURO", "", "E1R"] {
            assert_eq!(Currency::parse(bad), Err(MoneyError::InvalidCurrency));
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(150, Currency::EUR).unwrap();
        assert_eq!(a.checked_mul(3).unwrap().amount(), 450);
        assert_eq!(a.checked_add(a).unwrap().amount(), 300);
        let usd = Money::new(1, Currency::USD).unwrap();
        assert!(matches!(a.checked_add(usd), Err(MoneyError::CurrencyMismatch(..))));
        let big = Money::new(i64::MAX, Currency::EUR).unwrap();
        assert_eq!(big.checked_mul(2), Err(MoneyError::Overflow));
        assert_eq!(Money::new(-1, Currency::EUR), Err(MoneyError::Negative));
    }
}
