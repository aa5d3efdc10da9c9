//! Idempotency keys (the IETF `Idempotency-Key` draft): the port, and the entry
//! every adapter stores under a key, with the one rule for what it answers.

use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ports::StoreError;
use serde::{Deserialize, Serialize};

/// A response kept under an idempotency key, replayed to retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The status code sent, and replayed.
    pub status: u16,
    /// Headers worth replaying (content type, location, …), in order.
    pub headers: Vec<(String, String)>,
    /// The body, as sent (responses are UTF-8 JSON).
    pub body: String,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was free: the caller owns it and must `complete` or `release` it.
    Acquired,
    /// A request with this key and the same fingerprint is still running (409).
    InProgress,
    /// The key was used for a request with another fingerprint (422).
    Mismatch,
    /// The key's request finished: replay this response.
    Completed(StoredResponse),
}

/// Idempotency keys. Keys are already scoped by the caller (per client);
/// adapters add their own namespace prefix.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for a request with `fingerprint`, as `owner` (unique per
    /// attempt). A claim never completed lapses after `lock_ttl` (its node died).
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lock_ttl: Duration,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Stores the response of `owner`'s claim, kept for `ttl`. Does nothing if
    /// `owner` no longer holds the claim.
    async fn complete(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Gives `owner`'s claim up (the request failed in a way a retry may fix).
    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError>;
}

/// What a key holds, in every adapter. Serialized (by the Redis adapter) as
/// `{"state":"running","owner":…,"fingerprint":…}` or
/// `{"state":"done","fingerprint":…,"response":…}`: the Redis scripts rely on
/// that field order (see [`Entry::running_prefix`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Entry {
    /// `owner`'s request is running.
    Running {
        /// The attempt that claimed the key.
        owner: String,
        /// The request's fingerprint (method, path and body).
        fingerprint: String,
    },
    /// The request finished; its outcome is kept for replays.
    Done {
        /// The finished request's fingerprint; only a retry that matches it is replayed.
        fingerprint: String,
        /// The response it got, replayed to every matching retry.
        response: StoredResponse,
    },
}

impl Entry {
    /// What a claim for a request with `fingerprint` answers when it finds this
    /// entry: another request's key is a mismatch, a running one is in progress,
    /// a finished one is replayed.
    pub fn answer(self, fingerprint: &str) -> IdempotencyClaim {
        match self {
            Entry::Running { fingerprint: f, .. } | Entry::Done { fingerprint: f, .. } if f != fingerprint => {
                IdempotencyClaim::Mismatch
            }
            Entry::Running { .. } => IdempotencyClaim::InProgress,
            Entry::Done { response, .. } => IdempotencyClaim::Completed(response),
        }
    }

    /// Whether this is `owner`'s running claim (which only it may complete or release).
    pub fn is_running_for(&self, owner: &str) -> bool {
        matches!(self, Entry::Running { owner: o, .. } if o == owner)
    }

    /// How `owner`'s serialized running entry begins, up to its fingerprint:
    /// `{"state":"running","owner":"…","fingerprint":`. The owner is JSON-quoted,
    /// so no other owner's entry begins the same way.
    pub fn running_prefix(owner: &str) -> String {
        // Encoding a string cannot fail; the fallback is never taken.
        let quoted = serde_json::to_string(owner).unwrap_or_default();
        format!(r#"{{"state":"running","owner":{quoted},"fingerprint":"#)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn done(fingerprint: &str) -> Entry {
        let response = StoredResponse { status: 201, headers: vec![], body: "{}".into() };
        Entry::Done { fingerprint: fingerprint.into(), response }
    }

    #[test]
    fn a_claim_is_answered_by_the_fingerprint_then_the_state() {
        let running = Entry::Running { owner: "o".into(), fingerprint: "a".into() };
        assert_eq!(running.clone().answer("a"), IdempotencyClaim::InProgress);
        assert_eq!(running.answer("b"), IdempotencyClaim::Mismatch);
        assert!(matches!(done("a").answer("a"), IdempotencyClaim::Completed(r) if r.status == 201));
        assert_eq!(done("a").answer("b"), IdempotencyClaim::Mismatch);
    }

    #[test]
    fn only_the_owner_holds_a_running_claim() {
        let running = Entry::Running { owner: "o".into(), fingerprint: "a".into() };
        assert!(running.is_running_for("o"));
        assert!(!running.is_running_for("p"));
        assert!(!done("a").is_running_for("o"));
    }

    /// The Redis scripts find an owner's entry by its prefix and take the rest
    /// (but the closing brace) as the fingerprint's JSON.
    #[test]
    fn a_running_entry_is_its_owners_prefix_then_the_fingerprint() {
        for owner in ["o-\"1", "plain", "back\\slash", "ctl\u{1}\n"] {
            let entry = Entry::Running { owner: owner.into(), fingerprint: "ab12".into() };
            let json = serde_json::to_string(&entry).unwrap();
            let prefix = Entry::running_prefix(owner);
            assert!(json.starts_with(&prefix), "{json} does not start with {prefix}");
            assert_eq!(&json[prefix.len()..], "\"ab12\"}");
        }
        let json = serde_json::to_string(&Entry::Running { owner: "o-1".into(), fingerprint: "f".into() }).unwrap();
        assert!(!json.starts_with(&Entry::running_prefix("o-")));
    }
}
