//! The one place that reads the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use flashcore_domain::Timestamp;

/// Now, as a domain [`Timestamp`].
pub fn now() -> Timestamp {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}
