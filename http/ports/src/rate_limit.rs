//! Rate limits: the port, and the GCRA arithmetic every adapter shares.

use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ports::StoreError;

/// A rate: `per_second` sustained, with bursts of up to `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Sustained requests per second (at least 1).
    pub per_second: u32,
    /// Requests allowed at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// A rate limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Within the quota: the request proceeds and was counted.
    Allowed,
    /// Over the limit: retry after this long.
    Limited {
        /// How long until one more request would be allowed.
        retry_after: Duration,
    },
}

/// Admission control: GCRA per key (a client, a hot SKU).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request against `key` under `quota`.
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, StoreError>;
}

/// The generic cell rate algorithm for one quota, in whole microseconds.
///
/// Each key holds a theoretical arrival time `tat` (never before now). A
/// request that finds `tat` at most `tolerance` ahead passes and moves `tat` on
/// by `interval`; so from idle exactly `burst` requests pass at once, then one
/// every `interval`. A refused one may retry after `ahead - tolerance`. The
/// in-process limiter runs this; the Redis script is the same arithmetic on
/// Redis `TIME`, with these two numbers as its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// The emission interval `T = 1 s / per_second`.
    pub interval_us: u64,
    /// The burst tolerance `tau = T * (burst - 1)`.
    pub tolerance_us: u64,
}

impl Gcra {
    /// The parameters of `quota` (a zero rate or burst counts as 1).
    pub fn new(quota: Quota) -> Self {
        let per_second = u64::from(quota.per_second.max(1));
        let burst = u64::from(quota.burst.max(1));
        let interval_us = (1_000_000 / per_second).max(1);
        Gcra { interval_us, tolerance_us: interval_us.saturating_mul(burst - 1) }
    }

    /// The decision for a request that finds the key's `tat` `ahead_us` in the
    /// future; on `Allowed` the caller moves `tat` on by [`Gcra::interval_us`].
    pub fn decide(&self, ahead_us: u64) -> RateDecision {
        if ahead_us > self.tolerance_us {
            limited_for_micros(ahead_us - self.tolerance_us)
        } else {
            RateDecision::Allowed
        }
    }
}

/// A refusal that may retry after `micros`: rounded up to whole milliseconds,
/// at least 1 ms (so a client is never told to retry at once).
pub fn limited_for_micros(micros: u64) -> RateDecision {
    RateDecision::Limited { retry_after: Duration::from_millis(micros.div_ceil(1000).max(1)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_exactly_burst_then_one_per_interval() {
        let gcra = Gcra::new(Quota { per_second: 10, burst: 5 });
        assert_eq!(gcra, Gcra { interval_us: 100_000, tolerance_us: 400_000 });
        assert_eq!(Gcra::new(Quota { per_second: 0, burst: 0 }), Gcra { interval_us: 1_000_000, tolerance_us: 0 });
        // From idle: five pass (tat 0, 100, 200, 300, 400 ms ahead), the sixth waits 100 ms.
        let mut ahead = 0;
        for _ in 0..5 {
            assert_eq!(gcra.decide(ahead), RateDecision::Allowed);
            ahead += gcra.interval_us;
        }
        assert_eq!(gcra.decide(ahead), RateDecision::Limited { retry_after: Duration::from_millis(100) });
    }

    #[test]
    fn a_wait_is_whole_milliseconds_and_never_zero() {
        assert_eq!(limited_for_micros(1), RateDecision::Limited { retry_after: Duration::from_millis(1) });
        assert_eq!(limited_for_micros(100_001), RateDecision::Limited { retry_after: Duration::from_millis(101) });
    }
}
