//! Identifiers. Each parses from untrusted text and is valid by construction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// SKUs are 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
    #[error("a SKU is 1 to 64 characters of letters, digits, '-', '_' or '.'")]
    InvalidSku,
    /// The text is not a UUID.
    #[error("not a valid {0} id (expected a UUID)")]
    InvalidUuid(&'static str),
}

/// A stock-keeping unit code, e.g. `TSHIRT-RED-M`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Sku(String);

impl Sku {
    /// Longest SKU accepted, in characters (a SKU is ASCII, so bytes too).
    pub const MAX_LEN: usize = 64;

    /// Parses a SKU code.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok { Ok(Sku(s.to_owned())) } else { Err(IdError::InvalidSku) }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Sku {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sku::parse(s)
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Sku::parse(&s).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $label:literal, $new:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, unique id.
            pub fn new() -> Self {
                $name(Uuid::$new())
            }

            /// Parses the hyphenated UUID form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                Uuid::try_parse(s).map($name).map_err(|_| IdError::InvalidUuid($label))
            }

            /// The wrapped UUID, for callers that need its bytes or version.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Wraps an existing UUID (e.g. one read back from storage).
            pub const fn from_uuid(u: Uuid) -> Self {
                $name(u)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A shopping cart. Random (v4): knowing one cart id tells nothing about another.
    CartId, "cart", new_v4
);
uuid_id!(
    /// An order. Time-ordered (v7), so ids double as a stable pagination cursor.
    OrderId, "order", now_v7
);
uuid_id!(
    /// One reservation of stock on one SKU, owned by one cart line.
    HoldId, "hold", now_v7
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sku_accepts_codes_and_rejects_everything_else() {
        assert!(Sku::parse("TSHIRT-RED_M.2").is_ok());
        for bad in ["", " ", "a/b", "ä", "a b", &"x".repeat(65), "../etc"] {
            assert_eq!(Sku::parse(bad), Err(IdError::InvalidSku), "{bad:?}");
        }
        assert!(Sku::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn uuid_ids_round_trip_and_reject_garbage() {
        let id = CartId::new();
        assert_eq!(CartId::parse(&id.to_string()), Ok(id));
        assert_eq!(OrderId::parse("nope"), Err(IdError::InvalidUuid("order")));
    }

    #[test]
    fn sku_deserialization_validates() {
        assert!(serde_json::from_str::<Sku>("\"OK-1\"").is_ok());
        assert!(serde_json::from_str::<Sku>("\"not ok\"").is_err());
    }
}
