//! How a cart reaches a SKU: its actor here, or (cluster mode) the SKU's owner
//! over the node port ([`crate::peers`]). The cart sends the same requests
//! either way; only a prepare's answer differs: a SKU elsewhere answers the
//! [`ForeignLease`] the order's journal write must rely on.

use std::sync::Arc;
use std::time::Duration;

use flashcore_domain::{CartId, HoldId, InventoryError, OrderId, ShardId, Sku, StockFact, Timestamp};

use crate::error::EngineError;
use crate::metrics as m;
use crate::ownership::Ownership;
use crate::peers::{PeerAnswer, PeerCall, PeerOp, Peers};
use crate::ports::{ForeignLease, Route};
use crate::registry::{Registry, RegistryError};
use crate::sku::{PrepareReq, ReserveReq, SkuMsg};

/// Where a SKU is served.
enum Place {
    Here,
    There(Route),
}

/// A cart's way to its SKUs. Cheap to clone.
#[derive(Clone)]
pub struct SkuLink {
    local: Arc<Registry<Sku, SkuMsg>>,
    ownership: Arc<Ownership>,
    peers: Option<Arc<dyn Peers>>,
    timeout: Duration,
}

impl std::fmt::Debug for SkuLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkuLink").field("remote", &self.peers.is_some()).finish_non_exhaustive()
    }
}

/// A commit that could not be delivered.
#[derive(Debug)]
pub enum Undelivered {
    /// Try again later.
    Retry(String),
    /// Nobody here or there will take it: the engine stopped, or the SKU's
    /// owner changed (whoever serves it now recovered the order from the journal).
    Moot,
}

impl SkuLink {
    /// The SKUs of `local`, and those of other nodes through `peers` (calls
    /// bounded by `timeout`).
    pub fn new(
        local: Arc<Registry<Sku, SkuMsg>>,
        ownership: Arc<Ownership>,
        peers: Option<Arc<dyn Peers>>,
        timeout: Duration,
    ) -> Self {
        SkuLink { local, ownership, peers, timeout }
    }

    async fn place(&self, sku: &Sku) -> Result<Place, EngineError> {
        let shard = self.ownership.config().shards.of_sku(sku);
        if self.ownership.await_shard(shard).await {
            return Ok(Place::Here);
        }
        if self.peers.is_none() {
            return Err(EngineError::Elsewhere { shard: shard.get() });
        }
        match route_to(&self.ownership, shard).await {
            // It came here while this node looked for its owner.
            Err(EngineError::Elsewhere { .. }) if self.ownership.await_shard(shard).await => Ok(Place::Here),
            r => r.map(Place::There),
        }
    }

    /// True when `sku`'s actor is this node's.
    pub fn is_here(&self, sku: &Sku) -> bool {
        self.ownership.serves(self.ownership.config().shards.of_sku(sku))
    }

    async fn remote(&self, route: &Route, op: PeerOp) -> Result<PeerAnswer, EngineError> {
        let Some(peers) = &self.peers else { return Err(EngineError::Elsewhere { shard: route.shard.get() }) };
        forward(peers.as_ref(), &self.ownership, route, op, self.timeout).await
    }

    /// Creates or resizes a hold.
    pub async fn reserve(
        &self,
        sku: &Sku,
        hold: HoldId,
        cart: CartId,
        qty: u32,
        expires_at: Timestamp,
    ) -> Result<Result<(), InventoryError>, EngineError> {
        loop {
            return match self.place(sku).await? {
                Place::Here => Ok(self
                    .local
                    .call(sku, |ticket, reply| ReserveReq { ticket, hold, cart, qty, expires_at, reply }.into())
                    .await?),
                Place::There(route) => {
                    match self.remote(&route, PeerOp::Reserve { sku: sku.clone(), hold, cart, qty, expires_at }).await {
                        Err(e) if self.came_here(&route, &e) => continue,
                        Ok(PeerAnswer::Inventory { result }) => Ok(result.map(drop)),
                        Ok(other) => Err(unexpected(&other)),
                        Err(e) => Err(e),
                    }
                }
            };
        }
    }

