//! The engine: the one facade the HTTP edge (and tests, and benchmarks) talk to.
//!
//! It wires ports to actors: a registry and a supervisor per entity kind, the
//! group-commit journal writer, the write-behind flusher and the cart reaper.
//! Handlers turn a request into one engine call and its result into a response;
//! nothing outside this crate touches actor state.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flashcore_domain::{Availability, Cart, CartId, CheckoutRequest, Order, OrderId, Product, ShardId, Sku};
use ractor::{Actor, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alarms::{Alarms, OversoldSku};
use crate::breaker::{Breaker, BreakerConfig, GuardedJournal, GuardedPayments, GuardedSnapshots};
use crate::budget::CheckoutBudget;
use crate::cart::{CartActivator, CartDeps, CartMsg, CartRegistry};
use crate::catalog::CatalogCache;
use crate::error::EngineError;
use crate::flusher::{FlushStatsView, Flusher};
use crate::gateway::{PaymentGateway, RetryPolicy, UnvoidedAuthorization};
use crate::journal::{JournalStatsView, JournalWriter};
use crate::ownership::Ownership;
use crate::parked::{ParkedSku, ParkedSkus, ParkedSource};
use crate::peers::{
    ForeignLeaseWire, PeerAnswer, PeerCall, PeerOp, Peers, REMOTE_PREPARE_TTL, RemotePrepares, SETTLE_MARGIN, SkuAt,
};
use crate::ports::{AvailabilityFeed, Catalog, Journal, Payments, SnapshotStore, StoreError};
use crate::recovery::recover_all;
use crate::registry::{Registry, RegistryConfig, RegistryStats, Spawner};
use crate::reply::{Reply, ask};
use crate::sku::{PrepareReq, SkuActor, SkuDeps, SkuMsg, StockChange};
use crate::sku_link::{SkuLink, unexpected};
use crate::supervisor::{EntitySupervisor, RestartPolicy, Supervision, SupervisorMsg};
use crate::ticket_relay::{Followed, TicketFollow, TicketRelays};
use crate::trace::SPANS;
use crate::waiting_room::{
    QueueActor, QueueDeps, QueueError, QueueMsg, RoomConfig, RoomControl, RoomStats, Rooms, TicketView,
};

/// Tunables. Defaults suit a single node serving a flash sale.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a cart line's hold lasts.
    pub hold_ttl: Duration,
    /// Idle time after which a cart actor is passivated.
    pub cart_idle: Duration,
    /// Idle time after which a SKU actor with nothing held is passivated (its
    /// state parked; its availability keeps being served from the feed).
    pub sku_idle: Duration,
    /// How often dirty snapshots are written behind; recovery replays the
    /// journal past the last one, so a longer interval loses nothing.
    pub flush_interval: Duration,
    /// Most entries per journal batch.
    pub journal_max_batch: usize,
    /// In-flight bound per SKU actor (past it: 503).
    pub sku_max_inflight: u64,
    /// In-flight bound per cart actor (past it: 503).
    pub cart_max_inflight: u64,
    /// How long a caller waits for an actor.
    pub call_timeout: Duration,
    /// Restart intensity: restarts allowed per entity within `restart_period`.
    pub max_restarts: usize,
    /// The window `max_restarts` is counted in, and how long a quarantine lasts.
    pub restart_period: Duration,
    /// The store's and the payment provider's circuit breakers.
    pub breaker: BreakerConfig,
    /// The checkout's per-step latency budget (the payment step's is also the
    /// provider call's timeout).
    pub budget: CheckoutBudget,
    /// Retries of payment calls.
    pub payment_retry: RetryPolicy,
    /// Cluster mode: how long a hold prepared here for another node's order
    /// waits for it (the order's write must commit before then).
    pub remote_prepare_ttl: Duration,
    /// Cluster mode: how much longer than that this node waits before it
    /// settles such a hold from the journal (covers its clock's difference
    /// from the store's).
    pub settle_margin: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hold_ttl: Duration::from_secs(600),
            cart_idle: Duration::from_secs(300),
            sku_idle: Duration::from_secs(120),
            flush_interval: Duration::from_millis(50),
            journal_max_batch: 1_000,
            sku_max_inflight: 8_192,
            cart_max_inflight: 64,
            call_timeout: Duration::from_secs(5),
            max_restarts: 5,
            restart_period: Duration::from_secs(10),
            breaker: BreakerConfig::default(),
            budget: CheckoutBudget::default(),
            payment_retry: RetryPolicy::default(),
            remote_prepare_ttl: REMOTE_PREPARE_TTL,
            settle_margin: SETTLE_MARGIN,
        }
    }
}

/// The adapters the engine runs on.
#[derive(Clone)]
pub struct Ports {
    /// Orders and stock facts.
    pub journal: Arc<dyn Journal>,
    /// Latest entity state, written behind so recovery replays only the journal's tail.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Product definitions, loaded into the catalog cache at start.
    pub catalog: Arc<dyn Catalog>,
    /// Authorizes checkout payments (and voids those whose order failed).
    pub payments: Arc<dyn Payments>,
    /// Carries each SKU's counts from its actor to readers and streams.
    pub feed: Arc<dyn AvailabilityFeed>,
    /// Cluster mode: the other nodes, for work on their shards (`None`: such
    /// work is refused as `Elsewhere`).
    pub peers: Option<Arc<dyn Peers>>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}

/// A product with its live availability.
#[derive(Debug, Clone)]
pub struct ProductView {
    /// The definition, shared with the catalog cache.
    pub product: Arc<Product>,
    /// Its counts as its SKU actor last published them.
    pub availability: Availability,
    /// Its waiting room's settings, if it has one on.
    pub waiting_room: Option<RoomConfig>,
}

/// Passivates `registry`'s actors idle for `idle`, checking a few times per `idle`.
fn reaper<K, M>(
    registry: Arc<Registry<K, M>>,
    idle: Duration,
    make: impl Fn(Reply<Result<bool, String>>) -> M + Send + Sync + 'static,
) -> JoinHandle<()>
where
    K: Clone + Eq + std::hash::Hash + std::fmt::Display + Send + Sync + 'static,
    M: ractor::Message,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(reap_every(idle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            registry.passivate_idle(idle, &make).await;
        }
    })
}

