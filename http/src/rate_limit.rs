//! Rate limits: a per-client quota on every `/v1/` request and a per-SKU quota
//! on cart edits of that SKU, counted in the shared limiter (Redis when
//! `REDIS_URL` is set, else in-process).
//!
//! **Limits fail local.** When Redis cannot answer in time, each node limits
//! with its own in-process GCRA (same quotas, per node instead of cluster-wide)
//! until Redis answers again; the switch is logged once each way and counted in
//! `flashcore_redis_fallback_total{use="rate_limit"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use flashcore_domain::Sku;
use flashcore_http_ports::{Quota, RateDecision, RateLimiter};

use crate::error::ApiError;

/// The configured quotas and the limiter that counts them.
pub struct RateLimits {
    limiter: Arc<dyn RateLimiter>,
    /// Set when `limiter` is shared (Redis): what limits while it is away.
    fallback: Option<Arc<dyn RateLimiter>>,
    degraded: AtomicBool,
    client_quota: Option<Quota>,
    sku_quota: Option<Quota>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("shared", &self.fallback.is_some())
            .field("client_quota", &self.client_quota)
            .field("sku_quota", &self.sku_quota)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Limits counted in `limiter`; `fallback` counts them while a shared
    /// `limiter` cannot be reached (`None` for an in-process one).
    pub fn new(
        client_quota: Option<Quota>,
        sku_quota: Option<Quota>,
        limiter: Arc<dyn RateLimiter>,
        fallback: Option<Arc<dyn RateLimiter>>,
    ) -> Self {
        RateLimits { limiter, fallback, degraded: AtomicBool::new(false), client_quota, sku_quota }
    }

    /// Whether any limit is configured (else the pipeline skips this step).
    pub fn enabled(&self) -> bool {
        self.client_quota.is_some() || self.sku_quota.is_some()
    }

    /// Whether a per-SKU limit is configured.
    pub fn per_sku(&self) -> bool {
        self.sku_quota.is_some()
    }

    /// Whether the shared limiter is failing over to the local one.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Counts one request of `client` (its scope), and of `sku` when it edits
    /// that SKU in a cart: 429 `rate-limited` when either is over its quota.
    pub async fn check(&self, client: &str, sku: Option<&Sku>) -> Result<(), ApiError> {
        if let Some(q) = self.client_quota {
            limited(self.count(&format!("client:{client}"), q).await, "client")?;
        }
        if let (Some(q), Some(sku)) = (self.sku_quota, sku) {
            limited(self.count(&format!("sku:{sku}"), q).await, "sku")?;
        }
        Ok(())
    }

    async fn count(&self, key: &str, quota: Quota) -> RateDecision {
        match self.limiter.check(key, quota).await {
            Ok(d) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again: rate limits are shared again");
                }
                d
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "Redis unavailable: rate limits fall back to this node's own");
                }
                metrics::counter!("flashcore_redis_fallback_total", "use" => "rate_limit").increment(1);
                match &self.fallback {
                    Some(local) => local.check(key, quota).await.unwrap_or(RateDecision::Allowed),
                    None => RateDecision::Allowed,
                }
            }
        }
    }
}

fn limited(decision: RateDecision, limit: &'static str) -> Result<(), ApiError> {
    match decision {
        RateDecision::Allowed => Ok(()),
        RateDecision::Limited { retry_after } => {
            metrics::counter!("flashcore_rate_limited_total", "limit" => limit).increment(1);
            let secs = retry_after.as_millis().div_ceil(1000).max(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!("Slow down: the {limit} limit is reached. Retry after {secs} s."),
            )
            .with("limit", limit)
            .retry_after(u64::try_from(secs).unwrap_or(1)))
        }
    }
}
