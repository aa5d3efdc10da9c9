//! Configuration from environment variables (README's Configuration section
//! lists them all). Secrets come from the environment, never from the
//! repository, and their `Debug` never shows them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use flashcore_actors::EngineConfig;
use flashcore_actors::ownership::LeaseConfig;
use flashcore_domain::Shards;
use flashcore_http_ports::Quota;

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
        /// `postgres://…`: the role the service runs as.
        url: String,
        /// `FLASHCORE_MIGRATE_DATABASE_URL`: a role that owns the schema, to
        /// apply the migrations with, so `url`'s role needs only to read and
        /// write the tables (`deploy/postgres/roles.sql`). Unset: `url`'s.
        migrate_url: Option<String>,
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
    pub token_secret: Option<Secret>,
    /// Seed the demo catalog into an empty store (`FLASHCORE_DEMO`, default `true`).
    pub seed_demo: bool,
    /// `json` (default) or `pretty` (`FLASHCORE_LOG_FORMAT`).
    pub log_format: String,
    /// Engine tunables: flush interval, hold TTL, cart idle time, mailbox bounds.
    pub engine: EngineConfig,
    /// Ownership of the store: lease TTL (`FLASHCORE_LEASE_TTL_MS`, default 5000)
    /// and shard count (`FLASHCORE_SHARDS`, default 256).
    pub lease: LeaseConfig,
    /// The HTTP layer: Redis, limits, idempotency, credentials, timeouts, CORS.
    pub http: HttpConfig,
    /// The node-to-node port (`FLASHCORE_CLUSTER_ADDR` and its identity); unset: none.
    pub cluster: Option<crate::cluster::ClusterConfig>,
    /// Cluster mode (`FLASHCORE_NODE_ID`, Postgres only): this node's id; it
    /// takes a share of the shards instead of all of them.
    pub node_id: Option<String>,
}

/// A configured secret: its `Debug` never shows the value, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The HTTP layer's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the nodes share idempotency keys, rate limits and availability
    /// (`REDIS_URL`); unset means in-process fallbacks.
    pub redis_url: Option<Secret>,
    /// Namespace of every Redis key (`FLASHCORE_REDIS_PREFIX`, default `flashcore:`).
    pub redis_prefix: String,
    /// Longest wait for one Redis operation before degrading (`FLASHCORE_REDIS_TIMEOUT_MS`, default 250).
    pub redis_timeout: Duration,
    /// Per-client limit (`FLASHCORE_RATE_CLIENT` = `<per_second>:<burst>` or `off`; default `100:200`).
    pub client_quota: Option<Quota>,
    /// Per-SKU admission on cart edits (`FLASHCORE_RATE_SKU`, default `5000:10000`).
    pub sku_quota: Option<Quota>,
    /// How long a completed idempotency key is kept (`FLASHCORE_IDEMPOTENCY_TTL_SECS`, default 24 h).
    pub idempotency_ttl: Duration,
    /// A bootstrap admin API key (`FLASHCORE_ADMIN_KEY`, at least 32 characters); never stored.
    pub admin_key: Option<Secret>,
    /// Longest a request may take before it is answered 503 (`FLASHCORE_REQUEST_TIMEOUT_MS`, default 10 000).
    pub request_timeout: Duration,
    /// Largest request body (`FLASHCORE_MAX_BODY_BYTES`, default 65 536).
    pub max_body_bytes: usize,
    /// Origins allowed by CORS (`FLASHCORE_CORS_ORIGINS`: comma-separated, or `*`); empty means no CORS.
    pub cors_origins: Vec<String>,
    /// Load balancers whose `Forwarded` / `X-Forwarded-For` name the client
    /// (`FLASHCORE_TRUSTED_PROXIES`: comma-separated networks or addresses; none by default).
    pub trusted_proxies: crate::client::TrustedProxies,
    /// HTTPS on the public port (`FLASHCORE_TLS_CERT` and `FLASHCORE_TLS_KEY`, PEM;
    /// both or neither); unset: plain HTTP (behind a TLS-terminating proxy).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The built storefront and console to serve at `/` and `/ops`
    /// (`FLASHCORE_FRONTEND_DIR`; default `frontend/dist` when it holds a build,
    /// `off` for none).
    pub frontend_dir: Option<PathBuf>,
}

/// Where `make run` builds the frontend (`FLASHCORE_FRONTEND_DIR`'s default).
pub const DEFAULT_FRONTEND_DIR: &str = "frontend/dist";

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            redis_url: None,
            redis_prefix: "flashcore:".into(),
            redis_timeout: Duration::from_millis(250),
            client_quota: Some(Quota { per_second: 100, burst: 200 }),
            sku_quota: Some(Quota { per_second: 5_000, burst: 10_000 }),
            idempotency_ttl: Duration::from_secs(24 * 3_600),
            admin_key: None,
            request_timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            cors_origins: Vec::new(),
            trusted_proxies: crate::client::TrustedProxies::default(),
            tls: None,
            frontend_dir: None,
        }
    }
}