/// Every reaper's period for an idle time: a few checks per `idle`.
fn reap_every(idle: Duration) -> Duration {
    (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

/// Passivates carts idle for `idle`, checking a few times per `idle`.
fn cart_reaper(carts: Arc<CartRegistry>, idle: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(reap_every(idle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            carts.passivate_idle(idle).await;
        }
    })
}

/// The parent of every SKU actor; stopped after its children. (Carts are not
/// actors: their registry carries their [`Supervision`].)
struct Supervisors {
    skus: ActorRef<SupervisorMsg>,
    queues: ActorRef<SupervisorMsg>,
}

struct Inner {
    cfg: EngineConfig,
    skus: Arc<Registry<Sku, SkuMsg>>,
    carts: Arc<CartRegistry>,
    catalog: Arc<CatalogCache>,
    journal: JournalWriter,
    flusher: Flusher,
    feed: Arc<dyn AvailabilityFeed>,
    supervisors: Supervisors,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    ready: AtomicBool,
    alarms: Arc<Alarms>,
    parked: Arc<ParkedSkus>,
    gateway: PaymentGateway,
    queues: Arc<Registry<Sku, QueueMsg>>,
    rooms: Arc<Rooms>,
    /// Whose leases decide which shards this engine serves (cluster mode).
    ownership: Arc<Ownership>,
    /// The other nodes (cluster mode).
    peers: Option<Arc<dyn Peers>>,
    /// Holds prepared here for other nodes' orders.
    remote_prepares: Arc<RemotePrepares>,
    /// Cluster mode: streams of other nodes' SKUs watched here, each fed by
    /// one poll of the owner while anyone watches.
    relays: dashmap::DashMap<Sku, watch::Sender<Option<Availability>>>,
    /// Cluster mode: tickets of other nodes' waiting rooms followed here, per
    /// room fed by one poll of its node while anyone follows one.
    ticket_relays: TicketRelays,
    /// Snapshot reads (cluster mode: another node's waiting room settings).
    snapshots: Arc<dyn SnapshotStore>,
    /// The ports without breakers, for bulk recovery (at start, and of the
    /// shards a move brings).
    unguarded: Ports,
}

/// The running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine(Arc<Inner>);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("cfg", &self.0.cfg).finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts supervisors, journal writer, flusher and reaper over `ports`, and
    /// recovers every SKU. Every write goes out under `ownership`'s fence: start
    /// an engine only while holding the leases.
    pub async fn start(cfg: EngineConfig, ports: Ports, ownership: Arc<Ownership>) -> Result<Engine, StoreError> {
        // One breaker for the store (journal and snapshots alike), one for the provider.
        let store = Breaker::new("store", cfg.breaker);
        let payments = Breaker::new("payments", cfg.breaker);
        let probed = Arc::clone(&ports.journal);
        store.spawn_prober(Box::new(move || {
            let journal = Arc::clone(&probed);
            // A read of an order that does not exist: one round trip, nothing held.
            Box::pin(async move { journal.order(OrderId::new()).await.map(drop).map_err(|e| e.to_string()) })
        }));
        // Start-up recovery reads in bulk, unguarded: it has no caller to answer
        // fast, and a failure stops the start anyway.
        let unguarded = ports.clone();
        let ports = Ports {
            journal: Arc::new(GuardedJournal::new(ports.journal, Arc::clone(&store))),
            snapshots: Arc::new(GuardedSnapshots::new(ports.snapshots, Arc::clone(&store))),
            payments: Arc::new(GuardedPayments::new(ports.payments, payments, cfg.budget.payment)),
            ..ports
        };
        let (gateway, gateway_task) = PaymentGateway::start(Arc::clone(&ports.payments), cfg.payment_retry);
        let catalog = Arc::new(CatalogCache::load(Arc::clone(&ports.catalog)).await?);
        let (journal, journal_task) =
            JournalWriter::start(Arc::clone(&ports.journal), Arc::clone(&ownership), cfg.journal_max_batch, 65_536);
        let (flusher, flush_task) =
            Flusher::start(Arc::clone(&ports.snapshots), Arc::clone(&ownership), cfg.flush_interval);
        let alarms = Arc::new(Alarms::default());
        let parked = Arc::new(ParkedSkus::default());

        let registry_cfg = |kind, max_inflight| RegistryConfig { kind, max_inflight, call_timeout: cfg.call_timeout };
        let policy = RestartPolicy { max_restarts: cfg.max_restarts, period: cfg.restart_period };
        let skus = Registry::new(registry_cfg("sku", cfg.sku_max_inflight));
        let carts = CartRegistry::new(registry_cfg("cart", cfg.cart_max_inflight), Supervision::new(policy));
        let spawn_err = |e: ractor::SpawnErr| StoreError::Unavailable(format!("could not start supervisor: {e}"));
        let (sku_sup, _) =
            Actor::spawn(None, EntitySupervisor::default(), (Arc::clone(&skus), policy)).await.map_err(spawn_err)?;

        let sku_deps = SkuDeps {
            journal: journal.clone(),
            feed: Arc::clone(&ports.feed),
            flusher: flusher.clone(),
            snapshots: Arc::clone(&ports.snapshots),
            alarms: Arc::clone(&alarms),
            parked: Arc::clone(&parked),
        };
        // SKU ids come from the catalog, never minted: a SKU always recovers.
        let sku_spawner = Spawner::new(SkuActor, move |sku: &Sku, _activation| (sku.clone(), sku_deps.clone()));
        skus.wire(Arc::new(sku_spawner), sku_sup.get_cell());
        let link = SkuLink::new(Arc::clone(&skus), Arc::clone(&ownership), ports.peers.clone(), cfg.call_timeout);
        let cart_deps = Arc::new(CartDeps {
            skus: link,
            catalog: Arc::clone(&catalog),
            gateway: gateway.clone(),
            store,
            budget: cfg.budget,
            journal: journal.clone(),
            snapshots: Arc::clone(&ports.snapshots),
            flusher: flusher.clone(),
            hold_ttl: cfg.hold_ttl,
        });
        carts.wire(Arc::new(CartActivator(cart_deps)));

        // Waiting rooms: one queue actor per SKU that has one, supervised and
        // passivated like the SKU actors.
        let queues = Registry::new(registry_cfg("queue", cfg.sku_max_inflight));
        let (queue_sup, _) =
            Actor::spawn(None, EntitySupervisor::default(), (Arc::clone(&queues), policy)).await.map_err(spawn_err)?;
        let rooms = Arc::new(Rooms::default());
        let queue_deps = QueueDeps {
            flusher: flusher.clone(),
            snapshots: Arc::clone(&ports.snapshots),
            feed: Arc::clone(&ports.feed),
            catalog: Arc::clone(&catalog),
            rooms: Arc::clone(&rooms),
        };
        let queue_spawner = Spawner::new(QueueActor, move |sku: &Sku, _activation| (sku.clone(), queue_deps.clone()));
        queues.wire(Arc::new(queue_spawner), queue_sup.get_cell());
        let queue_reaper = reaper(Arc::clone(&queues), cfg.sku_idle, |reply| QueueMsg::Passivate { reply });

        let cart_reaper = cart_reaper(Arc::clone(&carts), cfg.cart_idle);
        let sku_reaper = reaper(Arc::clone(&skus), cfg.sku_idle, |reply| SkuMsg::Passivate { reply });
        let remote_prepares = Arc::new(RemotePrepares::default());
        let settler =
            settle_remote_prepares(Arc::clone(&remote_prepares), Arc::clone(&skus), journal.clone(), cfg.settle_margin);

        let engine = Engine(Arc::new(Inner {
            cfg,
            skus,
            carts,
            catalog,
            journal,
            flusher,
            feed: Arc::clone(&ports.feed),
            supervisors: Supervisors { skus: sku_sup, queues: queue_sup },
            tasks: Mutex::new(vec![
                journal_task,
                flush_task,
                cart_reaper,
                sku_reaper,
                gateway_task,
                queue_reaper,
                settler,
            ]),
            ready: AtomicBool::new(false),
            alarms,
            parked,
            gateway,
            queues,
            rooms,
            ownership,
            peers: ports.peers.clone(),
            remote_prepares,
            relays: dashmap::DashMap::new(),
            ticket_relays: TicketRelays::default(),
            snapshots: Arc::clone(&ports.snapshots),
            unguarded,
        }));
        let serves = |sku: &Sku| engine.serves_sku(sku);
        let recovered = match engine.recover_skus(&serves).await {
            Ok(()) => engine.recover_rooms(&serves, true).await,
            Err(e) => Err(e),
        };
        if let Err(e) = recovered {
            engine.abandon();
            return Err(e);
        }
        engine.0.ready.store(true, Ordering::Release);
        Ok(engine)
    }

    /// Recovers every SKU of the catalog in bulk ([`crate::recovery`]) so reads
    /// are served from the feed and recovery runs now, not on a buyer's request:
    /// each SKU's counts are published and its state parked; only SKUs holding
    /// stock for carts get an actor (their holds' expiry timer must run).
    ///
    /// Only the SKUs `scope` picks: in cluster mode those of this node's
    /// shards (their figures are published for everyone; another node's are
    /// its to publish), or of the shards a move brings.
    async fn recover_skus(&self, scope: &(dyn Fn(&Sku) -> bool + Sync)) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let ports = &self.0.unguarded;
        let skus = self.0.catalog.list(usize::MAX, None).into_iter().map(|p| p.sku.clone()).filter(|sku| scope(sku));
        let mut holding = Vec::new();
        let mut unsaved = 0;
        let (parked, flusher, alarms, feed) = (&self.0.parked, &self.0.flusher, &self.0.alarms, &ports.feed);
        let stats =
            recover_all(skus, ports.snapshots.as_ref(), ports.journal.as_ref(), crate::clock::now(), |sku, r| {
                alarms.check(&sku, &r.inv, "recovery");
                feed.publisher(&sku).publish(r.inv.availability());
                if r.inv.hold_count() > 0 {
                    holding.push(sku.clone());
                }
                if r.changed {
                    unsaved += 1;
                    flusher.mark_dirty(Box::new(ParkedSource { sku: sku.clone(), parked: Arc::clone(parked) }));
                }
                let version = crate::flusher::next_incarnation(r.stored_version);
                parked.park(sku, ParkedSku { inv: r.inv, version, unsaved: r.changed });
            })
            .await?;
        for sku in &holding {
            self.0
                .skus
                .slot(sku)
                .await
                .map_err(|e| StoreError::Unavailable(format!("recovery of SKU {sku} failed: {e}")))?;
        }
        tracing::info!(
            skus = self.0.catalog.len(),
            snapshots = stats.snapshots,
            facts_read = stats.facts_read,
            facts_applied = stats.facts_applied,
            holds_expired = stats.holds_expired,
            with_holds = holding.len(),
            checkpoints = unsaved,
            took_ms = started.elapsed().as_millis() as u64,
            "SKUs recovered"
        );
        Ok(())
    }

    /// Every waiting room stored gets its actor now: its settings are
    /// published for the cart edits' pass check, and a line with tickets
    /// waiting needs its admission timer (idle rooms are passivated later; the
    /// published settings stay).
    ///
    /// Those `scope` picks get their actor; the others are another node's
    /// (cluster mode), whose settings are noted when `note_others` (at start:
    /// cart edits here need a pass for them too).
    async fn recover_rooms(&self, scope: &(dyn Fn(&Sku) -> bool + Sync), note_others: bool) -> Result<(), StoreError> {
        let stored = crate::waiting_room::stored_rooms(self.0.unguarded.snapshots.as_ref()).await?;
        let count = stored.len();
        let (here, elsewhere): (Vec<_>, Vec<_>) = stored.into_iter().partition(|(sku, _, _)| scope(sku));
        for (sku, config, _) in elsewhere.into_iter().filter(|_| note_others) {
            self.0.rooms.set_foreign(&sku, Some(config));
        }
        for (sku, _config, _waiting) in here {
            self.0.rooms.adopt(&sku);
            self.0
                .queues
                .slot(&sku)
                .await
                .map_err(|e| StoreError::Unavailable(format!("recovery of the waiting room of {sku} failed: {e}")))?;
        }
        tracing::info!(rooms = count, "waiting rooms recovered");
        Ok(())
    }

    /// Cluster mode: `shards` are about to leave this node (a move; nothing
    /// is admitted and nothing is in flight): writes their dirty state under
    /// the leases still held, so the next owner recovers it from the store.
    pub async fn write_shards(&self, shards: &[ShardId]) -> Result<usize, StoreError> {
        let of = self.0.ownership.config().shards;
        let sku_in = |sku: &Sku| shards.contains(&of.of_sku(sku));
        for (_, a) in self.0.skus.actors().into_iter().filter(|(sku, _)| sku_in(sku)) {
            let _ = ask(&a, |reply| SkuMsg::RegisterDirty { reply: Some(reply) }, Some(self.0.cfg.call_timeout)).await;
        }
        for (_, a) in self.0.queues.actors().into_iter().filter(|(sku, _)| sku_in(sku)) {
            self.0.flusher.mark_dirty(Box::new(a));
        }
        self.0.flusher.flush_now().await
    }

    /// Cluster mode: `shards` left this node (written first by
    /// [`Engine::write_shards`], or never served): their SKU actors, carts,
    /// parked SKUs, waiting rooms and prepared remote holds leave memory,
    /// writing nothing more. Their next owner recovers them from the store.
    pub fn drop_shards(&self, shards: &[ShardId]) {
        let of = self.0.ownership.config().shards;
        let sku_in = |sku: &Sku| shards.contains(&of.of_sku(sku));
        let skus = self.0.skus.take_where(sku_in);
        for (_, a) in &skus {
            a.stop(Some("shard moved".into()));
        }
        for (_, a) in self.0.queues.take_where(sku_in) {
            a.stop(Some("shard moved".into()));
        }
        for sku in self.0.rooms.skus().into_iter().filter(|sku| sku_in(sku)) {
            self.0.rooms.hand_over(&sku);
        }
        let carts = self.0.carts.stop_where(|id| shards.contains(&of.of_cart(*id)));
        let parked = self.0.parked.drop_where(sku_in);
        self.0.remote_prepares.forget_where(sku_in);
        tracing::info!(shards = shards.len(), sku_actors = skus.len(), parked_skus = parked, carts, "shards dropped");
    }

    /// Cluster mode: `shards` came to this node (a move; their leases are
    /// held, nothing of theirs is admitted yet). Their SKUs and waiting rooms
    /// are recovered in bulk as at start; their carts activate on first use.
    pub async fn adopt(&self, shards: &[ShardId]) -> Result<(), StoreError> {
        let of = self.0.ownership.config().shards;
        let scope = |sku: &Sku| shards.contains(&of.of_sku(sku));
        self.recover_skus(&scope).await?;
        self.recover_rooms(&scope, false).await
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.0.cfg
    }

    /// True once start-up recovery is done and until shutdown begins.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }

    /// True when the catalog has no products (a demo catalog may be seeded).
    pub fn catalog_is_empty(&self) -> bool {
        self.0.catalog.is_empty()
    }

    /// Creates or replaces a product definition. In cluster mode every other
    /// node is told to read it again from the store (best effort: a node that
    /// misses it reads the whole catalog when its engine next starts).
    pub async fn upsert_product(&self, product: Product) -> Result<Arc<Product>, EngineError> {
        let p = self.0.catalog.upsert(product).await.map_err(EngineError::store)?;
        if self.serves_sku(&p.sku) {
            self.availability(&p.sku).await?;
        }
        self.tell_every_node(&p.sku, PeerOp::CatalogChanged { sku: p.sku.clone() }).await?;
        Ok(p)
    }

    /// Journals and applies an operator's stock change (in cluster mode, on
    /// the SKU's node).
    pub async fn adjust_stock(&self, sku: &Sku, change: StockChange) -> Result<Availability, EngineError> {
        self.0.catalog.get(sku).ok_or(EngineError::ProductNotFound)?;
        let shard = self.sku_shard(sku);
        if let Some(answer) = self.elsewhere(shard, || PeerOp::AdjustStock { sku: sku.clone(), change }).await? {
            return as_availability(answer);
        }
        self.product_def(sku)?;
        let r = self.0.skus.call(sku, |ticket, reply| SkuMsg::Adjust { ticket, change, reply }).await?;
        r.map_err(EngineError::from)
    }

    /// The definition of a product this node serves: `ProductNotFound`, or in
    /// cluster mode `Elsewhere` when another node holds the SKU's shard.
    fn product_def(&self, sku: &Sku) -> Result<Arc<Product>, EngineError> {
        let product = self.0.catalog.get(sku).ok_or(EngineError::ProductNotFound)?;
        self.here(self.0.ownership.config().shards.of_sku(sku))?;
        Ok(product)
    }

    /// Cluster mode: `Elsewhere` unless this node holds `shard`'s lease now.
    /// (One node holds every shard otherwise.)
    fn here(&self, shard: ShardId) -> Result<(), EngineError> {
        if self.0.ownership.serves(shard) { Ok(()) } else { Err(EngineError::Elsewhere { shard: shard.get() }) }
    }

    /// Cluster mode: sends `op` about `shard` to the node that holds it;
    /// `Elsewhere` without peers or while nobody is known to hold it.
    async fn forward(&self, shard: ShardId, op: PeerOp) -> Result<PeerAnswer, EngineError> {
        let peers = self.0.peers.as_ref().ok_or(EngineError::Elsewhere { shard: shard.get() })?;
        let route = crate::sku_link::route_to(&self.0.ownership, shard).await?;
        crate::sku_link::forward(peers.as_ref(), &self.0.ownership, &route, op, self.0.cfg.call_timeout).await
    }

    /// True when this node serves `shard` (waiting a moment while it
    /// recovers a shard it just took), else its work goes to the owner.
    async fn local(&self, shard: ShardId) -> bool {
        self.0.ownership.await_shard(shard).await
    }

    /// Cluster mode: `op`'s answer from `shard`'s owner, or `None` when this
    /// node serves the shard (now, or since: it came here while the call
    /// looked for its owner, who then refused it).
    async fn elsewhere(&self, shard: ShardId, op: impl FnOnce() -> PeerOp) -> Result<Option<PeerAnswer>, EngineError> {
        if self.local(shard).await {
            return Ok(None);
        }
        match self.forward(shard, op()).await {
            Err(EngineError::Elsewhere { .. }) if self.local(shard).await => Ok(None),
            other => other.map(Some),
        }
    }

    fn sku_shard(&self, sku: &Sku) -> ShardId {
        self.0.ownership.config().shards.of_sku(sku)
    }

    fn cart_shard(&self, id: CartId) -> ShardId {
        self.0.ownership.config().shards.of_cart(id)
    }

    /// True when this node serves `sku` (always, unless in cluster mode).
    pub fn serves_sku(&self, sku: &Sku) -> bool {
        self.here(self.0.ownership.config().shards.of_sku(sku)).is_ok()
    }

    fn here_cart(&self, id: CartId) -> Result<(), EngineError> {
        self.here(self.0.ownership.config().shards.of_cart(id))
    }

    /// A SKU's stock, from the availability feed (or its actor if nothing was
    /// published yet; in cluster mode its owner's, for a SKU elsewhere that no
    /// shared feed carries).
    pub async fn availability(&self, sku: &Sku) -> Result<Availability, EngineError> {
        // This process's feed may still hold what it published before the
        // shard moved away; the owner's figures are the truth.
        if let Some(answer) = self.elsewhere(self.sku_shard(sku), || PeerOp::Availability { sku: sku.clone() }).await? {
            return as_availability(answer);
        }
        self.availability_here(sku).await
    }

    /// A SKU's stock on this node: from the feed, else from its actor.
    async fn availability_here(&self, sku: &Sku) -> Result<Availability, EngineError> {
        if let Some(a) = self.0.feed.latest(sku) {
            return Ok(a);
        }
        Ok(self.0.skus.call(sku, |ticket, reply| SkuMsg::Get { ticket, reply }).await?)
    }

    /// One product with its availability (in cluster mode, wherever its SKU is served).
    pub async fn product(&self, sku: &Sku) -> Result<ProductView, EngineError> {
        let product = self.0.catalog.get(sku).ok_or(EngineError::ProductNotFound)?;
        let availability = self.availability(sku).await?;
        let waiting_room = self.0.rooms.config(sku);
        Ok(ProductView { product, availability, waiting_room })
    }

    /// A page of products in SKU order after `after`. In cluster mode the
    /// counts of SKUs served elsewhere come from one call per other node, all
    /// in flight at once.
    pub async fn products(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<ProductView>, EngineError> {
        let products = self.0.catalog.list(limit, after);
        let mut counts: Vec<Option<Availability>> = vec![None; products.len()];
        // Per other node: its route and the SKUs (with their place in the page) to ask it for.
        let mut asks: Vec<(crate::ports::Route, Vec<(usize, SkuAt)>)> = Vec::new();
        for (i, product) in products.iter().enumerate() {
            let shard = self.sku_shard(&product.sku);
            if self.here(shard).is_ok() || self.0.peers.is_none() {
                counts[i] = Some(self.availability(&product.sku).await?);
                continue;
            }
            let route = match crate::sku_link::route_to(&self.0.ownership, shard).await {
                // It is coming here (taken, being recovered): read here once it is.
                Err(EngineError::Elsewhere { .. }) if self.0.ownership.coming_here(shard) => {
                    counts[i] = Some(self.availability(&product.sku).await?);
                    continue;
                }
                route => route?,
            };
            let at = SkuAt { shard: shard.get(), epoch: route.epoch, sku: product.sku.clone() };
            match asks.iter_mut().find(|(r, _)| r.owner == route.owner && r.address == route.address) {
                Some((_, skus)) => skus.push((i, at)),
                None => asks.push((route, vec![(i, at)])),
            }
        }
        let answers = futures::future::join_all(asks.into_iter().map(|(route, skus)| self.counts_from(route, skus)));
        for answer in answers.await {
            for (i, a) in answer? {
                counts[i] = Some(a);
            }
        }
        let mut out = Vec::with_capacity(products.len());
        for (product, availability) in products.into_iter().zip(counts) {
            let availability =
                availability.ok_or_else(|| EngineError::Internal("a product's counts went missing".into()))?;
            let waiting_room = self.0.rooms.config(&product.sku);
            out.push(ProductView { product, availability, waiting_room });
        }
        Ok(out)
    }

    /// The counts of `skus` from the node at `route`, in one call; an entry it
    /// refuses (its shard moved since this node looked), or all of them when
    /// the node is gone or moving, is asked for again on its own, the way a
    /// single product's counts are (which waits out a move).
    async fn counts_from(
        &self,
        route: crate::ports::Route,
        skus: Vec<(usize, SkuAt)>,
    ) -> Result<Vec<(usize, Availability)>, EngineError> {
        let peers = self.0.peers.as_ref().ok_or(EngineError::Elsewhere { shard: route.shard.get() })?;
        let op = PeerOp::AvailabilityBatch { skus: skus.iter().map(|(_, at)| at.clone()).collect() };
        let results = match crate::sku_link::forward_once(peers.as_ref(), &route, op, self.0.cfg.call_timeout).await {
            Ok(PeerAnswer::Availabilities { results }) if results.len() == skus.len() => results,
            Ok(other) => return Err(unexpected(&other)),
            Err(e @ EngineError::Elsewhere { .. }) => vec![Err(e); skus.len()],
            Err(e) => return Err(e),
        };
        let answers = skus.into_iter().zip(results).map(|((i, at), result)| async move {
            match result {
                Ok(a) => Ok((i, a)),
                Err(EngineError::Elsewhere { .. }) => self.availability(&at.sku).await.map(|a| (i, a)),
                Err(e) => Err(e),
            }
        });
        futures::future::join_all(answers).await.into_iter().collect()
    }

    /// Answers an [`PeerOp::AvailabilityBatch`]: each entry's counts, or
    /// `Elsewhere` for one whose shard this node does not hold at its epoch.
    async fn availabilities_here(&self, skus: &[SkuAt]) -> Vec<Result<Availability, EngineError>> {
        let shards = self.0.ownership.config().shards;
        let mut out = Vec::with_capacity(skus.len());
        for at in skus {
            let result = match self.held_at(at.shard, at.epoch, shards.of_sku(&at.sku)) {
                Ok(_) if self.0.catalog.get(&at.sku).is_none() => Err(EngineError::ProductNotFound),
                Ok(_) => self.availability_here(&at.sku).await,
                Err(e) => Err(e),
            };
            out.push(result);
        }
        out
    }

    /// `raw`'s shard and this node's epoch of it, when it holds the shard
    /// under `epoch` (cluster mode) and `of_entity` (the shard of what a call
    /// is about) is that shard; else `Elsewhere`.
    fn held_at(&self, raw: u32, epoch: u64, of_entity: ShardId) -> Result<(ShardId, u64), EngineError> {
        let own = &self.0.ownership;
        let elsewhere = EngineError::Elsewhere { shard: raw };
        let shard = own.config().shards.shard(raw).ok_or_else(|| elsewhere.clone())?;
        let held = own.fence().map_or(0, |f| f.epoch(shard));
        // (`serves`: not while it is still recovering the shard after a take.)
        if of_entity != shard || held == 0 || held != epoch || !own.config().share || !own.serves(shard) {
            return Err(elsewhere);
        }
        Ok((shard, held))
    }

    /// A stream of a SKU's availability (current value first). In cluster
    /// mode a SKU of another node is relayed: its owner is asked every
    /// [`RELAY_EVERY`] while anyone here watches.
    pub async fn subscribe(&self, sku: &Sku) -> Result<watch::Receiver<Option<Availability>>, EngineError> {
        self.0.catalog.get(sku).ok_or(EngineError::ProductNotFound)?;
        let now = self.availability(sku).await?;
        if self.serves_sku(sku) {
            return Ok(self.0.feed.subscribe(sku));
        }
        let mut started = None;
        let rx = match self.0.relays.entry(sku.clone()) {
            dashmap::Entry::Occupied(e) => e.get().subscribe(),
            dashmap::Entry::Vacant(e) => {
                let (tx, rx) = watch::channel(Some(now));
                started = Some(tx.clone());
                e.insert(tx);
                rx
            }
        };
        if let Some(tx) = started {
            tokio::spawn(relay(Arc::downgrade(&self.0), sku.clone(), tx));
        }
        Ok(rx)
    }

    /// Opens a new, empty cart.
    pub async fn create_cart(&self) -> Result<Cart, EngineError> {
        let mut id = CartId::new();
        // Cluster mode: a new cart lives in a shard of this node (about one
        // try per node of the cluster).
        for _ in 0..10_000 {
            if self.here_cart(id).is_ok() {
                break;
            }
            id = CartId::new();
        }
        self.here_cart(id)?;
        Ok(self.0.carts.call_new(&id, |ticket, reply| CartMsg::Get { ticket, reply }).await?)
    }

    /// A cart as it is (in cluster mode, from whichever node serves it).
    pub async fn cart(&self, id: CartId) -> Result<Cart, EngineError> {
        if let Some(answer) = self.elsewhere(self.cart_shard(id), || PeerOp::Cart { cart: id }).await? {
            return as_cart(answer);
        }
        self.cart_here(id).await
    }

    async fn cart_here(&self, id: CartId) -> Result<Cart, EngineError> {
        self.here_cart(id)?;
        Ok(self.0.carts.call(&id, |ticket, reply| CartMsg::Get { ticket, reply }).await?)
    }

    /// Sets a line's quantity (0 removes the line). In cluster mode the cart's
    /// node does it, reserving on the SKU's node.
    pub async fn set_quantity(&self, id: CartId, sku: Sku, qty: u32) -> Result<Cart, EngineError> {
        self.0.catalog.get(&sku).ok_or(EngineError::ProductNotFound)?;
        if let Some(answer) =
            self.elsewhere(self.cart_shard(id), || PeerOp::SetQuantity { cart: id, sku: sku.clone(), qty }).await?
        {
            return as_cart(answer);
        }
        self.set_quantity_here(id, sku, qty).await
    }

    async fn set_quantity_here(&self, id: CartId, sku: Sku, qty: u32) -> Result<Cart, EngineError> {
        self.here_cart(id)?;
        self.0.catalog.get(&sku).ok_or(EngineError::ProductNotFound)?;
        self.0.carts.call(&id, |ticket, reply| CartMsg::SetQuantity { ticket, sku, qty, reply }).await?
    }

    /// Checks a cart out; returns the order and whether it replays an earlier
    /// checkout. In cluster mode the cart's node runs it, preparing on the
    /// SKUs' nodes.
    pub async fn checkout(&self, id: CartId, req: CheckoutRequest) -> Result<(Order, bool), EngineError> {
        if let Some(answer) =
            self.elsewhere(self.cart_shard(id), || PeerOp::Checkout { cart: id, req: req.clone() }).await?
        {
            return match answer {
                PeerAnswer::Order { order, replay } => Ok((order, replay)),
                other => Err(unexpected(&other)),
            };
        }
        self.checkout_here(id, req).await
    }

    async fn checkout_here(&self, id: CartId, req: CheckoutRequest) -> Result<(Order, bool), EngineError> {
        self.here_cart(id)?;
        let span = tracing::info_span!(target: SPANS, "cart.checkout", cart.id = %id, order.id = tracing::field::Empty);
        let req = Box::new(req);
        self.0.carts.call(&id, |ticket, reply| CartMsg::Checkout { ticket, req, span, reply }).await?
    }

    /// Serves a call from another node about a shard this one holds: refused
    /// as `Elsewhere` unless it holds the shard under the epoch the caller
    /// named (and the entity is of that shard).
    pub async fn serve_peer(&self, call: PeerCall) -> Result<PeerAnswer, EngineError> {
        let own = &self.0.ownership;
        let shards = own.config().shards;
        match &call.op {
            PeerOp::CatalogChanged { sku } => {
                let product = self.0.catalog.reload(sku).await.map_err(EngineError::store)?;
                if product.is_some() && self.serves_sku(sku) {
                    self.availability(sku).await?;
                }
                return Ok(PeerAnswer::Done);
            }
            PeerOp::RoomChanged { sku } => {
                if !self.serves_sku(sku) {
                    let config = crate::waiting_room::stored_room_config(self.0.snapshots.as_ref(), sku)
                        .await
                        .map_err(EngineError::store)?;
                    self.0.rooms.set_foreign(sku, config);
                }
                return Ok(PeerAnswer::Done);
            }
            // Each entry under its own lease.
            PeerOp::AvailabilityBatch { skus } => {
                return Ok(PeerAnswer::Availabilities { results: self.availabilities_here(skus).await });
            }
            _ => {}
        }
        let of_entity = match &call.op {
            // Answered above.
            PeerOp::AvailabilityBatch { .. } => return Err(EngineError::Elsewhere { shard: call.shard }),
            PeerOp::Reserve { sku, .. }
            | PeerOp::Release { sku, .. }
            | PeerOp::Prepare { sku, .. }
            | PeerOp::Abort { sku, .. }
            | PeerOp::Commit { sku, .. }
            | PeerOp::Availability { sku }
            | PeerOp::AdjustStock { sku, .. }
            | PeerOp::ConfigureRoom { sku, .. }
            | PeerOp::CatalogChanged { sku }
            | PeerOp::RoomChanged { sku }
            | PeerOp::Join { sku, .. }
            | PeerOp::Ticket { sku, .. }
            | PeerOp::Tickets { sku, .. }
            | PeerOp::ControlRoom { sku, .. } => shards.of_sku(sku),
            PeerOp::Cart { cart } | PeerOp::SetQuantity { cart, .. } | PeerOp::Checkout { cart, .. } => {
                shards.of_cart(*cart)
            }
        };
        // A shard this node is still recovering is waited for (a moment).
        if let Some(s) = shards.shard(call.shard) {
            own.await_shard(s).await;
        }
        let (shard, epoch) = self.held_at(call.shard, call.epoch, of_entity)?;
        let skus = &self.0.skus;
        match call.op {
            PeerOp::Reserve { sku, hold, cart, qty, expires_at } => {
                self.0.catalog.get(&sku).ok_or(EngineError::ProductNotFound)?;
                let result = skus
                    .call(&sku, |ticket, reply| {
                        crate::sku::ReserveReq { ticket, hold, cart, qty, expires_at, reply }.into()
                    })
                    .await?;
                Ok(PeerAnswer::Inventory { result: result.map(|()| qty) })
            }
            PeerOp::Release { sku, hold } => {
                let result =
                    skus.force_call(&sku, |ticket, reply| SkuMsg::Release { ticket, hold, reply: Some(reply) }).await?;
                Ok(PeerAnswer::Inventory { result })
            }
            PeerOp::Prepare { sku, order, cart, holds } => {
                let req = Box::new(PrepareReq { order, cart, holds });
                let result = skus.call(&sku, move |ticket, reply| SkuMsg::Prepare { ticket, req, reply }).await?;
                let result = result.map(|()| {
                    let until = crate::clock::now().plus_millis(self.0.cfg.remote_prepare_ttl.as_millis() as u64);
                    self.0.remote_prepares.add(order, sku.clone(), until);
                    ForeignLeaseWire {
                        shard: shard.get(),
                        epoch,
                        node: own.owner().node.clone(),
                        generation: own.owner().generation,
                        until,
                    }
                });
                Ok(PeerAnswer::Prepared { result })
            }
            PeerOp::Abort { sku, order } => {
                skus.force_cast(&sku, |ticket| SkuMsg::Abort { ticket, order }).await?;
                self.0.remote_prepares.done(order, &sku);
                Ok(PeerAnswer::Done)
            }
            PeerOp::Commit { sku, facts } => {
                let orders: Vec<OrderId> = facts
                    .iter()
                    .filter_map(|f| match f.kind {
                        flashcore_domain::StockFactKind::Sold { order, .. } => Some(order),
                        _ => None,
                    })
                    .collect();
                skus.force_cast(&sku, |ticket| SkuMsg::Commit { ticket, facts }).await?;
                for order in orders {
                    self.0.remote_prepares.done(order, &sku);
                }
                Ok(PeerAnswer::Done)
            }
            PeerOp::Availability { sku } => {
                self.0.catalog.get(&sku).ok_or(EngineError::ProductNotFound)?;
                Ok(PeerAnswer::Availability { availability: self.availability(&sku).await? })
            }
            PeerOp::Cart { cart } => Ok(PeerAnswer::Cart { cart: self.cart_here(cart).await? }),
            PeerOp::SetQuantity { cart, sku, qty } => {
                Ok(PeerAnswer::Cart { cart: self.set_quantity_here(cart, sku, qty).await? })
            }
            PeerOp::Checkout { cart, req } => {
                let (order, replay) = self.checkout_here(cart, req).await?;
                Ok(PeerAnswer::Order { order, replay })
            }
            PeerOp::AdjustStock { sku, change } => {
                self.product_def(&sku)?;
                let r = skus.call(&sku, |ticket, reply| SkuMsg::Adjust { ticket, change, reply }).await?;
                Ok(PeerAnswer::Availability { availability: r.map_err(EngineError::from)? })
            }
            PeerOp::ConfigureRoom { sku, config } => match self.configure_waiting_room(&sku, config).await {
                Ok(()) => Ok(PeerAnswer::Done),
                Err(QueueError::Engine(e)) => Err(e),
                Err(e) => Err(EngineError::Internal(format!("waiting room: {e}"))),
            },
            PeerOp::Join { sku, cart } => Ok(PeerAnswer::Ticket { result: self.join_queue(&sku, cart).await }),
            PeerOp::Ticket { sku, seq, cart } => {
                Ok(PeerAnswer::Ticket { result: self.queue_ticket(&sku, seq, cart).await })
            }
            PeerOp::Tickets { sku, tickets } => {
                let mut results = Vec::with_capacity(tickets.len());
                for (seq, cart) in tickets {
                    results.push(self.queue_ticket(&sku, seq, cart).await);
                }
                Ok(PeerAnswer::Tickets { results })
            }
            PeerOp::ControlRoom { sku, op } => Ok(PeerAnswer::Room { result: self.control_room(&sku, op).await }),
            // Answered above, before the shard's check.
            PeerOp::CatalogChanged { .. } | PeerOp::RoomChanged { .. } | PeerOp::AvailabilityBatch { .. } => {
                Ok(PeerAnswer::Done)
            }
        }
    }

    /// Holds prepared here for other nodes' orders and not settled yet.
    pub fn remote_prepares(&self) -> usize {
        self.0.remote_prepares.len()
    }

    /// An order by id.
    pub async fn order(&self, id: OrderId) -> Result<Option<Order>, EngineError> {
        self.0.journal.journal().order(id).await.map_err(EngineError::store)
    }

    /// Orders newest first, before the `before` cursor.
    pub async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, EngineError> {
        self.0.journal.journal().orders(limit, before).await.map_err(EngineError::store)
    }

    /// Supervision figures per entity kind, with the `top` busiest entities.
    pub fn actor_stats(&self, top: usize) -> Vec<RegistryStats> {
        vec![self.0.skus.stats(top), self.0.carts.stats(top), self.0.queues.stats(top)]
    }

    /// Turns `sku`'s waiting room on (or changes its settings), or off with
    /// `None` (its line is dropped); stored before it answers.
    pub async fn configure_waiting_room(&self, sku: &Sku, config: Option<RoomConfig>) -> Result<(), QueueError> {
        self.0.catalog.get(sku).ok_or(EngineError::ProductNotFound)?;
        let shard = self.sku_shard(sku);
        if !self.local(shard).await {
            // Done (and told to every node) by the SKU's node.
            self.forward(shard, PeerOp::ConfigureRoom { sku: sku.clone(), config }).await?;
            return Ok(());
        }
        self.product_def(sku)?;
        if config.is_none() && self.0.rooms.config(sku).is_none() {
            return Ok(());
        }
        self.0.queues.call(sku, |ticket, reply| QueueMsg::Configure { ticket, config, reply }).await??;
        self.tell_every_node(sku, PeerOp::RoomChanged { sku: sku.clone() }).await?;
        Ok(())
    }

    /// Cluster mode: tells every other live member of a change about `sku`
    /// they must know of (best effort: one that misses it reads it when its
    /// engine next starts).
    async fn tell_every_node(&self, sku: &Sku, op: PeerOp) -> Result<(), EngineError> {
        let Some(peers) = &self.0.peers else { return Ok(()) };
        let shard = self.sku_shard(sku);
        let members = self.0.ownership.other_members().await.map_err(EngineError::store)?;
        let calls = members.into_iter().map(|(owner, address)| {
            let route = crate::ports::Route { shard, owner, epoch: 0, address };
            let call = PeerCall { shard: shard.get(), epoch: 0, op: op.clone() };
            async move {
                if let Err(e) = peers.call(&route, call, self.0.cfg.call_timeout).await {
                    tracing::warn!(node = %route.owner, error = %e, "a node was not told of a change");
                }
            }
        });
        futures::future::join_all(calls).await;
        Ok(())
    }

    /// The settings of `sku`'s waiting room, if it has one (no actor call: cart
    /// edits check it).
    pub fn waiting_room(&self, sku: &Sku) -> Option<RoomConfig> {
        self.0.rooms.config(sku)
    }

    /// The figures of `sku`'s waiting room.
    pub fn room_stats(&self, sku: &Sku) -> Result<RoomStats, QueueError> {
        self.product_def(sku)?;
        self.0.rooms.stats(sku).ok_or(QueueError::NoRoom)
    }

    /// A stream of `sku`'s waiting-room figures (the SSE ticket streams and the
    /// console follow it without asking the actor).
    pub fn watch_room(&self, sku: &Sku) -> Result<watch::Receiver<RoomStats>, QueueError> {
        self.product_def(sku)?;
        self.0.rooms.watch(sku).ok_or(QueueError::NoRoom)
    }

    /// Every SKU with a waiting room.
    pub fn rooms(&self) -> Vec<Sku> {
        self.0.rooms.skus()
    }

    /// In cluster mode, `sku`'s room's `op` on the node serving it: `None`
    /// when that is this one.
    async fn room_elsewhere(&self, sku: &Sku, op: impl FnOnce() -> PeerOp) -> Option<PeerAnswer> {
        let shard = self.sku_shard(sku);
        if self.local(shard).await {
            return None;
        }
        Some(match self.forward(shard, op()).await {
            Ok(answer) => answer,
            Err(e) => PeerAnswer::Ticket { result: Err(QueueError::Engine(e)) },
        })
    }

    /// Gives `cart` a ticket in `sku`'s waiting room (or the one it has).
    pub async fn join_queue(&self, sku: &Sku, cart: CartId) -> Result<TicketView, QueueError> {
        if let Some(answer) = self.room_elsewhere(sku, || PeerOp::Join { sku: sku.clone(), cart }).await {
            return ticket_of(answer);
        }
        self.product_def(sku)?;
        if self.0.rooms.config(sku).is_none() {
            return Err(QueueError::NoRoom);
        }
        self.0.queues.call(sku, |ticket, reply| QueueMsg::Join { ticket, cart, reply }).await?
    }

    /// Ticket `seq` of `sku`'s waiting room, if `cart` holds it: from the line
    /// the queue actor last published, else (a ticket newer than that) from the actor.
    pub async fn queue_ticket(&self, sku: &Sku, seq: u32, cart: CartId) -> Result<TicketView, QueueError> {
        if let Some(answer) = self.room_elsewhere(sku, || PeerOp::Ticket { sku: sku.clone(), seq, cart }).await {
            return ticket_of(answer);
        }
        self.product_def(sku)?;
        if self.0.rooms.config(sku).is_none() {
            return Err(QueueError::NoRoom);
        }
        if let Some(view) = self.0.rooms.ticket(sku, seq, cart, crate::clock::now()) {
            return view;
        }
        self.0.queues.call(sku, |ticket, reply| QueueMsg::Read { ticket, seq, cart, reply }).await?
    }

    /// Follows ticket `seq` of `cart` in `sku`'s waiting room, for its event
    /// stream. In cluster mode a room of another node is relayed: that node
    /// is asked every [`RELAY_EVERY`] for all the tickets of the room followed
    /// here, in one call, while anyone here follows one.
    pub async fn follow_ticket(&self, sku: &Sku, seq: u32, cart: CartId) -> Result<TicketFollow, QueueError> {
        if self.serves_sku(sku) || self.0.peers.is_none() {
            // Watched before the read, so no change in between is missed.
            let rooms = self.watch_room(sku)?;
            let view = self.queue_ticket(sku, seq, cart).await?;
            return Ok(TicketFollow::here(self.clone(), sku.clone(), cart, rooms, view));
        }
        let view = self.queue_ticket(sku, seq, cart).await?;
        let (rx, started) = self.0.ticket_relays.follow(sku, (seq, cart), view.clone());
        if let Some(followed) = started {
            tokio::spawn(relay_tickets(Arc::downgrade(&self.0), sku.clone(), followed));
        }
        Ok(TicketFollow::relayed(view, rx))
    }

    /// Tells `sku`'s waiting room that `cart` reserved the product with its
    /// pass, so the pass no longer holds a free unit back from admission. Best
    /// effort: a room too busy to take it admits less until the pass lapses.
    pub async fn pass_redeemed(&self, sku: &Sku, cart: CartId) {
        if self.0.rooms.config(sku).is_none() {
            return;
        }
        if let Err(e) = self.0.queues.cast(sku, |ticket| QueueMsg::Redeemed { ticket, cart }).await {
            tracing::debug!(sku = %sku, error = %e, "waiting room not told of a used pass");
        }
    }

    /// An operator's pause, resume or rate change of `sku`'s waiting room.
    pub async fn control_room(&self, sku: &Sku, op: RoomControl) -> Result<RoomStats, QueueError> {
        if let Some(answer) = self.room_elsewhere(sku, || PeerOp::ControlRoom { sku: sku.clone(), op }).await {
            return match answer {
                PeerAnswer::Room { result } => result,
                PeerAnswer::Ticket { result: Err(e) } => Err(e),
                other => Err(QueueError::Engine(unexpected(&other))),
            };
        }
        self.product_def(sku)?;
        if self.0.rooms.config(sku).is_none() {
            return Err(QueueError::NoRoom);
        }
        self.0.queues.call(sku, |ticket, reply| QueueMsg::Control { ticket, op, reply }).await?
    }

    /// Journal writer counters: batches, entries, commit time, failures, queue depth.
    pub fn journal_stats(&self) -> JournalStatsView {
        self.0.journal.stats()
    }

    /// Payment authorizations not voided though their order failed (for an operator).
    pub fn unvoided_authorizations(&self) -> Vec<UnvoidedAuthorization> {
        self.0.gateway.unvoided()
    }

    /// Flusher counters: snapshots written, last flush time, pending retries, failures.
    pub fn flush_stats(&self) -> FlushStatsView {
        self.0.flusher.stats()
    }

    /// SKUs whose journal holds more units sold than their total (see [`Alarms`]).
    pub fn oversold(&self) -> Vec<OversoldSku> {
        self.0.alarms.oversold()
    }

    /// Fault injection for supervision drills: makes the SKU's actor panic.
    pub async fn inject_sku_failure(&self, sku: &Sku) -> Result<(), EngineError> {
        self.product_def(sku)?;
        // Forced: the drill must reach a busy actor too.
        Ok(self.0.skus.force_cast(sku, |ticket| SkuMsg::Crash { ticket }).await?)
    }

    /// Drops an engine whose leases were lost: admit nothing new, stop every
    /// actor and task, write nothing (the store would refuse it: another node
    /// owns it, and recovers what this one knew from the journal and snapshots).
    pub fn abandon(&self) {
        self.0.ready.store(false, Ordering::Release);
        self.0.skus.close_all();
        self.0.carts.close_all();
        self.0.queues.close_all();
        self.stop_actors();
    }

    fn stop_actors(&self) {
        self.0.carts.stop_all();
        for (_, a) in self.0.skus.actors() {
            a.stop(Some("shutdown".into()));
        }
        self.0.supervisors.skus.stop(None);
        for (_, a) in self.0.queues.actors() {
            a.stop(Some("shutdown".into()));
        }
        self.0.supervisors.queues.stop(None);
        if let Ok(mut tasks) = self.0.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// Graceful shutdown: admit nothing new, write all dirty state, stop actors.
    pub async fn shutdown(&self) {
        self.0.ready.store(false, Ordering::Release);
        self.0.skus.close_all();
        self.0.carts.close_all();
        // SKUs whose write-behind is paced register now, so the final flush has them.
        for (_, a) in self.0.skus.actors() {
            let _ = ask(&a, |reply| SkuMsg::RegisterDirty { reply: Some(reply) }, Some(Duration::from_secs(5))).await;
        }
        // Every waiting room's line goes into the final flush.
        self.0.queues.close_all();
        for (_, a) in self.0.queues.actors() {
            self.0.flusher.mark_dirty(Box::new(a));
        }
        match self.0.flusher.flush_now().await {
            Ok(n) => tracing::info!(snapshots = n, "final flush done"),
            Err(e) => tracing::error!(error = %e, "final flush failed"),
        }
        self.stop_actors();
    }
}

/// How often a relayed stream asks the SKU's owner for its counts.
pub const RELAY_EVERY: Duration = Duration::from_millis(250);

/// Feeds `tx` with `sku`'s counts from its owner until nobody watches (or the
/// engine is gone); a failed ask keeps the last value.
async fn relay(engine: std::sync::Weak<Inner>, sku: Sku, tx: watch::Sender<Option<Availability>>) {
    let mut tick = tokio::time::interval(RELAY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = engine.upgrade() else { return };
        let engine = Engine(inner);
        if tx.receiver_count() == 0 {
            engine.0.relays.remove_if(&sku, |_, t| t.receiver_count() == 0);
            if tx.receiver_count() == 0 {
                return;
            }
        }
        if let Ok(a) = engine.availability(&sku).await {
            tx.send_if_modified(|old| {
                let changed = *old != Some(a);
                *old = Some(a);
                changed
            });
        }
    }
}

/// Feeds the streams of `followed`'s tickets of `sku`'s room (another
/// node's) from that node, all tickets in one call per period, until nobody
/// follows one (or the engine is gone); a failed call keeps the last views.
async fn relay_tickets(engine: std::sync::Weak<Inner>, sku: Sku, followed: Arc<Followed>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RELAY_EVERY, RELAY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = engine.upgrade() else { return };
        let engine = Engine(inner);
        if engine.0.ticket_relays.retire(&sku, &followed) {
            return;
        }
        let tickets = followed.keys();
        let op = PeerOp::Tickets { sku: sku.clone(), tickets: tickets.clone() };
        match engine.forward(engine.sku_shard(&sku), op).await {
            Ok(PeerAnswer::Tickets { results }) if results.len() == tickets.len() => {
                for (key, result) in tickets.into_iter().zip(results) {
                    followed.publish(key, result);
                }
            }
            Ok(other) => tracing::warn!(sku = %sku, error = %unexpected(&other), "a relayed ticket read failed"),
            Err(e) => {
                tracing::debug!(sku = %sku, error = %e, "a relayed ticket read failed; the streams keep the last view")
            }
        }
    }
}

