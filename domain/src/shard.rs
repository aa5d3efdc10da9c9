//! Shards: every SKU and every cart belongs to one of a fixed number of shards by
//! a stable hash, and a node writes only what belongs to shards it holds the
//! lease of. One node holding every shard is the single-node case.
//!
//! The hash is FNV-1a over a kind tag and the id's text: stable across versions,
//! platforms and processes (unlike `std`'s randomly keyed hasher), so every node
//! and every release agrees on where an entity lives.

use crate::ids::{CartId, Sku};

/// A shard number, `0..shards`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(u32);

impl ShardId {
    /// A shard by its stored number (its range is checked where the count is
    /// known, see [`Shards::shard`]).
    pub const fn from_number(n: u32) -> Self {
        ShardId(n)
    }

    /// The number, for storage and display.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a shard count was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the number of shards must be 1 to {max}, not {got}", max = Shards::MAX)]
pub struct ShardsError {
    got: u64,
}

/// How many shards the store is divided into; the same on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards(u32);

impl Shards {
    /// The most shards a store may have.
    pub const MAX: u32 = 65_536;

    /// `n` shards, 1 to [`Shards::MAX`].
    pub fn new(n: u64) -> Result<Self, ShardsError> {
        match u32::try_from(n) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Shards(v)),
            _ => Err(ShardsError { got: n }),
        }
    }

    /// How many shards, 1 to [`Shards::MAX`]; shard numbers run from 0 to one less.
    pub fn count(self) -> u32 {
        self.0
    }

    /// Every shard, in order.
    pub fn all(self) -> impl Iterator<Item = ShardId> {
        (0..self.0).map(ShardId)
    }

    /// The shard `n`, if it is one of these.
    pub fn shard(self, n: u32) -> Option<ShardId> {
        (n < self.0).then_some(ShardId(n))
    }

    /// The shard of an entity of kind `tag` (`"sku"`, `"cart"`) with id text `id`.
    pub fn of(self, tag: &str, id: &str) -> ShardId {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut h = OFFSET;
        for b in tag.bytes().chain([b':']).chain(id.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        ShardId((h % u64::from(self.0)) as u32)
    }

    /// The shard of a SKU.
    pub fn of_sku(self, sku: &Sku) -> ShardId {
        self.of(SKU_TAG, sku.as_str())
    }

    /// The shard of a cart (and of the order it becomes).
    pub fn of_cart(self, cart: CartId) -> ShardId {
        // The hyphenated text (what `to_string` gives), written on the stack:
        // this runs for every cart request.
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.of(CART_TAG, cart.as_uuid().hyphenated().encode_lower(&mut text))
    }
}

/// The kind tag of SKUs in [`Shards::of`].
pub const SKU_TAG: &str = "sku";
/// The kind tag of carts in [`Shards::of`].
pub const CART_TAG: &str = "cart";

impl Default for Shards {
    /// 256 shards: enough to spread over many nodes, few enough to lease cheaply.
    fn default() -> Self {
        Shards(256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_in_range() {
        let s = Shards::new(256).unwrap();
        // Pinned: a change here moves every entity to another shard.
        assert_eq!(s.of("sku", "FLASH-SNEAKER-01"), s.of_sku(&Sku::parse("FLASH-SNEAKER-01").unwrap()));
        assert_eq!(s.of("sku", "FLASH-SNEAKER-01").get(), pinned("sku:FLASH-SNEAKER-01") % 256);
        assert_ne!(s.of("sku", "A"), s.of("cart", "A"), "the kind is part of the key");
        let cart = CartId::parse("8b0ae3ca-0a9a-4c2e-9d7f-a5707e0c1b2d").unwrap();
        assert_eq!(s.of_cart(cart).get(), pinned("cart:8b0ae3ca-0a9a-4c2e-9d7f-a5707e0c1b2d") % 256);
        for _ in 0..1000 {
            let cart = CartId::new();
            assert_eq!(s.of_cart(cart), s.of("cart", &cart.to_string()), "the cart's text is its hyphenated id");
        }
        let one = Shards::new(1).unwrap();
        assert_eq!(one.of("cart", "anything"), ShardId(0));
        for i in 0..1000 {
            assert!(s.of("cart", &i.to_string()).get() < 256);
        }
    }

    /// FNV-1a 64 written out independently of [`Shards::of`].
    fn pinned(text: &str) -> u32 {
        let mut h: u64 = 14_695_981_039_346_656_037;
        for b in text.as_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(1_099_511_628_211);
        }
        (h % 256) as u32
    }

    #[test]
    fn shard_counts_are_bounded() {
        assert!(Shards::new(0).is_err());
        assert!(Shards::new(u64::from(Shards::MAX) + 1).is_err());
        assert_eq!(Shards::new(3).unwrap().all().count(), 3);
        assert_eq!(Shards::new(3).unwrap().shard(3), None);
    }

    #[test]
    fn shards_spread_entities_evenly_enough() {
        let s = Shards::default();
        let mut counts = vec![0u32; 256];
        for _ in 0..25_600 {
            counts[s.of_cart(CartId::new()).get() as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (40..=180).contains(&c)), "{counts:?}");
    }
}
