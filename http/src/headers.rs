//! Response headers: the security headers every response gets, and CORS only
//! for configured origins.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy for API responses: nothing may be loaded, framed or executed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The policy for the frontend's pages and files ([`crate::frontend`]): their
/// own origin only; no inline script or style, no CDN, no framing.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The security headers of every response, in the order they are added.
const SECURITY: [(HeaderName, HeaderValue); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP)),
    (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
];

/// `/v1/` answers are never cached.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// Browsers keep to HTTPS for this host for a year once they saw it over HTTPS.
const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000; includeSubDomains");

/// Adds the security headers a response doesn't set itself (`api`: a `/v1/`
/// route; `https`: the request came over HTTPS, so HSTS too).
pub fn secure(res: &mut Response, api: bool, https: bool) {
    let h = res.headers_mut();
    // Room for all of them at once: the map otherwise grows (and rehashes)
    // more than once per response.
    h.reserve(SECURITY.len() + 2);
    if https {
        h.entry(header::STRICT_TRANSPORT_SECURITY).or_insert(HSTS);
    }
    for (name, value) in SECURITY {
        h.entry(name).or_insert(value);
    }
    if api {
        h.entry(header::CACHE_CONTROL).or_insert(NO_STORE);
    }
}

/// CORS for `origins` (`*` allows any origin, without credentials); `None` when
/// none is configured, so browsers apply the same-origin policy.
pub fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| {
                HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("FLASHCORE_CORS_ORIGINS: {o:?} is not valid"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                crate::request_id::HEADER.clone(),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static("idempotent-replayed"),
                crate::request_id::HEADER.clone(),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
