//! GCRA rate limits in Redis: one Lua script on Redis `TIME`, the same
//! arithmetic as the in-process limiter ([`Gcra`]).

use std::sync::LazyLock;

use async_trait::async_trait;
use flashcore_http_ports::rate_limit::{Gcra, limited_for_micros};
use flashcore_http_ports::{Quota, RateDecision, RateLimiter, StoreError};
use redis::Script;

use super::Redis;

/// GCRA (see [`Gcra`]): KEYS[1] holds the theoretical arrival time (µs of
/// Redis `TIME`); ARGV: emission interval and burst tolerance (µs). Returns `{1}`
/// (allowed) or `{0, µs to wait}`. The key expires when its TAT passes.
static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local ahead = tat - now
if ahead > tolerance then return {0, ahead - tolerance} end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1}
",
    )
});

#[async_trait]
impl RateLimiter for Redis {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision, StoreError> {
        let gcra = Gcra::new(quota);
        let key = self.key("rl", key);
        let reply: Vec<i64> = self
            .run("rate_limit", |mut con| async move {
                GCRA.key(key).arg(gcra.interval_us).arg(gcra.tolerance_us).invoke_async(&mut con).await
            })
            .await?;
        match reply.as_slice() {
            [1] => Ok(RateDecision::Allowed),
            [0, wait] => Ok(limited_for_micros(u64::try_from(*wait).unwrap_or(0))),
            _ => Err(StoreError::Unavailable(format!("unexpected rate limit reply: {reply:?}"))),
        }
    }
}
