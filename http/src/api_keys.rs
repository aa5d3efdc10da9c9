//! Operator API keys: issued as `fck_<43 base64url characters>`, stored only as
//! their SHA-256 (neither the key nor its hash is ever logged), and checked
//! against the store through a short cache, so a revoked key stops working
//! within [`KEY_CACHE_TTL`]. A bootstrap admin key (`FLASHCORE_ADMIN_KEY`) is
//! checked without the store.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use flashcore_http_ports::{ApiKeyRecord, ApiKeyStore, Role, StoreError};
use sha2::{Digest, Sha256};

/// Every operator key starts with this, so it is never mistaken for a cart token.
pub const API_KEY_PREFIX: &str = "fck_";

/// How long a key lookup is trusted before the store is asked again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(10);

/// Most cached lookups kept (the cache is cleared when full: unknown keys can't grow it without bound).
const KEY_CACHE_MAX: usize = 10_000;

/// SHA-256 of a key.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: `(secret, its record)`. The secret is shown once and never stored.
pub fn new_key(name: &str, role: Role) -> (String, ApiKeyRecord) {
    let bytes: [u8; 32] = rand::random();
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let record = ApiKeyRecord {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        role,
        key_sha256: key_hash(&secret),
        created_at: flashcore_actors::clock::now(),
        revoked: false,
    };
    (secret, record)
}

/// A key's id and role, or `None` for a hash no live key has.
type Lookup = Option<(String, Role)>;

/// Checks operator keys against the store (once it is open) and the bootstrap key.
pub struct ApiKeys {
    store: OnceLock<Arc<dyn ApiKeyStore>>,
    bootstrap: Option<[u8; 32]>,
    cache: DashMap<[u8; 32], (Lookup, Instant)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").field("bootstrap", &self.bootstrap.is_some()).finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Keys checked against `bootstrap_admin` (if any) and, once set, a store.
    pub fn new(bootstrap_admin: Option<&str>) -> Self {
        ApiKeys { store: OnceLock::new(), bootstrap: bootstrap_admin.map(key_hash), cache: DashMap::new() }
    }

    /// Connects the store (done when start-up has opened it).
    pub fn set_store(&self, store: Arc<dyn ApiKeyStore>) {
        let _ = self.store.set(store);
    }

    /// The store, once open.
    pub fn store(&self) -> Option<&Arc<dyn ApiKeyStore>> {
        self.store.get()
    }

    /// Forgets cached lookups (after a revocation on this node).
    pub fn forget(&self) {
        self.cache.clear();
    }

    /// The id and role of `secret`, `None` if it is not a live key. `Err` if the
    /// store cannot be asked (not open yet, or unreachable).
    pub async fn authenticate(&self, secret: &str) -> Result<Lookup, StoreError> {
        let hash = key_hash(secret);
        if self.bootstrap.is_some_and(|b| constant_time_eq(&b, &hash)) {
            return Ok(Some(("bootstrap".into(), Role::Admin)));
        }
        if let Some(hit) = self.cache.get(&hash)
            && hit.1.elapsed() < KEY_CACHE_TTL
        {
            return Ok(hit.0.clone());
        }
        let store = self.store.get().ok_or_else(|| StoreError::Unavailable("the key store is not open yet".into()))?;
        let found = store.find_key(&hash).await?.filter(|k| !k.revoked).map(|k| (k.id, k.role));
        if self.cache.len() >= KEY_CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(hash, (found.clone(), Instant::now()));
        Ok(found)
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_stored_only_as_hashes() {
        let (a, ra) = new_key("ci", Role::Admin);
        let (b, _) = new_key("ci", Role::Admin);
        assert!(a.starts_with(API_KEY_PREFIX) && a.len() == API_KEY_PREFIX.len() + 43);
        assert_ne!(a, b);
        assert_eq!(ra.key_sha256, key_hash(&a));
        assert!(!format!("{ra:?}").contains(&a));
    }

    #[tokio::test]
    async fn the_bootstrap_key_is_an_admin_and_nothing_else_is_without_a_store() {
        let keys = ApiKeys::new(Some("fck_bootstrap-bootstrap-bootstrap-bootstrap"));
        assert_eq!(
            keys.authenticate("fck_bootstrap-bootstrap-bootstrap-bootstrap").await.unwrap(),
            Some(("bootstrap".into(), Role::Admin))
        );
        assert!(keys.authenticate("fck_other").await.is_err(), "no store yet: cannot say");
    }
}
