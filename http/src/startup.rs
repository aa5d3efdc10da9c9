//! The composition root: picks adapters, starts the engine, builds the router,
//! binds the listener. The binary and the tests both go through [`Application`].
//! Concrete adapters are named here and nowhere else in this crate
//! ([`open_stores`] for the store, `shared_state` for what nodes share).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use flashcore_actors::node::Node;
use flashcore_actors::ownership::Ownership;
use flashcore_actors::payments::TestPayments;
use flashcore_actors::ports::{AvailabilityFeed, LeaseStore, Owner};
use flashcore_actors::{Engine, Ports};
use flashcore_http_ports::ApiKeyStore;
use flashcore_persistence::local::{LocalIdempotency, LocalRateLimiter};
use flashcore_persistence::memory::{LocalFeed, MemoryApiKeys, MemoryStores};
use flashcore_persistence::postgres::PgStore;
use flashcore_persistence::redis::{Redis, RedisFeed};
use flashcore_persistence::sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;

use crate::api_keys::ApiKeys;
use crate::cart_tokens::CartTokens;
use crate::config::{Config, HttpConfig, StoreKind};
use crate::error::{ApiError, panic_response};
use crate::frontend::{Frontend, Served};
use crate::idempotency::Idempotency;
use crate::rate_limit::RateLimits;
use crate::routes::api_router;
use crate::state::AppState;
use crate::{headers, http_metrics, openapi, pipeline};

/// A bound, ready-to-run flashcore.
pub struct Application {
    listener: TcpListener,
    /// HTTPS: the files and the rustls configuration loaded from them.
    tls: Option<(crate::tls::TlsFiles, axum_server::tls_rustls::RustlsConfig)>,
    router: crate::hot::HotRoutes<Router>,
    config: Config,
    node: Arc<Node>,
    keys: Arc<ApiKeys>,
    redis_feed: Option<Arc<RedisFeed>>,
    feed: Arc<dyn AvailabilityFeed>,
    shutdown: watch::Sender<bool>,
    /// The node-to-node port, bound, when `FLASHCORE_CLUSTER_ADDR` is set.
    internal: Option<crate::cluster::InternalPort>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .field("node", &self.node.ownership().owner())
            .field("redis", &self.redis_feed.is_some())
            .finish_non_exhaustive()
    }
}

