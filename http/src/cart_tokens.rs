//! Cart tokens: HMAC-signed capabilities, checked without a lookup.
//!
//! A token is `<cart_id>.<base64url(HMAC-SHA256(key, "cart:" + cart_id))>`. Whoever
//! holds it may act on that cart and read the orders it placed; nothing is stored
//! server-side, so any node with the key can check it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flashcore_domain::CartId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Issues and checks cart tokens. Holds the HMAC already keyed (the key's inner
/// and outer pads computed once), so a check costs two SHA-256 blocks, not four.
#[derive(Clone)]
pub struct CartTokens {
    keyed: HmacSha256,
}

impl std::fmt::Debug for CartTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CartTokens(..)")
    }
}

impl CartTokens {
    /// Tokens signed with `key` (at least 32 bytes of secret recommended).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        // HMAC accepts keys of any length; this cannot fail.
        let keyed = <HmacSha256 as Mac>::new_from_slice(&key.into()).unwrap_or_else(|_| unreachable!());
        CartTokens { keyed }
    }

    /// Tokens signed with a random key: valid only for this process's lifetime.
    pub fn random() -> Self {
        let key: [u8; 32] = rand::random();
        CartTokens::new(key.to_vec())
    }

    fn mac(&self, cart: &CartId) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"cart:");
        mac.update(cart.as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
        mac
    }

    /// The token for `cart`.
    pub fn issue(&self, cart: &CartId) -> String {
        let sig = self.mac(cart).finalize().into_bytes();
        format!("{cart}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The cart a token grants, if the signature is valid (constant-time check).
    pub fn verify(&self, token: &str) -> Option<CartId> {
        let (id, sig) = token.split_once('.')?;
        let cart = CartId::parse(id).ok()?;
        // A signature is one SHA-256 output (the decoder wants room for its
        // estimate of 33 bytes); anything much longer fails to decode here.
        let mut raw = [0u8; 48];
        let len = URL_SAFE_NO_PAD.decode_slice(sig, &mut raw).ok()?;
        self.mac(&cart).verify_slice(&raw[..len]).ok()?;
        Some(cart)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_cart_and_key() {
        let t = CartTokens::new(b"k".to_vec());
        let cart = CartId::new();
        let token = t.issue(&cart);
        assert_eq!(t.verify(&token), Some(cart));
        assert_eq!(CartTokens::new(b"other".to_vec()).verify(&token), None);
        let other = CartId::new();
        let forged = format!("{other}.{}", token.split_once('.').unwrap().1);
        assert_eq!(t.verify(&forged), None);
        for junk in ["", ".", "x.y", &format!("{cart}."), &format!("{cart}.!!!")] {
            assert_eq!(t.verify(junk), None, "{junk}");
        }
    }
}
