//! The cart: one per cart, owner of its lines and of the checkout protocol.
//!
//! A cart is a scheduled entity ([`crate::entity`]), not an actor: it is many,
//! mostly idle, and must be small; it runs one message at a time all the same.
//! Setting a line's quantity reserves or releases through the SKU actor before
//! the cart answers, so a cart line always stands for a hold. Checkout runs here:
//! prepare on every SKU (all or nothing), authorize payment, write the order to the
//! journal and wait for its batch to commit, then commit on every SKU. Idle carts
//! are passivated by the registry; their state is saved first.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flashcore_domain::{
    Cart, CartError, CartId, CartStatus, CheckoutRequest, InventoryError, JournalEntry, JournalPos, LineChange, Order,
    OrderId, Sku, StockFact,
};
use futures::future::join_all;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::breaker::Breaker;
use crate::budget::{self, CheckoutBudget, OverBudget, Step};
use crate::catalog::CatalogCache;
use crate::clock;
use crate::entity::{Activate, Entity, EntityRef};
use crate::error::EngineError;
use crate::flusher::{Flusher, SnapshotRequest};
use crate::gate::Ticket;
use crate::gateway::PaymentGateway;
use crate::journal::JournalWriter;
use crate::metrics as m;
use crate::ports::ForeignLease;
use crate::ports::{
    AppendOutcome, EntityKind, PaymentError, PaymentRequest, SnapshotRecord, SnapshotStore, StateJson, StoreError,
};
use crate::registry::Activation;
use crate::reply::Reply;
use crate::sku_link::{SkuLink, Undelivered};
use crate::trace::SPANS;

/// What every cart shares, behind one `Arc` (a cart holds the pointer, not a copy).
pub struct CartDeps {
    /// Where holds are reserved, prepared and committed (here or on the SKU's
    /// node): the cart never counts stock.
    pub skus: SkuLink,
    /// Product rules (price, limits, sale start) a line is checked against.
    pub catalog: Arc<CatalogCache>,
    /// Authorizes a checkout's amount before its order is written, and voids it
    /// if the order is not.
    pub gateway: PaymentGateway,
    /// The store's breaker: checkout refuses at once while it is open.
    pub store: Arc<Breaker>,
    /// The checkout's per-step latency budget.
    pub budget: CheckoutBudget,
    /// Where an order becomes durable; checkout waits for its batch to commit.
    pub journal: JournalWriter,
    /// Snapshot reads at activation.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Write-behind, and the synchronous save at passivation.
    pub flusher: Flusher,
    /// How long a hold lasts.
    pub hold_ttl: Duration,
}

impl std::fmt::Debug for CartDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CartDeps").field("hold_ttl", &self.hold_ttl).finish_non_exhaustive()
    }
}

/// Messages to a cart. Each one sent through the registry carries the
/// `ticket` that admitted it; a request carries the `reply` its answer goes to.
#[derive(Debug)]
pub enum CartMsg {
    /// The cart as it is.
    Get { ticket: Ticket, reply: Reply<Cart> },
    /// Set a line's quantity (0 removes it).
    SetQuantity {
        ticket: Ticket,
        sku: Sku,
        /// The line's new quantity, not a difference.
        qty: u32,
        reply: Reply<Result<Cart, EngineError>>,
    },
    /// Check out; answers the order and whether it is a replay of an earlier one.
    /// Boxed: rare, and the largest message. `span` is the checkout's span
    /// (a child of the caller's), under which the cart runs it.
    Checkout {
        ticket: Ticket,
        req: Box<CheckoutRequest>,
        span: tracing::Span,
        reply: Reply<Result<(Order, bool), EngineError>>,
    },
    /// Serialize state for write-behind (marks the cart clean).
    Snapshot { reply: Reply<SnapshotRecord> },
}

/// A cart's state: what the registry keeps per active cart.
#[derive(Debug)]
pub struct CartState {
    cart: Cart,
    deps: Arc<CartDeps>,
    dirty: bool,
    version: u64,
    /// A checkout whose journal write has an unknown outcome (it failed, and the
    /// journal could not be read to tell whether it committed anyway). Its holds
    /// stay prepared and its authorization stands until the journal answers:
    /// releasing either could resell sold units or lose an acknowledged
    /// order's payment. Resolved before anything else touches the cart.
    unresolved: Option<Unresolved>,
}