/// What a store gives the process: the engine's ports, the operators' keys and
/// the leases that say who may write.
pub struct Stores {
    /// Journal, snapshots, catalog, payments and availability feed the engine runs on.
    pub ports: Ports,
    /// Where operator API keys are stored (as hashes) and looked up.
    pub api_keys: Arc<dyn ApiKeyStore>,
    /// Membership and shard leases.
    pub leases: Arc<dyn LeaseStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Starts an engine on `ports` under `ownership` (which holds the leases) and
/// seeds the demo catalog into an empty store.
async fn start_engine(config: &Config, ports: Ports, ownership: Arc<Ownership>) -> anyhow::Result<Engine> {
    let engine = Engine::start(config.engine.clone(), ports, ownership).await.context("engine start-up failed")?;
    tokio::spawn(return_start_up_memory());
    if config.seed_demo && engine.catalog_is_empty() {
        crate::demo::seed(&engine).await.context("seeding the demo catalog failed")?;
    }
    Ok(engine)
}

/// Start-up recovery frees its working state (tens of megabytes at 100,000
/// SKUs) at once. The allocator (mimalloc) gives freed memory back to the OS
/// lazily: on a later page free, once its purge delay (1 s) has passed, which a
/// process idle after start-up never makes, so the freed memory would stay
/// resident until traffic came. One large block freed after the delay is such
/// a page free.
async fn return_start_up_memory() {
    /// mimalloc's default purge delay (`MIMALLOC_PURGE_DELAY`, 1 s) and a margin.
    const PAST_PURGE_DELAY: std::time::Duration = std::time::Duration::from_millis(1_100);
    // Twice: what start-up freed just before the first is due one delay later.
    for _ in 0..2 {
        tokio::time::sleep(PAST_PURGE_DELAY).await;
        drop(std::hint::black_box(Vec::<u8>::with_capacity(4 << 20)));
    }
}

/// The adapters for `store` (the `keys` command opens a store through here too).
pub async fn open_stores(store: &StoreKind, feed: Arc<dyn AvailabilityFeed>) -> anyhow::Result<Stores> {
    let payments = Arc::new(TestPayments);
    Ok(match store {
        StoreKind::Memory => {
            let m = MemoryStores::default();
            let ports =
                Ports { journal: m.journal, snapshots: m.snapshots, catalog: m.catalog, payments, feed, peers: None };
            Stores { ports, api_keys: Arc::new(MemoryApiKeys::default()), leases: m.leases }
        }
        StoreKind::Sqlite { url } => {
            let db = Arc::new(SqliteStore::open(url).await.with_context(|| format!("cannot open SQLite at {url}"))?);
            let ports =
                Ports { journal: db.clone(), snapshots: db.clone(), catalog: db.clone(), payments, feed, peers: None };
            Stores { ports, api_keys: db.clone(), leases: db }
        }
        StoreKind::Postgres { url, migrate_url } => {
            let db = Arc::new(
                PgStore::connect_migrating(url, migrate_url.as_deref())
                    .await
                    .context("cannot connect to Postgres (DATABASE_URL)")?,
            );
            let ports =
                Ports { journal: db.clone(), snapshots: db.clone(), catalog: db.clone(), payments, feed, peers: None };
            Stores { ports, api_keys: db.clone(), leases: db }
        }
    })
}

/// The operators' key store of `store` alone (the `keys` command: no engine,
/// so availability goes nowhere).
pub async fn open_key_store(store: &StoreKind) -> anyhow::Result<Arc<dyn ApiKeyStore>> {
    Ok(open_stores(store, Arc::new(LocalFeed::default())).await?.api_keys)
}

/// This host's name, as the membership table knows it.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "flashcore".to_owned())
}

/// This node's id when `FLASHCORE_NODE_ID` is unset: `{host}-{pid}`.
pub fn default_node_id() -> String {
    format!("{}-{}", host_name(), std::process::id())
}

/// This process as the membership table knows it: `FLASHCORE_NODE_ID` in
/// cluster mode, else `{host}-{pid}`; and a generation new for every start.
fn this_process(node_id: Option<&str>) -> Owner {
    let generation = flashcore_actors::clock::now().as_millis();
    Owner { node: node_id.map_or_else(default_node_id, str::to_owned), generation }
}

/// [`LeaseConfig::owner_gone`] for this host: a holder named `{host}-{pid}` of
/// this host whose process no longer runs (no such pid, or a zombie), such as
/// the flashcore a `kill -9` just ended and this one replaces. A frozen
/// (SIGSTOP) holder still runs and is waited for; so is a pid reused by another
/// process, and any holder of another host.
///
/// [`LeaseConfig::owner_gone`]: flashcore_actors::ownership::LeaseConfig::owner_gone
pub fn local_owner_gone(owner: &Owner) -> bool {
    let Some((host, pid)) = owner.node.rsplit_once('-') else { return false };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    if host != host_name() || pid == std::process::id() || pid == 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesized command name.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
        }
        Err(e) => e.kind() == std::io::ErrorKind::NotFound && std::path::Path::new("/proc/self/stat").exists(),
    }
}

/// What the nodes share: idempotency keys, rate limits and the availability
/// feed, in Redis when configured, else in-process.
struct SharedState {
    limits: RateLimits,
    idempotency: Idempotency,
    feed: Arc<dyn AvailabilityFeed>,
    /// The Redis feed's own handle, to stop its tasks at shutdown.
    redis_feed: Option<Arc<RedisFeed>>,
}

