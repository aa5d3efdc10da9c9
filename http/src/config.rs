//! Configuration from environment variables (DESIGN §6). Secrets come from the
//! environment, never from the repository.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use flashcore_actors::EngineConfig;

/// Which stores back the journal, snapshots and catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// In-process: nothing survives a restart.
    Memory,
}

/// Everything the binary reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`FLASHCORE_ADDR`, default `127.0.0.1:8080`; port 0 picks one).
    pub addr: SocketAddr,
    /// Store (`FLASHCORE_STORE`).
    pub store: StoreKind,
    /// HMAC key for cart tokens (`FLASHCORE_TOKEN_SECRET`); random per process when unset.
    pub token_secret: Option<String>,
    /// Seed the demo catalog into an empty store (`FLASHCORE_DEMO`, default `true`).
    pub seed_demo: bool,
    /// `json` (default) or `pretty` (`FLASHCORE_LOG_FORMAT`).
    pub log_format: String,
    /// Engine tunables.
    pub engine: EngineConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            store: StoreKind::Memory,
            token_secret: None,
            seed_demo: true,
            log_format: "json".into(),
            engine: EngineConfig::default(),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|e| anyhow::anyhow!("{name}={v:?} is invalid: {e}")),
    }
}

impl Config {
    /// Reads the environment; unset variables keep their defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut c = Config::default();
        if let Some(a) = var("FLASHCORE_ADDR") {
            c.addr = a.parse().with_context(|| format!("FLASHCORE_ADDR={a:?} is not host:port"))?;
        }
        let store = var("FLASHCORE_STORE").or_else(|| var("DATABASE_URL").map(|_| "postgres".into()));
        c.store = match store.as_deref() {
            None | Some("memory") => StoreKind::Memory,
            Some(s @ ("sqlite" | "postgres")) => bail!(
                "FLASHCORE_STORE={s}: the durable stores are not part of this build yet; use FLASHCORE_STORE=memory"
            ),
            Some(other) => bail!("FLASHCORE_STORE={other:?}: expected memory, sqlite or postgres"),
        };
        c.token_secret = var("FLASHCORE_TOKEN_SECRET");
        if let Some(v) = parse::<bool>("FLASHCORE_DEMO")? {
            c.seed_demo = v;
        }
        if let Some(f) = var("FLASHCORE_LOG_FORMAT") {
            c.log_format = f;
        }
        let ms = |name| parse::<u64>(name).map(|v| v.map(Duration::from_millis));
        let secs = |name| parse::<u64>(name).map(|v| v.map(Duration::from_secs));
        if let Some(d) = ms("FLASHCORE_FLUSH_INTERVAL_MS")? {
            c.engine.flush_interval = d.max(Duration::from_millis(1));
        }
        if let Some(d) = ms("FLASHCORE_HOLD_TTL_MS")? {
            c.engine.hold_ttl = d;
        }
        if let Some(d) = secs("FLASHCORE_CART_IDLE_SECS")? {
            c.engine.cart_idle = d;
        }
        if let Some(n) = parse("FLASHCORE_SKU_MAX_INFLIGHT")? {
            c.engine.sku_max_inflight = n;
        }
        if let Some(n) = parse("FLASHCORE_CART_MAX_INFLIGHT")? {
            c.engine.cart_max_inflight = n;
        }
        if let Some(n) = parse("FLASHCORE_JOURNAL_MAX_BATCH")? {
            c.engine.journal_max_batch = n;
        }
        Ok(c)
    }
}