fn ticket_of(answer: PeerAnswer) -> Result<TicketView, QueueError> {
    match answer {
        PeerAnswer::Ticket { result } => result,
        other => Err(QueueError::Engine(unexpected(&other))),
    }
}

fn as_availability(answer: PeerAnswer) -> Result<Availability, EngineError> {
    match answer {
        PeerAnswer::Availability { availability } => Ok(availability),
        other => Err(unexpected(&other)),
    }
}

fn as_cart(answer: PeerAnswer) -> Result<Cart, EngineError> {
    match answer {
        PeerAnswer::Cart { cart } => Ok(cart),
        other => Err(unexpected(&other)),
    }
}

/// Settles, once a second, the holds prepared here for other nodes' orders
/// whose deadline (plus the margin) has passed without a commit or abort: the
/// store accepts no write relying on them any more, so the journal is final.
/// The order's facts there: committed; none: the holds return.
fn settle_remote_prepares(
    prepares: Arc<RemotePrepares>,
    skus: Arc<Registry<Sku, SkuMsg>>,
    journal: JournalWriter,
    margin: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (order, sku, until) in prepares.overdue(crate::clock::now(), margin) {
                let facts = match journal.journal().stock_facts_of_orders(&[order]).await {
                    Ok(facts) => facts.into_iter().filter(|f| f.sku == sku).collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(order.id = %order, sku = %sku, error = %e, "cannot settle a remote prepare yet");
                        prepares.add(order, sku, until);
                        continue;
                    }
                };
                let outcome = if facts.is_empty() { "aborted" } else { "committed" };
                let sent = if facts.is_empty() {
                    skus.force_cast(&sku, |ticket| SkuMsg::Abort { ticket, order }).await
                } else {
                    skus.force_cast(&sku, |ticket| SkuMsg::Commit { ticket, facts }).await
                };
                match sent {
                    Ok(()) => {
                        tracing::warn!(order.id = %order, sku = %sku, outcome, "settled a hold prepared for another node's order after its deadline");
                        metrics::counter!(crate::metrics::REMOTE_PREPARES_SETTLED, "outcome" => outcome).increment(1);
                    }
                    // Stopped: whoever recovers the SKU settles every prepared hold.
                    Err(crate::registry::RegistryError::NotRunning) => return,
                    Err(e) => {
                        tracing::warn!(order.id = %order, sku = %sku, error = %e, "cannot settle a remote prepare yet");
                        prepares.add(order, sku, until);
                    }
                }
            }
        }
    })
}