/// Builds the shared-state adapters. Never waits for Redis: it is connected on
/// first use, and limits fall back to this node's own while it is away (see
/// [`crate::rate_limit`]; idempotency fails closed, see [`crate::idempotency`]).
fn shared_state(cfg: &HttpConfig) -> anyhow::Result<SharedState> {
    let idempotency = |store| Idempotency::new(store, cfg.idempotency_ttl, cfg.request_timeout, cfg.max_body_bytes);
    let limits = |limiter, fallback| RateLimits::new(cfg.client_quota, cfg.sku_quota, limiter, fallback);
    match &cfg.redis_url {
        Some(url) => {
            let redis = Redis::new(url.expose(), &cfg.redis_prefix, cfg.redis_timeout)
                .map_err(|e| anyhow::anyhow!("REDIS_URL is not usable: {e}"))?;
            let feed = RedisFeed::start(&redis);
            let redis = Arc::new(redis);
            Ok(SharedState {
                limits: limits(redis.clone(), Some(Arc::new(LocalRateLimiter::default()))),
                idempotency: idempotency(redis),
                feed: feed.clone(),
                redis_feed: Some(feed),
            })
        }
        None => Ok(SharedState {
            limits: limits(Arc::new(LocalRateLimiter::default()), None),
            idempotency: idempotency(Arc::new(LocalIdempotency::default())),
            feed: Arc::new(LocalFeed::default()),
            redis_feed: None,
        }),
    }
}