/// The registry of carts.
pub type CartRegistry = crate::entity::EntityRegistry<CartState>;

impl CartState {
    fn changed(&mut self, me: &EntityRef<CartState>) {
        self.version += 1;
        if !self.dirty {
            self.dirty = true;
            self.deps.flusher.mark_dirty(Box::new(me.clone()));
        }
    }

    fn record(&self) -> SnapshotRecord {
        SnapshotRecord {
            kind: EntityKind::Cart,
            id: self.cart.id.to_string(),
            pos: Default::default(),
            version: self.version,
            state: StateJson::encode(&self.cart).expect("a cart always serializes"),
        }
    }

    /// Sets a line's quantity; `Ok(true)` if the cart changed.
    async fn set_quantity(&mut self, sku: Sku, qty: u32) -> Result<bool, EngineError> {
        let product = self.deps.catalog.get(&sku).ok_or(EngineError::ProductNotFound)?;
        let now = clock::now();
        match self.cart.plan_set_quantity(&product, qty, now)? {
            LineChange::Unchanged => Ok(false),
            LineChange::Reserve { hold_id, qty } => {
                let cart = self.cart.id;
                let expires_at = now.plus_millis(self.deps.hold_ttl.as_millis() as u64);
                let result = self.deps.skus.reserve(&sku, hold_id, cart, qty, expires_at).await?;
                match result {
                    Ok(()) => {
                        self.cart.apply_reserved(&product, qty, hold_id, expires_at);
                        Ok(true)
                    }
                    Err(InventoryError::OutOfStock { available, .. }) => {
                        // `available` counts only free units; a resize also keeps its own.
                        let own = self.cart.lines.get(&sku).map_or(0, |l| u64::from(l.qty));
                        Err(EngineError::OutOfStock { sku, available: available + own })
                    }
                    Err(e) => Err(EngineError::Internal(format!("reserve refused: {e}"))),
                }
            }
            LineChange::Release { hold_id } => {
                let result = self.deps.skus.release(&sku, hold_id).await?;
                match result {
                    // Unknown: the hold already lapsed; the line goes either way.
                    Ok(_) | Err(InventoryError::UnknownHold(_)) => Ok(self.cart.apply_released(&sku).is_some()),
                    Err(e) => Err(EngineError::Internal(format!("release refused: {e}"))),
                }
            }
        }
    }

