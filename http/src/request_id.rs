//! Request ids: every response carries `x-request-id` (the caller's own, if it
//! sent a usable one, else one made here), and so does every problem document
//! (`request_id`) and every log line the edge writes about the request, so a
//! buyer's report, a proxy's access log and our logs name the same request.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

/// The header, in both directions.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest caller-chosen id kept; a longer or non-printable one is replaced.
const MAX_LEN: usize = 128;

/// One request's id.
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The caller's `x-request-id` if it is 1 to 128 visible ASCII characters,
    /// else a new id: this process's random prefix and a counter (unique per
    /// process start, cheap: no randomness per request).
    pub fn for_request(headers: &HeaderMap) -> Self {
        if let Some(v) = headers.get(&HEADER).filter(|v| usable(v.as_bytes())) {
            return RequestId(v.clone());
        }
        static PREFIX: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // `<prefix>-<n in hex>`, written without the formatting machinery: one
        // of these is made for nearly every request.
        let mut id = [0u8; 12 + 1 + 16];
        id[..12].copy_from_slice(PREFIX.as_bytes());
        id[12] = b'-';
        let digits = hex(n, &mut id[13..]);
        RequestId(HeaderValue::from_bytes(&id[..13 + digits]).expect("hex and a dash are a valid header value"))
    }

    /// The id as the header value.
    pub fn header(&self) -> &HeaderValue {
        &self.0
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever built from visible ASCII (checked or made here).
        self.0.to_str().unwrap_or_default()
    }
}

/// Writes `n` in lower-case hex, without leading zeros, at the start of `out`
/// (16 bytes fit any `u64`); returns how many digits it wrote.
fn hex(n: u64, out: &mut [u8]) -> usize {
    let digits = (16 - n.leading_zeros() as usize / 4).max(1);
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        *slot = b"0123456789abcdef"[((n >> (4 * (digits - 1 - i))) & 0xf) as usize];
    }
    digits
}

fn usable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| b.is_ascii_graphic())
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// Runs `f` with `id` as the current request's (see [`current`]).
pub async fn scope<F: Future>(id: RequestId, f: F) -> F::Output {
    CURRENT.scope(id, f).await
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.as_str().to_owned()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_written_in_hex() {
        for n in [0, 1, 9, 10, 15, 16, 255, 256, 0xdead_beef, u64::MAX] {
            let mut out = [0u8; 16];
            let len = hex(n, &mut out);
            assert_eq!(std::str::from_utf8(&out[..len]).unwrap(), format!("{n:x}"));
        }
    }

    #[test]
    fn a_usable_caller_id_is_kept_and_anything_else_replaced() {
        let mut h = HeaderMap::new();
        h.insert(&HEADER, HeaderValue::from_static("lb-7f3a"));
        assert_eq!(RequestId::for_request(&h).as_str(), "lb-7f3a");
        for bad in ["", "has space", &"x".repeat(129)] {
            h.insert(&HEADER, HeaderValue::from_str(bad).unwrap());
            let made = RequestId::for_request(&h);
            assert_ne!(made.as_str(), bad);
            assert!(usable(made.as_str().as_bytes()), "{}", made.as_str());
        }
        let (a, b) = (RequestId::for_request(&HeaderMap::new()), RequestId::for_request(&HeaderMap::new()));
        assert_ne!(a.as_str(), b.as_str(), "made ids are unique");
    }
}
