//! Cart tokens: HMAC-signed capabilities, checked without a lookup.
//!
//! A token is `<cart_id>.<base64url(HMAC-SHA256(key, "cart:" + cart_id))>`. Whoever
//! holds it may act on that cart and read the orders it placed; nothing is stored
//! server-side, so any node with the key can check it.
//!
//! Waiting-room passes (DESIGN §12) are signed with the same key under another
//! label: `<expires_ms>.<base64url(HMAC-SHA256(key, "pass:" + cart_id + ":" +
//! sku + ":" + expires_ms))>`. A pass is bound to one cart and one SKU, carries
//! its own expiry, and is checked without a lookup.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flashcore_domain::{CartId, Sku, Timestamp};
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

/// Why a waiting-room pass was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassError {
    /// Not a pass, or not one for this cart and SKU.
    Invalid,
    /// A genuine pass whose time is up.
    Expired,
}

impl CartTokens {
    fn pass_mac(&self, cart: &CartId, sku: &Sku, expires_ms: u64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(b"pass:");
        mac.update(cart.as_uuid().hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()).as_bytes());
        mac.update(b":");
        mac.update(sku.as_str().as_bytes());
        mac.update(b":");
        mac.update(expires_ms.to_string().as_bytes());
        mac
    }

    /// A pass letting `cart` add `sku` until `expires`.
    pub fn issue_pass(&self, cart: &CartId, sku: &Sku, expires: Timestamp) -> String {
        let sig = self.pass_mac(cart, sku, expires.as_millis()).finalize().into_bytes();
        format!("{}.{}", expires.as_millis(), URL_SAFE_NO_PAD.encode(sig))
    }

    /// Checks that `pass` lets `cart` add `sku` at `now` (constant-time check).
    pub fn verify_pass(&self, pass: &str, cart: &CartId, sku: &Sku, now: Timestamp) -> Result<(), PassError> {
        let (expires, sig) = pass.split_once('.').ok_or(PassError::Invalid)?;
        if expires.is_empty() || expires.len() > 20 || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PassError::Invalid);
        }
        let expires_ms: u64 = expires.parse().map_err(|_| PassError::Invalid)?;
        let mut raw = [0u8; 48];
        let len = URL_SAFE_NO_PAD.decode_slice(sig, &mut raw).map_err(|_| PassError::Invalid)?;
        self.pass_mac(cart, sku, expires_ms).verify_slice(&raw[..len]).map_err(|_| PassError::Invalid)?;
        if now.as_millis() >= expires_ms { Err(PassError::Expired) } else { Ok(()) }
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

    #[test]
    fn passes_are_bound_to_cart_sku_and_time() {
        let t = CartTokens::new(b"k".to_vec());
        let (cart, sku) = (CartId::new(), Sku::parse("SNEAKER").unwrap());
        let at = Timestamp::from_millis(10_000);
        let pass = t.issue_pass(&cart, &sku, at);
        assert_eq!(t.verify_pass(&pass, &cart, &sku, Timestamp::from_millis(9_999)), Ok(()));
        assert_eq!(t.verify_pass(&pass, &cart, &sku, at), Err(PassError::Expired));
        let early = Timestamp::from_millis(1);
        assert_eq!(t.verify_pass(&pass, &CartId::new(), &sku, early), Err(PassError::Invalid));
        assert_eq!(t.verify_pass(&pass, &cart, &Sku::parse("OTHER").unwrap(), early), Err(PassError::Invalid));
        assert_eq!(CartTokens::new(b"x".to_vec()).verify_pass(&pass, &cart, &sku, early), Err(PassError::Invalid));
        let longer = format!("99999{}", pass);
        assert_eq!(t.verify_pass(&longer, &cart, &sku, early), Err(PassError::Invalid), "expiry is signed");
        for junk in ["", ".", "x.y", "1.", "-1.abc", &t.issue(&cart)] {
            assert_eq!(t.verify_pass(junk, &cart, &sku, early), Err(PassError::Invalid), "{junk}");
        }
    }
}