/// Parses `<per_second>:<burst>`, `<per_second>` (burst = rate) or `off`.
pub fn parse_quota(s: &str) -> anyhow::Result<Option<Quota>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let (rate, burst) = s.split_once(':').unwrap_or((s, s));
    let rate: u32 = rate.trim().parse().with_context(|| format!("{s:?}: rate is not a number"))?;
    let burst: u32 = burst.trim().parse().with_context(|| format!("{s:?}: burst is not a number"))?;
    if rate == 0 || burst == 0 {
        bail!("{s:?}: rate and burst must be at least 1 (or say `off`)");
    }
    Ok(Some(Quota { per_second: rate, burst }))
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
            lease: LeaseConfig { owner_gone: crate::startup::local_owner_gone, ..LeaseConfig::default() },
            http: HttpConfig::default(),
            cluster: None,
            node_id: None,
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
fn store_from(
    store: Option<&str>,
    url: Option<String>,
    migrate_url: Option<String>,
    data_dir: &std::path::Path,
) -> anyhow::Result<StoreKind> {
    let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    if let Some(m) = migrate_url.as_deref().filter(|m| !is_pg(m)) {
        bail!(
            "FLASHCORE_MIGRATE_DATABASE_URL must be a postgres:// URL (got {:?})",
            m.split('@').next_back().unwrap_or("")
        );
    }
    let default_sqlite = || format!("sqlite://{}", data_dir.join("flashcore.db").display());
    Ok(match (store, url) {
        (Some("memory"), _) => StoreKind::Memory,
        (Some("postgres"), Some(url)) if is_pg(&url) => StoreKind::Postgres { url, migrate_url },
        (Some("postgres"), _) => bail!("FLASHCORE_STORE=postgres needs DATABASE_URL=postgres://…"),
        (Some("sqlite"), Some(url)) if url.starts_with("sqlite:") => StoreKind::Sqlite { url },
        (Some("sqlite"), _) => StoreKind::Sqlite { url: default_sqlite() },
        (Some(other), _) => bail!("FLASHCORE_STORE={other:?}: expected memory, sqlite or postgres"),
        (None, Some(url)) if is_pg(&url) => StoreKind::Postgres { url, migrate_url },
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
        c.store = store_from(
            var("FLASHCORE_STORE").as_deref(),
            var("DATABASE_URL"),
            var("FLASHCORE_MIGRATE_DATABASE_URL"),
            &c.data_dir,
        )?;
        c.token_secret = var("FLASHCORE_TOKEN_SECRET").map(Secret);
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
        if let Some(d) = secs("FLASHCORE_SKU_IDLE_SECS")? {
            c.engine.sku_idle = d;
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
        if let Some(n) = parse::<u32>("FLASHCORE_BREAKER_FAILURES")? {
            c.engine.breaker.failures = n.max(1);
        }
        let at_least_1ms = |d: Duration| d.max(Duration::from_millis(1));
        if let Some(d) = ms("FLASHCORE_BREAKER_TIMEOUT_MS")? {
            c.engine.breaker.call_timeout = at_least_1ms(d);
        }
        if let Some(d) = ms("FLASHCORE_BREAKER_PROBE_MS")? {
            c.engine.breaker.probe_base = at_least_1ms(d);
        }
        if let Some(d) = ms("FLASHCORE_BREAKER_PROBE_MAX_MS")? {
            c.engine.breaker.probe_max = at_least_1ms(d);
        }
        c.engine.breaker.probe_max = c.engine.breaker.probe_max.max(c.engine.breaker.probe_base);
        let budget = &mut c.engine.budget;
        for (name, step) in [
            ("FLASHCORE_BUDGET_PREPARE_MS", &mut budget.prepare),
            ("FLASHCORE_BUDGET_PAYMENT_MS", &mut budget.payment),
            ("FLASHCORE_BUDGET_JOURNAL_MS", &mut budget.journal),
            ("FLASHCORE_BUDGET_COMMIT_MS", &mut budget.commit),
        ] {
            if let Some(d) = ms(name)? {
                *step = at_least_1ms(d);
            }
        }
        if let Some(d) = ms("FLASHCORE_LEASE_TTL_MS")? {
            if d < Duration::from_millis(500) {
                bail!("FLASHCORE_LEASE_TTL_MS must be at least 500");
            }
            c.lease.ttl = d;
            c.lease.poll = (d / 10).min(Duration::from_millis(200));
        }
        if let Some(n) = parse::<u64>("FLASHCORE_SHARDS")? {
            c.lease.shards = Shards::new(n).context("FLASHCORE_SHARDS")?;
        }
        c.http.redis_url = var("REDIS_URL").map(Secret);
        if let Some(p) = var("FLASHCORE_REDIS_PREFIX") {
            c.http.redis_prefix = p;
        }
        if let Some(d) = ms("FLASHCORE_REDIS_TIMEOUT_MS")? {
            c.http.redis_timeout = d.max(Duration::from_millis(1));
        }
        if let Some(q) = var("FLASHCORE_RATE_CLIENT") {
            c.http.client_quota = parse_quota(&q).context("FLASHCORE_RATE_CLIENT")?;
        }
        if let Some(q) = var("FLASHCORE_RATE_SKU") {
            c.http.sku_quota = parse_quota(&q).context("FLASHCORE_RATE_SKU")?;
        }
        if let Some(d) = secs("FLASHCORE_IDEMPOTENCY_TTL_SECS")? {
            c.http.idempotency_ttl = d.max(Duration::from_secs(1));
        }
        if let Some(k) = var("FLASHCORE_ADMIN_KEY") {
            if k.trim().len() < 32 {
                bail!("FLASHCORE_ADMIN_KEY must be at least 32 characters");
            }
            c.http.admin_key = Some(Secret(k.trim().to_owned()));
        }
        if let Some(d) = ms("FLASHCORE_REQUEST_TIMEOUT_MS")? {
            c.http.request_timeout = d.max(Duration::from_millis(1));
        }
        if let Some(n) = parse::<usize>("FLASHCORE_MAX_BODY_BYTES")? {
            c.http.max_body_bytes = n.max(1024);
        }
        c.http.tls = match (var("FLASHCORE_TLS_CERT"), var("FLASHCORE_TLS_KEY")) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert: cert.trim().into(), key: key.trim().into() }),
            (None, None) => None,
            _ => bail!("FLASHCORE_TLS_CERT and FLASHCORE_TLS_KEY go together: set both or neither"),
        };
        if let Some(list) = var("FLASHCORE_TRUSTED_PROXIES") {
            c.http.trusted_proxies = crate::client::TrustedProxies::parse(&list)
                .map_err(|e| anyhow::anyhow!("FLASHCORE_TRUSTED_PROXIES: {e}"))?;
        }
        if let Some(o) = var("FLASHCORE_CORS_ORIGINS") {
            c.http.cors_origins = o.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        c.http.frontend_dir = match var("FLASHCORE_FRONTEND_DIR") {
            Some(off) if off.trim() == "off" => None,
            Some(dir) => Some(dir.trim().into()),
            // `make run` builds it here, and runs from the repository root.
            None => Some(PathBuf::from(DEFAULT_FRONTEND_DIR)).filter(|d| crate::frontend::holds_build(d)),
        };
        c.cluster = crate::cluster::ClusterConfig::from_vars(var, crate::startup::default_node_id, c.addr)?;
        if let Some(id) = var("FLASHCORE_NODE_ID") {
            let id = id.trim().to_owned();
            if !crate::cluster::valid_node_id(&id) {
                bail!("FLASHCORE_NODE_ID {id:?}: 1 to 64 of A-Z a-z 0-9 . _ -");
            }
            if !matches!(c.store, StoreKind::Postgres { .. }) {
                bail!("cluster mode (FLASHCORE_NODE_ID) needs the Postgres store: set DATABASE_URL=postgres://…");
            }
            if c.cluster.is_none() {
                bail!(
                    "cluster mode (FLASHCORE_NODE_ID) needs the node-to-node port: set FLASHCORE_CLUSTER_ADDR and \
                     FLASHCORE_CLUSTER_SECRET (or the FLASHCORE_CLUSTER_CA / _CERT / _KEY of mutual TLS)"
                );
            }
            c.lease.share = true;
            // Node ids are names, not `{host}-{pid}`: nobody is known gone.
            c.lease.owner_gone = |_| false;
            c.node_id = Some(id);
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
        assert_eq!(store_from(None, None, None, dir).unwrap(), sqlite);
        assert_eq!(store_from(Some("memory"), Some("postgres://x".into()), None, dir).unwrap(), StoreKind::Memory);
        assert_eq!(
            store_from(None, Some("postgres://h/db".into()), None, dir).unwrap(),
            StoreKind::Postgres { url: "postgres://h/db".into(), migrate_url: None }
        );
        assert_eq!(store_from(Some("sqlite"), None, None, dir).unwrap(), sqlite);
        assert!(store_from(Some("postgres"), None, None, dir).is_err());
        assert!(store_from(Some("mysql"), None, None, dir).is_err());
        assert!(store_from(None, Some("mysql://h".into()), None, dir).is_err());
        assert_eq!(
            store_from(None, Some("postgres://app@h/db".into()), Some("postgres://owner@h/db".into()), dir).unwrap(),
            StoreKind::Postgres {
                url: "postgres://app@h/db".into(),
                migrate_url: Some("postgres://owner@h/db".into())
            }
        );
        assert!(store_from(None, Some("postgres://h/db".into()), Some("mysql://h".into()), dir).is_err());
    }

    #[test]
    fn quotas_parse_rate_burst_or_off() {
        assert_eq!(parse_quota("off").unwrap(), None);
        assert_eq!(parse_quota("10:20").unwrap(), Some(Quota { per_second: 10, burst: 20 }));
        assert_eq!(parse_quota(" 7 ").unwrap(), Some(Quota { per_second: 7, burst: 7 }));
        for bad in ["", "0:1", "1:0", "x", "1:y", "-1:2"] {
            assert!(parse_quota(bad).is_err(), "{bad}");
        }
    }
}
