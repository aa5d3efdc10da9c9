//! The ports the HTTP layer needs from its stores, beside the engine's own
//! (which `flashcore-actors` defines): idempotency keys and rate limits (state
//! every HTTP node shares: Redis in production, in-process when `REDIS_URL` is
//! unset) and the operators' API keys (in the database).
//!
//! No actor uses these, so they live here rather than in `flashcore-actors`;
//! `flashcore-http` uses them and `flashcore-persistence` implements them. The
//! pure rules that every adapter must agree on live beside their port: the GCRA
//! arithmetic ([`rate_limit::Gcra`]) and what an idempotency entry answers to a
//! claim ([`idempotency::Entry::answer`]).

pub mod api_keys;
pub mod idempotency;
pub mod rate_limit;

pub use api_keys::{ApiKeyRecord, ApiKeyStore, Role};
pub use flashcore_actors::ports::StoreError;
pub use idempotency::{IdempotencyClaim, IdempotencyStore, StoredResponse};
pub use rate_limit::{Quota, RateDecision, RateLimiter};