    /// Renews holds that lapsed (or are about to) before checkout, if stock allows.
    async fn renew_lapsed_holds(&mut self) -> Result<(), EngineError> {
        let soon = clock::now().plus_millis(1_000);
        let lapsing: Vec<(Sku, u32)> =
            self.cart.lines.values().filter(|l| l.hold_expires_at <= soon).map(|l| (l.sku.clone(), l.qty)).collect();
        for (sku, qty) in lapsing {
            match self.set_quantity(sku.clone(), qty).await {
                Ok(_) => {}
                Err(EngineError::OutOfStock { .. } | EngineError::ProductNotFound) => {
                    return Err(EngineError::StockLost { sku });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn abort(&self, order: OrderId, skus: &[Sku]) {
        for sku in skus {
            if let Err(e) = self.deps.skus.abort(sku, order).await {
                // A dead SKU actor aborts every prepared hold when it recovers;
                // a SKU elsewhere settles them after the order's deadline.
                tracing::warn!(sku = %sku, order.id = %order, error = %e, "abort not delivered");
            }
        }
    }

    /// Settles an earlier checkout whose outcome was unknown, from its write (if
    /// it has finished since) or the journal: journaled → the cart is checked out
    /// with it; absent → its holds return and its authorization is voided. `Err`
    /// while nobody can tell (the write still running, or the journal
    /// unreadable): the attempt stays unresolved, its holds and authorization kept.
    /// `Ok(Some(order))` if it was journaled.
    async fn resolve_unresolved(&mut self) -> Result<Option<Order>, EngineError> {
        let Some(mut attempt) = self.unresolved.take() else { return Ok(None) };
        if let Some(write) = &attempt.write
            && !write.is_finished()
        {
            self.unresolved = Some(attempt);
            return Err(EngineError::Unavailable {
                retry_after_secs: 1,
                reason: "an earlier checkout of this cart is still being written".into(),
            });
        }
        if let Some(write) = attempt.write.take()
            && let Ok(Ok(AppendOutcome::Written(pos))) = write.await
        {
            let facts = sold_facts(&attempt.order, pos);
            tracing::warn!(order.id = %attempt.order.id, "unresolved checkout was written after its budget");
            self.finish(attempt.order.clone(), facts).await;
            return Ok(Some(attempt.order));
        }
        let order = attempt.order;
        match self.reconcile(&order).await {
            Ok(Some((stored, facts))) => {
                if stored.id != order.id {
                    self.abort(order.id, &order_skus(&order)).await;
                    self.void(&order).await;
                }
                tracing::warn!(order.id = %stored.id, "unresolved checkout found in the journal");
                self.finish(stored.clone(), facts).await;
                Ok(Some(stored))
            }
            Ok(None) => {
                tracing::warn!(order.id = %order.id, "unresolved checkout not in the journal; holds returned");
                self.abort(order.id, &order_skus(&order)).await;
                self.void(&order).await;
                Ok(None)
            }
            Err(e) => {
                self.unresolved = Some(Unresolved { order, write: None });
                Err(EngineError::store(e))
            }
        }
    }

    /// True if `sku` is a line of the checkout whose outcome is unknown (its
    /// hold is prepared for that order).
    fn unresolved_line(&self, sku: &Sku) -> bool {
        self.unresolved.as_ref().is_some_and(|u| u.order.lines.iter().any(|l| l.sku == *sku))
    }

    /// 503 at once while the store's breaker refuses calls: no hold is
    /// prepared and no payment authorized for an order that cannot be written.
    fn store_open(&self) -> Result<(), EngineError> {
        match self.deps.store.rejecting() {
            None => Ok(()),
            Some(retry_in) => Err(EngineError::Unavailable {
                retry_after_secs: retry_after(retry_in),
                reason: "store circuit open".into(),
            }),
        }
    }

    async fn checkout(&mut self, req: CheckoutRequest) -> Result<(Order, bool), EngineError> {
        // An earlier attempt settled now answers this request (its first success).
        if let Some(order) = self.resolve_unresolved().await?
            && order.idempotency_key == req.idempotency_key
        {
            return Ok((order, false));
        }
        if let CartStatus::CheckedOut { order_id, idempotency_key } = &self.cart.status {
            if *idempotency_key != req.idempotency_key {
                return Err(EngineError::CartCheckedOut(*order_id));
            }
            let order = self.deps.journal.journal().order(*order_id).await.map_err(EngineError::store)?;
            return order.map(|o| (o, true)).ok_or(EngineError::Internal("checked-out cart without order".into()));
        }
        self.cart.ensure_checkout_ready()?;
        self.store_open()?;
        self.renew_lapsed_holds().await?;
        let budget = self.deps.budget;

        // 1. Prepare every SKU; all or nothing.
        let order_id = OrderId::new();
        let cart_id = self.cart.id;
        let lines: Vec<_> = self.cart.lines.values().map(|l| (l.sku.clone(), l.hold_id)).collect();
        let preparing = join_all(lines.iter().map(|(sku, hold)| {
            self.deps
                .skus
                .prepare(sku, order_id, cart_id, vec![*hold])
                .instrument(tracing::info_span!(target: SPANS, "sku.prepare", sku = %sku, order.id = %order_id))
        }));
        let results = match budget::run(Step::Prepare, &budget, preparing).await {
            Ok(results) => results,
            Err(over) => {
                // Every Prepare sent is queued before its Abort (one mailbox per SKU).
                let skus: Vec<Sku> = lines.iter().map(|(sku, _)| sku.clone()).collect();
                self.abort(order_id, &skus).await;
                return Err(over_budget(over));
            }
        };
        let mut prepared = Vec::new();
        let mut foreign: Vec<ForeignLease> = Vec::new();
        let mut failure = None;
        for ((sku, _), r) in lines.iter().zip(results) {
            match r {
                Ok(Ok(lease)) => {
                    prepared.push(sku.clone());
                    foreign.extend(lease);
                }
                Ok(Err(_)) => {
                    failure.get_or_insert(EngineError::StockLost { sku: sku.clone() });
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            self.abort(order_id, &prepared).await;
            return Err(e);
        }

        // 2. Authorize payment (within the payment budget, carried by the provider's breaker).
        let amount = self.cart.total()?.ok_or(CartError::Empty)?;
        let payment = PaymentRequest { order_id, amount, token: req.payment_token.clone() };
        let authorizing = tracing::info_span!(target: SPANS, "payment.authorize", order.id = %order_id);
        let started = tokio::time::Instant::now();
        let authorized = self.deps.gateway.authorize(&payment).instrument(authorizing).await;
        budget::observe(Step::Payment, started.elapsed());
        let reference = match authorized {
            Ok(r) => r,
            Err(e) => {
                self.abort(order_id, &prepared).await;
                return Err(match e {
                    PaymentError::Declined => EngineError::PaymentDeclined,
                    PaymentError::InvalidToken => EngineError::InvalidPaymentToken,
                    PaymentError::Provider(msg) => EngineError::PaymentProvider(msg),
                    PaymentError::Unavailable(reason) => EngineError::Unavailable { retry_after_secs: 1, reason },
                    PaymentError::TimedOut(reason) => {
                        metrics::counter!(m::CHECKOUT_BUDGET_EXCEEDED, "step" => Step::Payment.as_str()).increment(1);
                        EngineError::Unavailable { retry_after_secs: 1, reason }
                    }
                });
            }
        };

        // 3. Write the order and wait for its batch to commit (within the journal
        // budget; the write itself runs on, so its outcome is never lost).
        let order =
            Order::from_cart(&self.cart, order_id, req.idempotency_key.clone(), req.email, reference, clock::now())?;
        let journal = self.deps.journal.clone();
        let entry = JournalEntry::Order(order.clone());
        let mut write = tokio::spawn(async move { journal.append_relying(entry, foreign).await }.in_current_span());
        let outcome = match budget::run(Step::Journal, &budget, &mut write).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(StoreError::Unavailable(format!("journal write failed: {e}")))),
            Err(over) => {
                // Not known to be written nor not: keep everything until it is.
                tracing::error!(order.id = %order.id, "journal wait over budget; holds and authorization kept");
                metrics::counter!(m::CHECKOUTS_UNRESOLVED).increment(1);
                self.unresolved = Some(Unresolved { order, write: Some(write) });
                return Err(over_budget(over));
            }
        };
        let facts = match outcome {
            Ok(AppendOutcome::Written(pos)) => sold_facts(&order, pos),
            Err(StoreError::Rejected(reason)) => {
                // The breaker sent nothing: nothing was written; undo at once.
                self.abort(order_id, &prepared).await;
                self.void(&order).await;
                let retry_after_secs = self.deps.store.rejecting().map_or(1, retry_after);
                return Err(EngineError::Unavailable { retry_after_secs, reason });
            }
            other => {
                // The write failed or hit an existing order: it may still be ours (a
                // commit whose acknowledgment was lost, or an earlier attempt of this
                // checkout). The journal is the truth; ask it before giving up.
                match self.reconcile(&order).await {
                    Ok(Some((stored, facts))) => {
                        if stored.id != order.id {
                            self.void(&order).await;
                        }
                        tracing::warn!(order.id = %stored.id, "checkout reconciled with an order already journaled");
                        self.finish(stored.clone(), facts).await;
                        return Ok((stored, false));
                    }
                    Ok(None) => {
                        self.abort(order_id, &prepared).await;
                        self.void(&order).await;
                        return Err(match other {
                            Ok(_) => EngineError::IdempotencyKeyReused,
                            Err(e) => EngineError::store(e),
                        });
                    }
                    Err(read) => {
                        let Err(write) = other else {
                            // Nothing of ours was written (the key exists): safe to undo.
                            self.abort(order_id, &prepared).await;
                            self.void(&order).await;
                            return Err(EngineError::store(read));
                        };
                        // The write's outcome is unknown and the journal cannot
                        // tell: the order may be durable. Keep its holds prepared
                        // and its authorization; the next checkout (or a retry)
                        // settles it from the journal first.
                        tracing::error!(order.id = %order.id, error = %write, read_error = %read,
                            "checkout outcome unknown; holds and authorization kept until the journal answers");
                        metrics::counter!(m::CHECKOUTS_UNRESOLVED).increment(1);
                        self.unresolved = Some(Unresolved { order, write: None });
                        return Err(EngineError::store(write));
                    }
                }
            }
        };
        self.finish(order.clone(), facts).await;
        Ok((order, false))
    }

    /// The order this cart already has in the journal under the same key, with its
    /// sold facts (real positions), if any.
    /// `Err` if the journal could not be read: then nobody knows.
    async fn reconcile(&self, attempt: &Order) -> Result<Option<(Order, Vec<StockFact>)>, StoreError> {
        let journal = self.deps.journal.journal();
        let Some(stored) = journal.order_for_cart(attempt.cart_id).await? else { return Ok(None) };
        if stored.idempotency_key != attempt.idempotency_key {
            return Ok(None);
        }
        let mut facts = Vec::new();
        for line in &stored.lines {
            facts.extend(journal.stock_facts(&line.sku, JournalPos(u64::MAX), &[stored.id]).await?);
        }
        Ok(Some((stored, facts)))
    }

    /// Voids `order`'s authorization (retried in the background, recorded for an
    /// operator if it keeps failing: [`crate::gateway`]).
    async fn void(&self, order: &Order) {
        self.deps.gateway.void(order.id, &order.payment_ref).await;
    }

    /// Step 4: the order is durable; commit its facts on every SKU (delivery must
    /// not fail: it runs on past the commit budget) and freeze the cart.
    async fn finish(&mut self, order: Order, facts: Vec<StockFact>) {
        let skus = self.deps.skus.clone();
        let order_id = order.id;
        let mut delivery = tokio::spawn(
            async move {
                for fact in facts {
                    let span = tracing::info_span!(target: SPANS, "sku.commit", sku = %fact.sku, order.id = %order_id);
                    deliver_commit(skus.clone(), fact).instrument(span).await;
                }
            }
            .in_current_span(),
        );
        // Over budget: answered anyway (the order is durable), delivery goes on.
        let _ = budget::run(Step::Commit, &self.deps.budget, &mut delivery).await;
        self.cart.mark_checked_out(order.id, order.idempotency_key);
        metrics::counter!(m::ORDERS).increment(1);
    }
}

/// An order's sold facts at `pos`, where it was journaled.
fn sold_facts(order: &Order, pos: JournalPos) -> Vec<StockFact> {
    order.sold_facts().map(|(sku, kind)| StockFact { pos, sku: sku.clone(), kind }).collect()
}

/// `Retry-After` seconds for a wait of `d` (at least 1).
fn retry_after(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// A step out of its budget: 503, retry soon (with the same Idempotency-Key).
fn over_budget(over: OverBudget) -> EngineError {
    EngineError::Unavailable { retry_after_secs: 1, reason: over.to_string() }
}

/// A checkout whose outcome is not known yet (see [`CartState::resolve_unresolved`]).
#[derive(Debug)]
struct Unresolved {
    order: Order,
    /// Its journal write, if it was still running when the budget ran out.
    write: Option<JoinHandle<Result<AppendOutcome, StoreError>>>,
}

/// The SKUs an order's lines take stock from (where its holds were prepared).
fn order_skus(order: &Order) -> Vec<Sku> {
    order.lines.iter().map(|l| l.sku.clone()).collect()
}

/// Delivers a committed fact to its SKU actor (here or on the SKU's node),
/// retrying in the background until it lands. If the SKU actor is restarting,
/// its recovery reads the fact from the journal and the late delivery is a
/// no-op (facts apply idempotently); a SKU elsewhere that never hears of it
/// settles its prepared hold from the journal after the order's deadline.
async fn deliver_commit(skus: SkuLink, fact: StockFact) {
    let sku = fact.sku.clone();
    let facts = vec![fact];
    if !matches!(skus.commit(&sku, facts.clone()).await, Err(Undelivered::Retry(_))) {
        return;
    }
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(50);
        let give_up = tokio::time::Instant::now() + crate::peers::REMOTE_PREPARE_TTL + crate::peers::SETTLE_MARGIN;
        loop {
            tokio::time::sleep(delay).await;
            match skus.commit(&sku, facts.clone()).await {
                // Delivered, or nobody to deliver to: whoever recovers the SKU
                // next reads the fact.
                Ok(()) | Err(Undelivered::Moot) => return,
                Err(Undelivered::Retry(e)) if !skus.is_here(&sku) && tokio::time::Instant::now() >= give_up => {
                    tracing::warn!(sku = %sku, error = %e, "commit not delivered; the SKU settles it from the journal");
                    return;
                }
                Err(Undelivered::Retry(e)) => tracing::warn!(sku = %sku, error = %e, "commit delivery retrying"),
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    });
}

/// Loads a cart: its snapshot, or a new empty cart; a cart whose order reached
/// the journal after its last snapshot is marked checked out.
/// Returns the cart, its snapshot version, and whether it must be written (new, or
/// changed by recovery).
pub async fn recover(id: CartId, deps: &CartDeps) -> Result<(Cart, u64, bool), crate::ports::StoreError> {
    let (mut cart, version, mut changed) = match deps.snapshots.load(EntityKind::Cart, &id.to_string()).await? {
        Some(rec) => {
            let cart: Cart = rec
                .state
                .decode()
                .map_err(|e| crate::ports::StoreError::Unavailable(format!("corrupt snapshot of cart {id}: {e}")))?;
            (cart, rec.version, false)
        }
        None => (Cart::new(id), 0, true),
    };
    if cart.status == CartStatus::Open
        && let Some(order) = deps.journal.journal().order_for_cart(id).await?
    {
        cart.mark_checked_out(order.id, order.idempotency_key);
        changed = true;
    }
    Ok((cart, version, changed))
}

/// Activates carts: recovers them, or starts new ones empty.
#[derive(Debug)]
pub struct CartActivator(pub Arc<CartDeps>);

#[async_trait]
impl Activate<CartState> for CartActivator {
    async fn activate(
        &self,
        id: &CartId,
        activation: Activation,
        me: &EntityRef<CartState>,
    ) -> Result<CartState, String> {
        let deps = Arc::clone(&self.0);
        let (cart, version, changed) = match activation {
            // Written behind like any new cart, so it survives a restart.
            Activation::New => (Cart::new(*id), 0, true),
            Activation::Recover => recover(*id, &deps).await.map_err(|e| e.to_string())?,
        };
        let version = crate::flusher::next_incarnation(version);
        let mut state = CartState { cart, deps, dirty: false, version, unresolved: None };
        if changed {
            state.changed(me);
        }
        Ok(state)
    }
}

impl Entity for CartState {
    type Key = CartId;
    type Msg = CartMsg;

    async fn handle(&mut self, msg: CartMsg, me: &EntityRef<CartState>) -> Result<(), String> {
        match msg {
            CartMsg::Get { ticket: _ticket, reply } => {
                let _ = reply.send(self.cart.clone());
            }
            CartMsg::SetQuantity { ticket: _ticket, sku, qty, reply } => {
                // A resolution needs no snapshot: the journal holds its order.
                // An unresolved checkout holds back only its own lines: the
                // others change as usual (a line added meanwhile, if that
                // checkout turns out placed, is held until its hold lapses).
                let result = match self.resolve_unresolved().await {
                    Err(e) if self.unresolved_line(&sku) => Err(e),
                    _ => self.set_quantity(sku, qty).await,
                };
                if let Ok(true) = result {
                    self.changed(me);
                }
                let _ = reply.send(result.map(|_| self.cart.clone()));
            }
            CartMsg::Checkout { ticket: _ticket, req, span, reply } => {
                let before = self.cart.clone();
                // Boxed: checkout's future is the largest by far, and every
                // message's handler future (moved on each turn) would be its size.
                let result = Box::pin(self.checkout(*req).instrument(span.clone())).await;
                if let Ok((order, _)) = &result {
                    span.record("order.id", tracing::field::display(order.id));
                }
                // A placed order needs no snapshot: the journal holds it, and
                // recovery marks the cart checked out from there (`recover`).
                // At flash-sale rates that is one write-behind row per order saved.
                if result.is_err() && self.cart != before {
                    self.changed(me);
                }
                if let Err(e) = &result {
                    metrics::counter!(m::CHECKOUT_FAILURES, "reason" => e.code()).increment(1);
                }
                let _ = reply.send(result);
            }
            CartMsg::Snapshot { reply } => {
                self.dirty = false;
                let _ = reply.send(self.record());
            }
        }
        Ok(())
    }

    async fn passivate(&mut self) -> Result<bool, String> {
        // An unresolved checkout lives only here: settle it before going, or stay.
        self.resolve_unresolved().await.map_err(|e| e.to_string())?;
        // Always save: a flush in progress may not have landed yet, and the
        // next activation must see this state.
        self.deps.flusher.save_now(&[self.record()]).await.map_err(|e| e.to_string())?;
        Ok(true)
    }
}

impl SnapshotRequest for CartMsg {
    fn snapshot_request(reply: Reply<SnapshotRecord>) -> Self {
        CartMsg::Snapshot { reply }
    }
}