    /// The call to `route` was refused because its shard came to this node
    /// meanwhile (taken and recovered here): the work is done here instead.
    fn came_here(&self, route: &Route, e: &EngineError) -> bool {
        matches!(e, EngineError::Elsewhere { .. }) && self.ownership.coming_here(route.shard)
    }

    /// Drops a hold; answers the units freed.
    pub async fn release(&self, sku: &Sku, hold: HoldId) -> Result<Result<u32, InventoryError>, EngineError> {
        loop {
            return match self.place(sku).await? {
                Place::Here => Ok(self
                    .local
                    .force_call(sku, |ticket, reply| SkuMsg::Release { ticket, hold, reply: Some(reply) })
                    .await?),
                Place::There(route) => match self.remote(&route, PeerOp::Release { sku: sku.clone(), hold }).await {
                    Err(e) if self.came_here(&route, &e) => continue,
                    Ok(PeerAnswer::Inventory { result }) => Ok(result),
                    Ok(other) => Err(unexpected(&other)),
                    Err(e) => Err(e),
                },
            };
        }
    }

    /// Prepares `holds` for `order`, all or nothing; a SKU elsewhere answers
    /// the lease the order's write relies on.
    pub async fn prepare(
        &self,
        sku: &Sku,
        order: OrderId,
        cart: CartId,
        holds: Vec<HoldId>,
    ) -> Result<Result<Option<ForeignLease>, InventoryError>, EngineError> {
        loop {
            return match self.place(sku).await? {
                Place::Here => {
                    let req = Box::new(PrepareReq { order, cart, holds });
                    let r = self.local.call(sku, move |ticket, reply| SkuMsg::Prepare { ticket, req, reply }).await?;
                    Ok(r.map(|()| None))
                }
                Place::There(route) => {
                    match self
                        .remote(&route, PeerOp::Prepare { sku: sku.clone(), order, cart, holds: holds.clone() })
                        .await
                    {
                        Err(e) if self.came_here(&route, &e) => continue,
                        Err(e) => Err(e),
                        Ok(PeerAnswer::Prepared { result }) => Ok(match result {
                            Ok(wire) => Ok(Some(wire.into_lease(self.ownership.config().shards).ok_or_else(|| {
                                EngineError::Internal("a prepare answered a shard out of range".into())
                            })?)),
                            Err(e) => Err(e),
                        }),
                        Ok(other) => Err(unexpected(&other)),
                    }
                }
            };
        }
    }

    /// Returns `order`'s prepared holds (best effort: a SKU elsewhere settles
    /// them itself after the deadline; one here when its actor recovers).
    pub async fn abort(&self, sku: &Sku, order: OrderId) -> Result<(), EngineError> {
        loop {
            return match self.place(sku).await? {
                Place::Here => Ok(self.local.force_cast(sku, |ticket| SkuMsg::Abort { ticket, order }).await?),
                Place::There(route) => match self.remote(&route, PeerOp::Abort { sku: sku.clone(), order }).await {
                    Err(e) if self.came_here(&route, &e) => continue,
                    r => r.map(drop),
                },
            };
        }
    }

    /// Delivers committed facts of `sku`.
    pub async fn commit(&self, sku: &Sku, facts: Vec<StockFact>) -> Result<(), Undelivered> {
        match self.place(sku).await {
            Ok(Place::Here) => match self.local.force_cast(sku, |ticket| SkuMsg::Commit { ticket, facts }).await {
                Ok(()) => Ok(()),
                Err(RegistryError::NotRunning) => Err(Undelivered::Moot),
                Err(e) => Err(Undelivered::Retry(e.to_string())),
            },
            Ok(Place::There(route)) => match self.remote(&route, PeerOp::Commit { sku: sku.clone(), facts }).await {
                Ok(_) => Ok(()),
                Err(EngineError::Elsewhere { .. }) => Err(Undelivered::Moot),
                Err(e) => Err(Undelivered::Retry(e.to_string())),
            },
            // Nobody known to serve it now: its next owner recovers the order.
            Err(_) => Err(Undelivered::Moot),
        }
    }
}

