//! Operator API keys, as the store keeps them.

use async_trait::async_trait;
use flashcore_actors::ports::StoreError;
use serde::{Deserialize, Serialize};

/// What an operator API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read operator views (`GET /v1/admin/*`, any order).
    Operator,
    /// Everything an operator may, plus writes (`PUT`/`POST /v1/admin/*`).
    Admin,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses `operator` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An operator API key as stored: only the SHA-256 of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id (a UUID, as text): what logs and the admin API name a key by.
    pub id: String,
    /// A human label ("ci", "alice").
    pub name: String,
    /// What the key may do.
    pub role: Role,
    /// SHA-256 of the full secret key: enough to check a key, useless to forge one.
    pub key_sha256: [u8; 32],
    /// When it was created (ms since the epoch).
    pub created_at: flashcore_domain::Timestamp,
    /// Revoked keys authenticate nothing; they stay listed for the audit trail.
    pub revoked: bool,
}

/// Where operator API keys are kept: by hash, never the secret.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key (its id and hash must be unique).
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_key(&self, key_sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, revoked ones included, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key; false if there is no such key.
    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError>;
}