/// The cart-token key: configured, else generated once and kept in the data
/// directory (so tokens survive restarts), else per process for the memory store.
fn token_key(config: &Config) -> anyhow::Result<CartTokens> {
    if let Some(secret) = &config.token_secret {
        return Ok(CartTokens::new(secret.expose().as_bytes().to_vec()));
    }
    if !config.store.is_durable() {
        tracing::warn!(
            "FLASHCORE_TOKEN_SECRET unset: cart tokens are signed with a random key and die with this process"
        );
        return Ok(CartTokens::random());
    }
    let path = config.data_dir.join("token.key");
    if let Ok(key) = std::fs::read(&path)
        && key.len() >= 32
    {
        return Ok(CartTokens::new(key));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let key: [u8; 32] = rand::random();
    write_private(&path, &key).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a cart-token key; set FLASHCORE_TOKEN_SECRET to share one across nodes");
    Ok(CartTokens::new(key.to_vec()))
}

/// Writes a file readable by its owner only.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

async fn not_found() -> ApiError {
    ApiError::not_found("not-found", "No such resource. See /docs for the API.")
}

/// What no route matched: a page or file of the frontend, if one is served,
/// else a 404 problem.
async fn fallback(frontend: Option<Arc<Frontend>>, req: Request) -> Response {
    if let Some(frontend) = frontend
        && let Some(mut res) = frontend.answer(req).await
    {
        res.extensions_mut().insert(Served);
        return res;
    }
    not_found().await.into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed", "See /docs for the API.")
}

impl Application {
    /// Binds `config.addr` (port 0 picks a free port) and builds the router. The
    /// store is opened and recovered by [`Application::run_until_stopped`] while
    /// already serving: `/health` answers at once, `/ready` (and the API) say 503
    /// `not-ready` until recovery is done.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Install the recorder first so start-up (recovery, seeding) is counted too.
        let metrics = http_metrics::recorder();
        let tokens = token_key(&config)?;
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("cannot listen on {}", config.addr))?;
        let internal = match &config.cluster {
            Some(cluster) => Some(crate::cluster::InternalPort::bind(cluster).await?),
            None => None,
        };
        let cluster_addr = internal.as_ref().and_then(|p| p.local_addr().ok()).map(|a| a.to_string());
        // The membership table announces where the other nodes call this one:
        // the node port in cluster mode (else the public address, for operators).
        let address = match (&config.node_id, &cluster_addr) {
            (Some(_), Some(internal)) => internal.clone(),
            _ => listener.local_addr()?.to_string(),
        };
        let ownership = Ownership::new(this_process(config.node_id.as_deref()), address, config.lease);
        let node = Node::new(ownership, config.http.request_timeout);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = shared_state(&config.http)?;
        let keys = Arc::new(ApiKeys::new(config.http.admin_key.as_ref().map(|k| k.expose())));
        if config.http.admin_key.is_some() {
            tracing::info!(target: "flashcore::security", "bootstrap admin key enabled (FLASHCORE_ADMIN_KEY)");
        }
        let SharedState { limits, idempotency, feed, redis_feed } = shared;
        let state = AppState::new(crate::state::Shared {
            node: Arc::clone(&node),
            tokens,
            keys: Arc::clone(&keys),
            limits,
            idempotency,
            metrics,
            shutdown: shutdown_rx,
            request_timeout: config.http.request_timeout,
            proxies: config.http.trusted_proxies.clone(),
            tls: config.http.tls.is_some(),
        });
        // A request meets the panic guard, CORS (if configured), the body limit,
        // then the pipeline (see `crate::pipeline` for its steps and their
        // order). Unknown paths and methods get the same pipeline (the
        // fallbacks are added before the layer).
        let frontend = match &config.http.frontend_dir {
            Some(dir) => {
                let frontend = Frontend::open(dir)?;
                tracing::info!(dir = %frontend.dir().display(), "serving the storefront at / and the console at /ops");
                Some(Arc::new(frontend))
            }
            None => None,
        };
        let router = api_router()
            .merge(openapi::router())
            .fallback(move |req: Request| fallback(frontend.clone(), req))
            .method_not_allowed_fallback(method_not_allowed)
            .layer(middleware::from_fn_with_state(state.clone(), pipeline::pipeline))
            .with_state(state.clone());
        let router = crate::hot::HotRoutes::new(router, state, config.http.max_body_bytes);
        // Checked here so a bad list fails the build, not the serve.
        headers::cors(&config.http.cors_origins)?;
        let store = match &config.store {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite { .. } => "sqlite",
            StoreKind::Postgres { .. } => "postgres",
        };
        let redis = if config.http.redis_url.is_some() { "redis" } else { "in-process" };
        tracing::info!(
            addr = %listener.local_addr()?,
            store,
            shared_state = redis,
            node = %node.ownership().owner(),
            cluster_addr = cluster_addr.as_deref().unwrap_or("none"),
            "flashcore listening"
        );
        let tls = match &config.http.tls {
            Some(files) => Some((files.clone(), files.load().await?)),
            None => None,
        };
        Ok(Application { listener, tls, router, config, node, keys, redis_feed, feed, shutdown, internal })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// This process on the store: its ownership, and its engine while it serves.
    pub fn node(&self) -> Arc<Node> {
        Arc::clone(&self.node)
    }

    /// Serves until `shutdown` resolves (or the store cannot be opened). Meanwhile
    /// the node stands by for the store's leases, recovers once it holds them,
    /// and serves; `/health` answers throughout. On `shutdown` it hands off: the
    /// API answers 503 `standby`, in-flight requests finish, write-behind state
    /// is flushed, the leases are released (a standby takes over at once), and
    /// only then does the listener stop and SSE streams end.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, tls, router, config, node, keys, redis_feed, feed, shutdown: tx, internal } = self;
        // The node-to-node port stops a renewal period after the public one:
        // meanwhile it answers every call `Elsewhere` (nothing is admitted),
        // so a node still routing here looks the shard up again instead of
        // meeting a closed connection; by then every node's routes were read
        // again.
        let linger = config.lease.renew_every();
        let internal = internal.map(|port| {
            let mut stop = tx.subscribe();
            tokio::spawn(port.serve(Arc::clone(&node), async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
                tokio::time::sleep(linger).await;
            }))
        });
        // The guards every request meets before the router: the panic guard,
        // CORS (if configured) and the body limit. Around the router once, not
        // `Router::layer`ed onto each route, which boxes and clones per layer
        // on every request.
        let edge = tower::ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .layer(CatchPanicLayer::custom(panic_response))
            .option_layer(headers::cors(&config.http.cors_origins)?)
            .map_response(IntoResponse::into_response)
            .layer(DefaultBodyLimit::max(config.http.max_body_bytes))
            .service(router);
        let lifecycle = tokio::spawn(async move {
            let stores = open_stores(&config.store, feed).await?;
            keys.set_store(stores.api_keys);
            let mut ports = stores.ports;
            // Cluster mode: work on other nodes' shards goes to them.
            if let (Some(_), Some(cluster)) = (&config.node_id, &config.cluster) {
                let peers: Arc<dyn flashcore_actors::peers::Peers> =
                    Arc::new(crate::cluster::NodeClient::new(cluster)?);
                ports.peers = Some(peers);
            }
            let config = Arc::new(config);
            node.run(
                stores.leases,
                |ownership| {
                    let (config, ports) = (Arc::clone(&config), ports.clone());
                    async move { start_engine(&config, ports, ownership).await.map_err(|e| format!("{e:#}")) }
                },
                shutdown,
            )
            .await;
            anyhow::Ok(())
        });
        let outcome = Arc::new(std::sync::Mutex::new(None));
        let finished = Arc::clone(&outcome);
        let stopped = async move {
            let result = match lifecycle.await {
                Ok(r) => r,
                Err(e) => Err(anyhow::anyhow!("the node's task failed: {e}")),
            };
            if let Err(e) = &result {
                tracing::error!(error = format!("{e:#}"), "start-up failed");
            }
            if let Ok(mut f) = finished.lock() {
                *f = Some(result);
            }
            let _ = tx.send(true);
        };
        match tls {
            None => {
                let make_service =
                    axum::ServiceExt::<Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(edge);
                axum::serve(listener, make_service).with_graceful_shutdown(stopped).await?;
            }
            Some((files, rustls)) => {
                // The same service over rustls; stops as gracefully (in-flight
                // requests finish) once the node has handed off.
                let watcher = files.watch(rustls.clone());
                let handle = axum_server::Handle::new();
                let graceful = handle.clone();
                tokio::spawn(async move {
                    stopped.await;
                    graceful.graceful_shutdown(None);
                });
                // Behind a router (one box per request): axum-server's serve
                // cannot name the guards' types when spawned.
                let make_service =
                    Router::new().fallback_service(edge).into_make_service_with_connect_info::<std::net::SocketAddr>();
                axum_server::from_tcp_rustls(listener.into_std()?, rustls)?.handle(handle).serve(make_service).await?;
                watcher.abort();
            }
        }
        if let Some(port) = internal {
            match port.await {
                Ok(Err(e)) => tracing::error!(error = format!("{e:#}"), "the node-to-node port failed"),
                Err(e) => tracing::error!(error = %e, "the node-to-node port's task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(feed) = &redis_feed {
            feed.shutdown().await;
        }
        if let Some(Err(e)) = outcome.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        tracing::info!("flashcore stopped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(node: String) -> Owner {
        Owner { node, generation: 1 }
    }

    #[test]
    fn only_a_process_of_this_host_that_no_longer_runs_is_gone() {
        let host = host_name();
        // A child that ran and was reaped: its pid names no process now.
        let mut done = std::process::Command::new("true").spawn().expect("spawn true");
        let dead = done.id();
        done.wait().expect("wait true");
        assert!(local_owner_gone(&named(format!("{host}-{dead}"))), "a reaped process is gone");

        // A child still running (and one frozen would be too) is not.
        let mut alive = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
        assert!(!local_owner_gone(&named(format!("{host}-{}", alive.id()))), "a running process is not gone");
        alive.kill().expect("kill sleep");
        alive.wait().expect("wait sleep");

        // Never this process, never another host, never a name of another shape.
        assert!(!local_owner_gone(&this_process(None)));
        assert!(!local_owner_gone(&named(format!("{host}x-{dead}"))));
        for node in ["seeder", "host-", "-12", &format!("{host}-abc"), &format!("{host}-0")] {
            assert!(!local_owner_gone(&named(node.to_owned())), "{node}");
        }
    }
}
