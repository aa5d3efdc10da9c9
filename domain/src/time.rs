//! Wall-clock instants as plain numbers, so the domain never reads a clock.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC).
///
/// The domain compares instants and adds durations; formatting as RFC 3339 is the
/// edge's job. A plain `u64` keeps hold expiry indexes small and ordering cheap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself; useful as "long ago".
    pub const EPOCH: Timestamp = Timestamp(0);

    /// An instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `ms` milliseconds, saturating at the end of time.
    pub const fn plus_millis(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Milliseconds from `self` until `later` (zero if `later` is not later).
    pub const fn millis_until(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp::from_millis(u64::MAX - 1);
        assert_eq!(t.plus_millis(10).as_millis(), u64::MAX);
        assert_eq!(Timestamp::from_millis(5).millis_until(Timestamp::from_millis(3)), 0);
        assert_eq!(Timestamp::from_millis(3).millis_until(Timestamp::from_millis(5)), 2);
    }
}