/// Where `shard` is served by another node: the last round's route, else the
/// tables read again (every 100 ms at most, for at most [`MOVE_WAIT`]: a shard
/// between owners is free for a moment); `Elsewhere` while nobody else holds it.
pub async fn route_to(ownership: &Ownership, shard: ShardId) -> Result<Route, EngineError> {
    let other = |r: &Route| r.owner != *ownership.owner();
    if let Some(route) = ownership.route(shard).filter(other) {
        return Ok(route);
    }
    let started = std::time::Instant::now();
    loop {
        if let Some(route) = ownership.reroute(shard).await.filter(other) {
            return Ok(route);
        }
        if started.elapsed() >= MOVE_WAIT || ownership.coming_here(shard) {
            if !ownership.coming_here(shard) {
                tracing::warn!(
                    shard = shard.get(),
                    waited_ms = started.elapsed().as_millis() as u64,
                    "no node serves the shard"
                );
            }
            return Err(EngineError::Elsewhere { shard: shard.get() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The longest a forwarded call waits for a shard that is moving.
pub const MOVE_WAIT: Duration = Duration::from_secs(2);

/// Sends `op` about `route`'s shard to its owner, counting it: a refusal
/// because the owner moved makes this node forget the route (the next
/// renewal round reads it again).
pub async fn forward(
    peers: &dyn Peers,
    ownership: &Ownership,
    route: &Route,
    op: PeerOp,
    timeout: Duration,
) -> Result<PeerAnswer, EngineError> {
    let name = op.name();
    let started = std::time::Instant::now();
    let call = PeerCall { shard: route.shard.get(), epoch: route.epoch, op };
    let mut answer = peers.call(route, call.clone(), timeout).await;
    // Refused because the shard is moving or moved since this node looked:
    // again to whoever the lease table names now (the callee checks the epoch
    // again), waiting out a move in progress, for at most MOVE_WAIT.
    let mut tried = route.clone();
    // The same owner under the same epoch is asked again after a pause: it
    // refuses while its own share moves (a moment), and keeps the shard.
    while matches!(answer, Err(EngineError::Elsewhere { .. }))
        && started.elapsed() < MOVE_WAIT.min(timeout)
        && !ownership.coming_here(route.shard)
    {
        let next = match ownership.reroute(route.shard).await.filter(|f| f.owner != *ownership.owner()) {
            Some(fresh) if fresh != tried => fresh,
            Some(same) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                same
            }
            None => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        answer = peers.call(&next, PeerCall { epoch: next.epoch, ..call.clone() }, timeout).await;
        tried = next;
    }
    if matches!(answer, Err(EngineError::Elsewhere { .. })) && !ownership.coming_here(route.shard) {
        tracing::warn!(op = name, shard = route.shard.get(), to = %tried.owner, epoch = tried.epoch, waited_ms = started.elapsed().as_millis() as u64, "a forwarded call found no node serving its shard in time");
    }
    count(name, started, &answer);
    answer
}

/// Sends `op` to `route`'s node once, counting it: for a call about several
/// shards (a batch), whose refusals the caller routes again entry by entry.
pub async fn forward_once(
    peers: &dyn Peers,
    route: &Route,
    op: PeerOp,
    timeout: Duration,
) -> Result<PeerAnswer, EngineError> {
    let name = op.name();
    let started = std::time::Instant::now();
    let answer = peers.call(route, PeerCall { shard: route.shard.get(), epoch: route.epoch, op }, timeout).await;
    count(name, started, &answer);
    answer
}

fn count(name: &'static str, started: std::time::Instant, answer: &Result<PeerAnswer, EngineError>) {
    metrics::histogram!(m::FORWARD_SECONDS, "op" => name).record(started.elapsed().as_secs_f64());
    let outcome = match answer {
        Ok(_) => "ok",
        Err(EngineError::Elsewhere { .. }) => "elsewhere",
        Err(EngineError::Unavailable { .. }) => "failed",
        Err(_) => "refused",
    };
    metrics::counter!(m::FORWARDED, "op" => name, "outcome" => outcome).increment(1);
}

/// An answer that does not fit the call: a bug on one side.
pub(crate) fn unexpected(answer: &PeerAnswer) -> EngineError {
    EngineError::Internal(format!("a peer answered {answer:?}"))
}
