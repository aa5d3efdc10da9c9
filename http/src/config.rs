//! Configuration from environment variables (DESIGN §6). Secrets come from the
//! environment, never from the repository.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use flashcore_actors::EngineConfig;

/// Which stores back the journal, snapshots and catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In-process: nothing survives a restart.
    Memory,
    /// SQLite database file (the embedded default).
    Sqlite {
        /// `sqlite://path` or a path.
        url: String,
    },
    /// Postgres (production).
    Postgres {
        /// `postgres://…`.
        url: String,
    },
}

impl StoreKind {
    /// True when state survives a restart.
    pub fn is_durable(&self) -> bool {
        !matches!(self, StoreKind::Memory)
    }
}

/// Everything the binary reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`FLASHCORE_ADDR`, default `127.0.0.1:8080`; port 0 picks one).
    pub addr: SocketAddr,
    /// Store (`FLASHCORE_STORE`, `DATABASE_URL`).
    pub store: StoreKind,
    /// Where the embedded store and the generated token key live (`FLASHCORE_DATA_DIR`, default `./data`).
    pub data_dir: std::path::PathBuf,
    /// HMAC key for cart tokens (`FLASHCORE_TOKEN_SECRET`). Unset: a key generated
    /// once and kept in the data directory (durable stores) or per process (memory).
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
            store: StoreKind::Sqlite { url: "sqlite://data/flashcore.db".into() },
            data_dir: "data".into(),
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

/// Picks the store from `FLASHCORE_STORE` and `DATABASE_URL`.
fn store_from(store: Option<&str>, url: Option<String>, data_dir: &std::path::Path) -> anyhow::Result<StoreKind> {
    let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    let default_sqlite = || format!("sqlite://{}", data_dir.join("flashcore.db").display());
    Ok(match (store, url) {
        (Some("memory"), _) => StoreKind::Memory,
        (Some("postgres"), Some(url)) if is_pg(&url) => StoreKind::Postgres { url },
        (Some("postgres"), _) => bail!("FLASHCORE_STORE=postgres needs DATABASE_URL=postgres://…"),
        (Some("sqlite"), Some(url)) if url.starts_with("sqlite:") => StoreKind::Sqlite { url },
        (Some("sqlite"), _) => StoreKind::Sqlite { url: default_sqlite() },
        (Some(other), _) => bail!("FLASHCORE_STORE={other:?}: expected memory, sqlite or postgres"),
        (None, Some(url)) if is_pg(&url) => StoreKind::Postgres { url },
        (None, Some(url)) if url.starts_with("sqlite:") => StoreKind::Sqlite { url },
        (None, Some(_)) => bail!("DATABASE_URL must start with postgres:// or sqlite://"),
        (None, None) => StoreKind::Sqlite { url: default_sqlite() },
    })
}

impl Config {
    /// Reads the environment; unset variables keep their defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut c = Config::default();
        if let Some(a) = var("FLASHCORE_ADDR") {
            c.addr = a.parse().with_context(|| format!("FLASHCORE_ADDR={a:?} is not host:port"))?;
        }
        if let Some(d) = var("FLASHCORE_DATA_DIR") {
            c.data_dir = d.into();
        }
        c.store = store_from(var("FLASHCORE_STORE").as_deref(), var("DATABASE_URL"), &c.data_dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_follows_flashcore_store_and_database_url() {
        let dir = std::path::Path::new("data");
        let sqlite = StoreKind::Sqlite { url: "sqlite://data/flashcore.db".into() };
        assert_eq!(store_from(None, None, dir).unwrap(), sqlite);
        assert_eq!(store_from(Some("memory"), Some("postgres://x".into()), dir).unwrap(), StoreKind::Memory);
        assert_eq!(
            store_from(None, Some("postgres://h/db".into()), dir).unwrap(),
            StoreKind::Postgres { url: "postgres://h/db".into() }
        );
        assert_eq!(store_from(Some("sqlite"), None, dir).unwrap(), sqlite);
        assert!(store_from(Some("postgres"), None, dir).is_err());
        assert!(store_from(Some("mysql"), None, dir).is_err());
        assert!(store_from(None, Some("mysql://h".into()), dir).is_err());
    }
}
