//! The composition root: picks adapters, starts the engine, builds the router,
//! binds the listener. The binary and the tests both go through [`Application`].

use std::future::Future;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use flashcore_actors::payments::TestPayments;
use flashcore_actors::{Engine, Ports};
use flashcore_persistence::memory::{LocalFeed, MemoryCatalog, MemoryJournal, MemorySnapshots};
use flashcore_persistence::postgres::PgStore;
use flashcore_persistence::sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::auth::CartTokens;
use crate::config::{Config, StoreKind};
use crate::error::ApiError;
use crate::routes::{api_router, ops};
use crate::state::AppState;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A bound, ready-to-run flashcore.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    config: Config,
    engine: Arc<OnceLock<Engine>>,
    shutdown: watch::Sender<bool>,
}

/// Opens the store, recovers every SKU and seeds the demo catalog into an empty store.
async fn start_engine(config: &Config) -> anyhow::Result<Engine> {
    let ports = ports(&config.store).await?;
    let engine = Engine::start(config.engine.clone(), ports).await.context("engine start-up failed")?;
    if config.seed_demo && engine.catalog_is_empty() {
        crate::demo::seed(&engine).await.context("seeding the demo catalog failed")?;
    }
    Ok(engine)
}

/// The adapters for `store`: the only place that names concrete adapters.
async fn ports(store: &StoreKind) -> anyhow::Result<Ports> {
    let feed = Arc::new(LocalFeed::default());
    let payments = Arc::new(TestPayments);
    Ok(match store {
        StoreKind::Memory => Ports {
            journal: Arc::new(MemoryJournal::default()),
            snapshots: Arc::new(MemorySnapshots::default()),
            catalog: Arc::new(MemoryCatalog::default()),
            payments,
            feed,
        },
        StoreKind::Sqlite { url } => {
            let db = Arc::new(SqliteStore::open(url).await.with_context(|| format!("cannot open SQLite at {url}"))?);
            Ports { journal: db.clone(), snapshots: db.clone(), catalog: db, payments, feed }
        }
        StoreKind::Postgres { url } => {
            let db = Arc::new(PgStore::connect(url).await.context("cannot connect to Postgres (DATABASE_URL)")?);
            Ports { journal: db.clone(), snapshots: db.clone(), catalog: db, payments, feed }
        }
    })
}

/// The cart-token key: configured, else generated once and kept in the data
/// directory (so tokens survive restarts), else per process for the memory store.
fn token_key(config: &Config) -> anyhow::Result<CartTokens> {
    if let Some(secret) = &config.token_secret {
        return Ok(CartTokens::new(secret.as_bytes().to_vec()));
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
        let metrics = ops::prometheus();
        let tokens = token_key(&config)?;
        let engine = Arc::new(OnceLock::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState { engine: Arc::clone(&engine), tokens, metrics, shutdown: shutdown_rx };
        let router = api_router()
            .layer(middleware::from_fn(ops::track_metrics))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(TraceLayer::new_for_http())
            .with_state(state);
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("cannot listen on {}", config.addr))?;
        let store = match &config.store {
            StoreKind::Memory => "memory",
            StoreKind::Sqlite { .. } => "sqlite",
            StoreKind::Postgres { .. } => "postgres",
        };
        tracing::info!(addr = %listener.local_addr()?, store, "flashcore listening");
        Ok(Application { listener, router, config, engine, shutdown })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The engine, filled once recovery is done (tests use it for fault injection).
    pub fn engine(&self) -> Arc<OnceLock<Engine>> {
        Arc::clone(&self.engine)
    }

    /// Serves until `shutdown` resolves (or start-up fails), recovering the store
    /// meanwhile, then drains: stop accepting, end SSE streams, finish in-flight
    /// requests, flush write-behind state, stop actors.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, router, config, engine, shutdown: tx } = self;
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        let slot = Arc::clone(&engine);
        let starting = tokio::spawn(async move {
            match start_engine(&config).await {
                Ok(e) => {
                    let _ = slot.set(e);
                    tracing::info!("recovery done; ready");
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "start-up failed");
                    let _ = failed_tx.send(e);
                }
            }
        });
        let failure = Arc::new(std::sync::Mutex::new(None));
        let failed = Arc::clone(&failure);
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown => {}
                    Ok(e) = failed_rx => {
                        if let Ok(mut f) = failed.lock() {
                            *f = Some(e);
                        }
                    }
                }
                let _ = tx.send(true);
            })
            .await?;
        starting.abort();
        if let Some(engine) = engine.get() {
            engine.shutdown().await;
        }
        if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        tracing::info!("flashcore stopped");
        Ok(())
    }
}
