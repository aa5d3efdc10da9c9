//! In-process fallbacks for the HTTP layer's shared-state ports (idempotency keys,
//! rate limits) when no Redis is configured. Single node only: every node keeps its own state and
//! nothing survives a restart. They behave exactly like the Redis adapters
//! ([`crate::redis`]) and pass the same suite (`persistence/tests/edge_conformance.rs`).
//!
//! Memory stays bounded: entries carry an expiry instant, lookups ignore expired
//! ones, and the map is swept whenever it has doubled since the last sweep (so the
//! sweeps cost O(1) amortised per operation and the map never holds more than about
//! twice the live entries). Time is `tokio::time::Instant`, so tests may pause it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use flashcore_http_ports::idempotency::Entry;
use flashcore_http_ports::rate_limit::Gcra;
use flashcore_http_ports::{
    IdempotencyClaim, IdempotencyStore, Quota, RateDecision, RateLimiter, StoreError, StoredResponse,
};
use tokio::time::Instant;

use crate::sync::lock;

/// Below this size a map is never swept (sweeping tiny maps buys nothing).
const MIN_SWEEP_LEN: usize = 1024;

/// A map whose entries expire, swept when it has doubled since the last sweep.
#[derive(Debug)]
struct ExpiringMap<V> {
    entries: HashMap<String, (V, Instant)>,
    /// The size at which the next insert sweeps expired entries.
    sweep_at: usize,
}

impl<V> Default for ExpiringMap<V> {
    fn default() -> Self {
        ExpiringMap { entries: HashMap::new(), sweep_at: MIN_SWEEP_LEN }
    }
}

impl<V> ExpiringMap<V> {
    /// The live value under `key` (an expired one is dropped on the way).
    fn get_mut(&mut self, key: &str, now: Instant) -> Option<&mut V> {
        if self.entries.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.entries.remove(key);
        }
        self.entries.get_mut(key).map(|(v, _)| v)
    }

    fn insert(&mut self, key: &str, value: V, expires: Instant, now: Instant) {
        self.entries.insert(key.to_owned(), (value, expires));
        if self.entries.len() >= self.sweep_at {
            self.sweep(now);
        }
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops every expired entry and sets the next sweep at twice the survivors.
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, (_, exp)| *exp > now);
        self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP_LEN);
        if self.entries.capacity() > self.sweep_at * 2 {
            self.entries.shrink_to(self.sweep_at);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Idempotency keys in memory, for a single node.
#[derive(Debug, Default)]
pub struct LocalIdempotency(Mutex<ExpiringMap<Entry>>);

#[async_trait]
impl IdempotencyStore for LocalIdempotency {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        lock_ttl: Duration,
    ) -> Result<IdempotencyClaim, StoreError> {
        let now = Instant::now();
        let mut map = lock(&self.0);
        if let Some(found) = map.get_mut(key, now) {
            return Ok(found.clone().answer(fingerprint));
        }
        let entry = Entry::Running { owner: owner.to_owned(), fingerprint: fingerprint.to_owned() };
        map.insert(key, entry, expiry(now, lock_ttl), now);
        Ok(IdempotencyClaim::Acquired)
    }

    async fn complete(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut map = lock(&self.0);
        let fingerprint = match map.get_mut(key, now) {
            Some(Entry::Running { owner: o, fingerprint }) if o == owner => std::mem::take(fingerprint),
            _ => return Ok(()),
        };
        let entry = Entry::Done { fingerprint, response: response.clone() };
        map.insert(key, entry, expiry(now, ttl), now);
        Ok(())
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut map = lock(&self.0);
        if map.get_mut(key, now).is_some_and(|e| e.is_running_for(owner)) {
            map.remove(key);
        }
        Ok(())
    }
}

/// `now + ttl`, at least 1 ms ahead (Redis' `PX` refuses 0) and saturating.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    let ttl = ttl.max(Duration::from_millis(1));
    now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// GCRA rate limits in memory, for a single node. Each key holds its
/// theoretical arrival time and expires when that passes (an idle key is the same
/// as no key).
#[derive(Debug, Default)]
pub struct LocalRateLimiter(Mutex<ExpiringMap<Instant>>);

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, StoreError> {
        let gcra = Gcra::new(quota);
        let now = Instant::now();
        let mut map = lock(&self.0);
        let tat = map.get_mut(key, now).map_or(now, |tat| (*tat).max(now));
        // Whole microseconds, like the script (which works on Redis `TIME`).
        let ahead = u64::try_from(tat.duration_since(now).as_micros()).unwrap_or(u64::MAX);
        let decision = gcra.decide(ahead);
        if decision == RateDecision::Allowed {
            let new_tat = tat + Duration::from_micros(gcra.interval_us);
            map.insert(key, new_tat, new_tat, now);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn response() -> StoredResponse {
        StoredResponse { status: 201, headers: vec![], body: "{}".into() }
    }

    #[tokio::test(start_paused = true)]
    async fn expired_idempotency_entries_are_swept_so_the_map_stays_bounded() {
        let store = LocalIdempotency::default();
        for round in 0..10 {
            for i in 0..1000 {
                let key = format!("k-{round}-{i}");
                store.claim(&key, "fp", "o", Duration::from_millis(100)).await.unwrap();
                store.complete(&key, "o", &response(), Duration::from_millis(100)).await.unwrap();
            }
            tokio::time::advance(Duration::from_millis(200)).await;
        }
        // 10 000 keys were written, but at most ~2x the live ones (1 000) are kept.
        let len = lock(&store.0).len();
        assert!(len <= 2 * MIN_SWEEP_LEN, "{len} entries kept");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_rate_limit_keys_are_swept_so_the_map_stays_bounded() {
        let limiter = LocalRateLimiter::default();
        let quota = Quota { per_second: 100, burst: 1 };
        for i in 0..20_000 {
            assert_eq!(limiter.check(&format!("client-{i}"), quota).await.unwrap(), RateDecision::Allowed);
            if i % 1000 == 999 {
                tokio::time::advance(Duration::from_millis(20)).await;
            }
        }
        let len = lock(&limiter.0).len();
        assert!(len <= 2 * MIN_SWEEP_LEN, "{len} entries kept");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_entry_is_gone_even_before_a_sweep() {
        let store = LocalIdempotency::default();
        store.claim("k", "fp", "o", Duration::from_millis(50)).await.unwrap();
        tokio::time::advance(Duration::from_millis(51)).await;
        assert_eq!(store.claim("k", "other", "o2", Duration::from_secs(1)).await.unwrap(), IdempotencyClaim::Acquired);
    }
}
