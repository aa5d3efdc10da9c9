//! Postgres adapters: the production store (`DATABASE_URL=postgres://…`).
//!
//! Journal positions come from the sequence `journal_pos_seq`. An append takes a
//! transaction-scoped advisory lock before drawing its positions, so appends are
//! serialized and positions follow commit order even if two writers ever run
//! at once (the group-commit writer runs one batch at a time, so the lock is
//! normally uncontended). A batch is written by one statement, whatever its size:
//! it takes the lock, draws the positions and inserts the orders, their lines and
//! the stock facts from arrays (`UNNEST`), so it is one implicit transaction and
//! one round trip.
//! Skipped (duplicate) orders leave gaps in the positions; written entries still
//! get strictly increasing positions in batch order.
//!
//! UUID columns are read as text (`::text`) and bound as text cast to `uuid`, so
//! the row types of `rows` serve both SQL adapters. SKUs compare and sort
//! with `COLLATE "C"` (byte order), as SQLite and the in-process store do,
//! whatever the database's default collation.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ports::{
    AppendOutcome, Catalog, EntityKind, FactCursor, Fence, ForeignLease, Journal, Lease, LeaseRow, LeaseStore, Member,
    MemberStatus, Owner, SnapshotRecord, SnapshotStore, StoreError,
};
use flashcore_domain::{
    CartId, JournalEntry, JournalPos, Order, OrderId, Product, ShardId, Shards, Sku, StockFact, StockFactKind,
};
use flashcore_http_ports::{ApiKeyRecord, ApiKeyStore};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::leases::{
    LeaseColumns, MEMBER_RETENTION_MS, MEMBERS_QUERY, MemberColumns, check_shard_count, lease_row, leases_of, may_take,
    member, shard_numbers,
};
use crate::rows::{
    ApiKeyRow, FactRow, LineRow, OrderRow, ProductRow, SnapshotRow, db, fact_columns, fact_cursor_pos, fact_cursor_sku,
    instant, snapshot, to_i64,
};

/// Key of the transaction-scoped advisory lock that serializes journal appends.
const APPEND_LOCK: i64 = 0x666c_6173_685f_6a6c; // "flash_jl"

/// Key of the fence lock: every fenced write holds it shared (`flashcore_fence`
/// in the migrations), a take-over exclusively.
const FENCE_LOCK: i64 = 0x666c_6173_685f_6663; // "flash_fc"

/// The schema's migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// How long one statement may run before the server cancels it.
const STATEMENT_TIMEOUT: &str = "10s";

/// How long a transaction may wait for its client's next statement.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "2s";

/// A pooled connection idle longer than this is pinged before it is handed
/// out; one used more recently is handed out as it is.
const PING_IF_IDLE: Duration = Duration::from_secs(1);

/// The Postgres store: journal, snapshots and catalog in one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and applies the migrations.
    ///
    /// Every connection runs with a `statement_timeout`, so a stuck statement
    /// becomes a [`StoreError`] instead of a hung request.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_migrating(url, None).await
    }

    /// Connects to `url`; the migrations are applied over `migrate_url` (a role
    /// that owns the schema) when given, so `url`'s role needs only to read and
    /// write the tables (see `deploy/postgres/roles.sql`). Without it they are
    /// applied over `url`, unless the database already has every one of them:
    /// a restricted role then restarts without schema rights.
    pub async fn connect_migrating(url: &str, migrate_url: Option<&str>) -> Result<Self, StoreError> {
        if let Some(owner) = migrate_url {
            let options = PgConnectOptions::from_str(owner).map_err(db)?.application_name("flashcore-migrate");
            let pool = PgPoolOptions::new().max_connections(1).connect_with(options).await.map_err(db)?;
            let migrated = MIGRATOR.run(&pool).await;
            pool.close().await;
            migrated
                .map_err(|e| StoreError::Unavailable(format!("migrations (FLASHCORE_MIGRATE_DATABASE_URL): {e}")))?;
        }
        let store = Self::open(url).await?;
        if migrate_url.is_none() && !store.migrated().await {
            MIGRATOR.run(&store.pool).await.map_err(|e| {
                StoreError::Unavailable(format!(
                    "migrations: {e} (a role without schema rights needs FLASHCORE_MIGRATE_DATABASE_URL set to one that owns the schema)"
                ))
            })?;
        }
        Ok(store)
    }

    /// True if the database has applied every migration this build has.
    async fn migrated(&self) -> bool {
        let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&self.pool).await;
        applied.ok().flatten().is_some_and(|v| v >= latest)
    }

    async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(db)?
            .application_name("flashcore")
            // Every statement here is a short parametrized lookup or one batch
            // write; planning each execution anew (the custom plans Postgres
            // tries first) costs more than it saves.
            // A transaction left idle (its process frozen between two of its
            // statements) is ended by the server, so its locks never outlast it
            // and a standby can take the leases. Only the lease acquisition uses
            // more than one statement, and sends them back to back.
            .options([
                ("statement_timeout", STATEMENT_TIMEOUT),
                ("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION_TIMEOUT),
                ("plan_cache_mode", "force_generic_plan"),
            ]);
        // sqlx pings every connection it takes from the pool by default: one
        // more round trip before every statement, the journal's group commit
        // included. A connection in steady use has just answered; one idle for
        // a while (across an outage, say) is still checked, and a dead one is
        // replaced before use as before.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await
            .map_err(db)?;
        Ok(PgStore { pool })
    }

    /// The pool (tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The orders of `rows` with their lines, loaded in one more query.
    async fn load_orders(&self, rows: Vec<OrderRow>) -> Result<Vec<Order>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = rows.iter().map(|r| r.order_id.as_str()).collect();
        let lines: Vec<PageLine> = sqlx::query_as(
            "SELECT order_id::text AS order_id, sku, title, qty, unit_amount, line_amount, hold_id::text AS hold_id \
             FROM order_lines WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, sku COLLATE \"C\"",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut by_order: HashMap<String, Vec<LineRow>> = HashMap::with_capacity(rows.len());
        for l in lines {
            by_order.entry(l.order_id).or_default().push(l.line);
        }
        rows.into_iter()
            .map(|r| {
                let lines = by_order.remove(&r.order_id).unwrap_or_default();
                r.into_order(lines)
            })
            .collect()
    }

    async fn load_order(&self, row: Option<OrderRow>) -> Result<Option<Order>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        Ok(self.load_orders(vec![row]).await?.pop())
    }
}

/// An `order_lines` row with its order id, for loading a page of orders at once.
#[derive(Debug, sqlx::FromRow)]
struct PageLine {
    order_id: String,
    #[sqlx(flatten)]
    line: LineRow,
}

const ORDER_COLUMNS: &str = "order_id::text AS order_id, cart_id::text AS cart_id, idempotency_key, total_amount, \
                             currency, email, payment_ref, created_at_ms";

/// Writes one batch in one statement (so one implicit transaction and one round
/// trip): checks the writer's fence (`flashcore_fence`, which holds the fence
/// lock shared until commit), then the other nodes' leases the batch relies on
/// (`flashcore_fence_foreign`, `$33`–`$37`; skipped without a call when there
/// are none, the usual batch), takes the append lock, draws `$6` positions and
/// numbers them in increasing order (`p`: entry number → position), then inserts
/// the orders (skipping duplicates, earlier entries first), the lines and sold
/// facts of the orders actually written, and the operator facts. Rows name their
/// entry by number (1-based). Foreign keys are checked at the end of the
/// statement, when the orders exist. Answers every entry's number and position,
/// and whether it is an order that was written.
const APPEND: &str = "\
WITH fence AS MATERIALIZED (
    SELECT flashcore_fence($1, $2, $3::int4[], $4::int8[]) AS ok
), foreign_fence AS MATERIALIZED (
    SELECT CASE WHEN cardinality($33::int4[]) = 0 THEN TRUE
                ELSE flashcore_fence_foreign($33::int4[], $34::int8[], $35::text[], $36::int8[], $37::int8[]) END AS ok
    FROM fence
), lk AS MATERIALIZED (
    SELECT pg_advisory_xact_lock($5) FROM foreign_fence
), p AS MATERIALIZED (
    SELECT row_number() OVER (ORDER BY s.pos) AS i, s.pos
    FROM (SELECT nextval('journal_pos_seq') AS pos FROM lk, generate_series(1, $6)) AS s
), o AS (
    INSERT INTO orders (order_id, pos, epoch, cart_id, idempotency_key, total_amount, currency, email, payment_ref,
                        created_at_ms)
    SELECT x.order_id::uuid, p.pos, x.epoch, x.cart_id::uuid, x.idempotency_key, x.total_amount, x.currency, x.email,
           x.payment_ref, x.created_at_ms
    FROM UNNEST($7::text[], $8::int8[], $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[], $14::text[],
                $15::int8[], $16::int8[])
         AS x(order_id, i, cart_id, idempotency_key, total_amount, currency, email, payment_ref, created_at_ms, epoch)
    JOIN p ON p.i = x.i
    ORDER BY p.pos
    ON CONFLICT DO NOTHING
    RETURNING pos
), l AS (
    INSERT INTO order_lines (order_id, sku, title, qty, unit_amount, line_amount, hold_id)
    SELECT x.order_id::uuid, x.sku, x.title, x.qty, x.unit_amount, x.line_amount, x.hold_id::uuid
    FROM UNNEST($17::int8[], $18::text[], $19::text[], $20::text[], $21::int4[], $22::int8[], $23::int8[],
                $24::text[])
         AS x(i, order_id, sku, title, qty, unit_amount, line_amount, hold_id)
    JOIN p ON p.i = x.i
    WHERE p.pos IN (SELECT pos FROM o)
), f AS (
    INSERT INTO stock_facts (pos, sku, kind, qty, order_id, hold_id, epoch)
    SELECT p.pos, x.sku, x.kind, x.qty, x.order_id::uuid, x.hold_id::uuid, x.epoch
    FROM UNNEST($25::int8[], $26::text[], $27::text[], $28::int8[], $29::text[], $30::text[], $31::bool[],
                $32::int8[])
         AS x(i, sku, kind, qty, order_id, hold_id, of_order, epoch)
    JOIN p ON p.i = x.i
    WHERE NOT x.of_order OR p.pos IN (SELECT pos FROM o)
)
SELECT p.i, p.pos, p.pos IN (SELECT pos FROM o) AS written FROM p ORDER BY p.i";

/// The fence's claims as the arrays `flashcore_fence` takes.
fn fence_columns(claims: &[Lease]) -> Result<(Vec<i32>, Vec<i64>), StoreError> {
    let shards = claims.iter().map(|c| c.shard).collect::<Vec<_>>();
    let epochs = claims.iter().map(|c| to_i64(c.epoch)).collect::<Result<_, _>>()?;
    Ok((shard_numbers(&shards), epochs))
}

/// Other nodes' leases as the arrays `flashcore_fence_foreign` takes.
#[derive(Default)]
struct ForeignColumns {
    shards: Vec<i32>,
    epochs: Vec<i64>,
    nodes: Vec<String>,
    generations: Vec<i64>,
    until_ms: Vec<i64>,
}

impl ForeignColumns {
    fn of(claims: &[ForeignLease]) -> Result<Self, StoreError> {
        let shards = shard_numbers(&claims.iter().map(|f| f.shard).collect::<Vec<_>>());
        let mut c = ForeignColumns { shards, ..ForeignColumns::default() };
        for f in claims {
            c.epochs.push(to_i64(f.epoch)?);
            c.nodes.push(f.owner.node.clone());
            c.generations.push(to_i64(f.owner.generation)?);
            c.until_ms.push(to_i64(f.until.as_millis())?);
        }
        Ok(c)
    }
}

/// The columns of one batch, as arrays for `UNNEST`; rows name their entry by
/// its 1-based number in the batch.
#[derive(Default)]
struct BatchColumns {
    order_id: Vec<String>,
    order_entry: Vec<i64>,
    cart_id: Vec<String>,
    idempotency_key: Vec<String>,
    total_amount: Vec<i64>,
    currency: Vec<String>,
    email: Vec<Option<String>>,
    payment_ref: Vec<String>,
    created_at_ms: Vec<i64>,
    order_epoch: Vec<i64>,

    line_entry: Vec<i64>,
    line_order_id: Vec<String>,
    line_sku: Vec<String>,
    line_title: Vec<String>,
    line_qty: Vec<i32>,
    line_unit_amount: Vec<i64>,
    line_amount: Vec<i64>,
    line_hold_id: Vec<String>,

    fact_entry: Vec<i64>,
    fact_sku: Vec<String>,
    fact_kind: Vec<&'static str>,
    fact_qty: Vec<i64>,
    fact_order_id: Vec<Option<String>>,
    fact_hold_id: Vec<Option<String>>,
    fact_of_order: Vec<bool>,
    fact_epoch: Vec<i64>,
}

impl BatchColumns {
    fn push_fact(
        &mut self,
        entry: i64,
        sku: &Sku,
        kind: &StockFactKind,
        of_order: bool,
        fence: &Fence,
    ) -> Result<(), StoreError> {
        let (kind, qty, order, hold) = fact_columns(kind);
        self.fact_entry.push(entry);
        self.fact_sku.push(sku.as_str().to_owned());
        self.fact_kind.push(kind);
        self.fact_qty.push(to_i64(qty)?);
        self.fact_order_id.push(order);
        self.fact_hold_id.push(hold);
        self.fact_of_order.push(of_order);
        self.fact_epoch.push(to_i64(fence.epoch(fence.shards().of_sku(sku)))?);
        Ok(())
    }

    fn push_order(&mut self, entry: i64, o: &Order, fence: &Fence) -> Result<(), StoreError> {
        let id = o.id.to_string();
        self.order_entry.push(entry);
        self.cart_id.push(o.cart_id.to_string());
        self.idempotency_key.push(o.idempotency_key.clone());
        self.total_amount.push(o.total.amount());
        self.currency.push(o.total.currency().as_str().to_owned());
        self.email.push(o.email.clone());
        self.payment_ref.push(o.payment_ref.clone());
        self.created_at_ms.push(to_i64(o.created_at.as_millis())?);
        self.order_epoch.push(to_i64(fence.epoch(fence.shards().of_cart(o.cart_id)))?);
        for l in &o.lines {
            self.line_entry.push(entry);
            self.line_order_id.push(id.clone());
            self.line_sku.push(l.sku.as_str().to_owned());
            self.line_title.push(l.title.clone());
            self.line_qty.push(
                i32::try_from(l.qty)
                    .map_err(|_| StoreError::Unavailable(format!("{} does not fit the store", l.qty)))?,
            );
            self.line_unit_amount.push(l.unit_price.amount());
            self.line_amount.push(l.line_total.amount());
            self.line_hold_id.push(l.hold_id.to_string());
        }
        for (sku, kind) in o.sold_facts() {
            self.push_fact(entry, sku, &kind, true, fence)?;
        }
        self.order_id.push(id);
        Ok(())
    }
}

#[async_trait]
impl Journal for PgStore {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let n = i64::try_from(batch.len()).map_err(|_| StoreError::Unavailable("batch too large".into()))?;
        let (shards, epochs) = fence_columns(&fence.claims_for_entries(batch))?;
        let foreign = ForeignColumns::of(&fence.foreign_claims_for_entries(batch))?;
        let mut c = BatchColumns::default();
        for (entry, number) in batch.iter().zip(1..) {
            match entry {
                JournalEntry::Order(o) => c.push_order(number, o, fence)?,
                JournalEntry::Stock { sku, kind } => c.push_fact(number, sku, kind, false, fence)?,
            }
        }
        let rows: Vec<(i64, i64, bool)> = sqlx::query_as(APPEND)
            .bind(&fence.owner().node)
            .bind(to_i64(fence.owner().generation)?)
            .bind(&shards)
            .bind(&epochs)
            .bind(APPEND_LOCK)
            .bind(n)
            .bind(&c.order_id)
            .bind(&c.order_entry)
            .bind(&c.cart_id)
            .bind(&c.idempotency_key)
            .bind(&c.total_amount)
            .bind(&c.currency)
            .bind(&c.email)
            .bind(&c.payment_ref)
            .bind(&c.created_at_ms)
            .bind(&c.order_epoch)
            .bind(&c.line_entry)
            .bind(&c.line_order_id)
            .bind(&c.line_sku)
            .bind(&c.line_title)
            .bind(&c.line_qty)
            .bind(&c.line_unit_amount)
            .bind(&c.line_amount)
            .bind(&c.line_hold_id)
            .bind(&c.fact_entry)
            .bind(&c.fact_sku)
            .bind(&c.fact_kind)
            .bind(&c.fact_qty)
            .bind(&c.fact_order_id)
            .bind(&c.fact_hold_id)
            .bind(&c.fact_of_order)
            .bind(&c.fact_epoch)
            .bind(&foreign.shards)
            .bind(&foreign.epochs)
            .bind(&foreign.nodes)
            .bind(&foreign.generations)
            .bind(&foreign.until_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        if rows.len() != batch.len() || rows.iter().zip(1..).any(|(&(i, _, _), number)| i != number) {
            return Err(StoreError::Unavailable(format!(
                "wrote {} entries, got {} positions back",
                batch.len(),
                rows.len()
            )));
        }
        Ok(batch
            .iter()
            .zip(rows)
            .map(|(entry, (_, pos, written))| match entry {
                JournalEntry::Order(_) if !written => AppendOutcome::DuplicateKey,
                _ => AppendOutcome::Written(JournalPos(pos as u64)),
            })
            .collect())
    }

    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        let orders: Vec<String> = orders.iter().map(ToString::to_string).collect();
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT pos, sku, kind, qty, order_id::text AS order_id, hold_id::text AS hold_id FROM stock_facts \
             WHERE sku = $1 AND (pos > $2 OR order_id = ANY($3::uuid[])) ORDER BY pos",
        )
        .bind(sku.as_str())
        .bind(to_i64(after.0)?)
        .bind(&orders)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(FactRow::into_fact).collect()
    }

    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError> {
        // Walks `stock_facts_pos_idx`: a range scan per page, no sort.
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT pos, sku, kind, qty, order_id::text AS order_id, hold_id::text AS hold_id FROM stock_facts \
             WHERE (pos, sku) > ($1, $2) ORDER BY pos, sku LIMIT $3",
        )
        .bind(fact_cursor_pos(after)?)
        .bind(fact_cursor_sku(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(FactRow::into_fact).collect()
    }

    async fn stock_facts_of_orders(&self, orders: &[OrderId]) -> Result<Vec<StockFact>, StoreError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        let orders: Vec<String> = orders.iter().map(ToString::to_string).collect();
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT pos, sku, kind, qty, order_id::text AS order_id, hold_id::text AS hold_id FROM stock_facts \
             WHERE order_id = ANY($1::uuid[]) ORDER BY pos, sku",
        )
        .bind(&orders)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(FactRow::into_fact).collect()
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1::uuid"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        self.load_order(row).await
    }

    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE cart_id = $1::uuid"))
            .bind(cart.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        self.load_order(row).await
    }

    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE ($1::text IS NULL OR order_id < $1::uuid) \
             ORDER BY order_id DESC LIMIT $2"
        ))
        .bind(before.map(|b| b.to_string()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        self.load_orders(rows).await
    }
}

#[async_trait]
impl SnapshotStore for PgStore {
    async fn save(&self, batch: &[SnapshotRecord], fence: &Fence) -> Result<(), StoreError> {
        // One INSERT … ON CONFLICT may not touch a row twice: keep the highest
        // version of each entity. Sorting by key also makes concurrent saves lock
        // rows in the same order.
        let mut latest: Vec<&SnapshotRecord> = batch.iter().collect();
        latest.sort_by(|a, b| {
            (a.kind.as_str(), a.id.as_str()).cmp(&(b.kind.as_str(), b.id.as_str())).then(b.version.cmp(&a.version))
        });
        latest.dedup_by(|later, first| later.kind == first.kind && later.id == first.id);
        if latest.is_empty() {
            return Ok(());
        }
        let (shards, epochs) = fence_columns(&fence.claims_for_snapshots(batch))?;
        let mut kind = Vec::with_capacity(latest.len());
        let mut id = Vec::with_capacity(latest.len());
        let mut pos = Vec::with_capacity(latest.len());
        let mut epoch = Vec::with_capacity(latest.len());
        let mut version = Vec::with_capacity(latest.len());
        let mut state = Vec::with_capacity(latest.len());
        for r in latest {
            kind.push(r.kind.as_str());
            id.push(r.id.as_str());
            pos.push(to_i64(r.pos.0)?);
            epoch.push(to_i64(fence.epoch(r.shard(fence.shards())))?);
            version.push(to_i64(r.version)?);
            state.push(r.state.as_str());
        }
        // A single statement is one transaction: the fence check and the write.
        sqlx::query(
            "WITH fence AS MATERIALIZED (SELECT flashcore_fence($7, $8, $9::int4[], $10::int8[]) AS ok) \
             INSERT INTO snapshots (kind, id, pos, epoch, version, state) \
             SELECT x.kind, x.id, x.pos, x.epoch, x.version, x.state::json \
             FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::text[]) \
                  AS x(kind, id, pos, epoch, version, state) CROSS JOIN fence \
             ON CONFLICT (kind, id) DO UPDATE SET pos = excluded.pos, epoch = excluded.epoch, \
             version = excluded.version, state = excluded.state, updated_at = now() \
             WHERE excluded.version > snapshots.version",
        )
        .bind(&kind)
        .bind(&id)
        .bind(&pos)
        .bind(&epoch)
        .bind(&version)
        .bind(&state)
        .bind(&fence.owner().node)
        .bind(to_i64(fence.owner().generation)?)
        .bind(&shards)
        .bind(&epochs)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        let row: Option<SnapshotRow> =
            sqlx::query_as("SELECT pos, version, state::text FROM snapshots WHERE kind = $1 AND id = $2")
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|r| snapshot(kind, id, r)).transpose()
    }

    async fn load_page(
        &self,
        kind: EntityKind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SnapshotRecord>, StoreError> {
        let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(
            "SELECT id, pos, version, state::text FROM snapshots WHERE kind = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(kind.as_str())
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(|(id, pos, version, state)| snapshot(kind, &id, (pos, version, state))).collect()
    }
}

#[async_trait]
impl Catalog for PgStore {
    async fn list(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<Product>, StoreError> {
        let rows: Vec<ProductRow> = sqlx::query_as(
            "SELECT sku, title, description, price_amount, currency, max_per_order, sale_starts_at_ms FROM products \
             WHERE ($1::text IS NULL OR sku > $1 COLLATE \"C\") ORDER BY sku COLLATE \"C\" LIMIT $2",
        )
        .bind(after.map(Sku::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.into_iter().map(ProductRow::into_product).collect()
    }

    async fn get(&self, sku: &Sku) -> Result<Option<Product>, StoreError> {
        let row: Option<ProductRow> = sqlx::query_as(
            "SELECT sku, title, description, price_amount, currency, max_per_order, sale_starts_at_ms FROM products \
             WHERE sku = $1",
        )
        .bind(sku.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(ProductRow::into_product).transpose()
    }

    async fn upsert(&self, p: &Product) -> Result<(), StoreError> {
        let max_per_order = p
            .max_per_order
            .map(|m| i32::try_from(m).map_err(|_| StoreError::Unavailable(format!("{m} does not fit the store"))))
            .transpose()?;
        sqlx::query(
            "INSERT INTO products (sku, title, description, price_amount, currency, max_per_order, sale_starts_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sku) DO UPDATE SET title = excluded.title, \
             description = excluded.description, price_amount = excluded.price_amount, currency = excluded.currency, \
             max_per_order = excluded.max_per_order, sale_starts_at_ms = excluded.sale_starts_at_ms, \
             updated_at = now()",
        )
        .bind(p.sku.as_str())
        .bind(&p.title)
        .bind(&p.description)
        .bind(p.price.amount())
        .bind(p.price.currency().as_str())
        .bind(max_per_order)
        .bind(p.sale_starts_at.map(|t| to_i64(t.as_millis())).transpose()?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }
}

/// `api_keys` columns as [`ApiKeyRow`] reads them (`created_at` as epoch ms).
const API_KEY_COLUMNS: &str = "id::text AS id, name, key_sha256, role, \
                               floor(extract(epoch FROM created_at) * 1000)::int8 AS created_at_ms, \
                               revoked_at IS NOT NULL AS revoked";

#[async_trait]
impl ApiKeyStore for PgStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        // Whole milliseconds times an interval: exact (microsecond arithmetic)
        // for any instant before the year 2255.
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_sha256, role, created_at) \
             VALUES ($1::uuid, $2, $3, $4, 'epoch'::timestamptz + $5::int8 * interval '1 millisecond')",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.key_sha256.as_slice())
        .bind(key.role.as_str())
        .bind(to_i64(key.created_at.as_millis())?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_key(&self, key_sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_sha256 = $1 AND revoked_at IS NULL"
        ))
        .bind(key_sha256.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.into_iter().map(ApiKeyRow::into_record).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        // Not a UUID: no such key (the other adapters say false too, not an error).
        let Ok(id) = uuid::Uuid::parse_str(id) else { return Ok(false) };
        // Revoking again keeps the first revocation's time.
        let done = sqlx::query("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1::uuid")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}

const LEASE_COLUMNS: &str = "shard::int8, owner_node, owner_generation, epoch, expires_at_ms";

/// Membership and leases on the database's clock (`flashcore_now_ms()`). Taking
/// leases holds the fence lock exclusively and locks the lease rows (`FOR
/// UPDATE`, in shard order) for the decision and the update; a writer's fence
/// check holds the fence lock shared. So a take-over and a fenced write are
/// ordered one way or the other, never interleaved.
#[async_trait]
impl LeaseStore for PgStore {
    async fn heartbeat(&self, owner: &Owner, address: &str, status: MemberStatus) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cluster_members (node_id, generation, address, status, heartbeat_ms) \
             VALUES ($1, $2, $3, $4, flashcore_now_ms()) ON CONFLICT (node_id, generation) DO UPDATE \
             SET address = excluded.address, status = excluded.status, heartbeat_ms = excluded.heartbeat_ms \
             WHERE cluster_members.status <> 'left'",
        )
        .bind(&owner.node)
        .bind(to_i64(owner.generation)?)
        .bind(address)
        .bind(status.as_str())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        sqlx::query("DELETE FROM cluster_members WHERE heartbeat_ms < flashcore_now_ms() - $1")
            .bind(MEMBER_RETENTION_MS)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        let rows: Vec<MemberColumns> = sqlx::query_as(MEMBERS_QUERY).fetch_all(&self.pool).await.map_err(db)?;
        rows.into_iter().map(member).collect()
    }

    async fn acquire(
        &self,
        owner: &Owner,
        shards: &[ShardId],
        all: Shards,
        ttl: std::time::Duration,
    ) -> Result<Option<Vec<Lease>>, StoreError> {
        let numbers = shard_numbers(shards);
        let generation = to_i64(owner.generation)?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        // A look without locks first: a standby polls often, and taking the
        // fence lock would stall the owner's writes.
        let (rows, max, held_by_others): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), coalesce(max(shard), -1)::int8, count(*) FILTER (WHERE shard = ANY($1) \
             AND owner_node IS NOT NULL AND (owner_node, owner_generation) <> ($2, $3) \
             AND expires_at_ms > flashcore_now_ms()) FROM shard_leases",
        )
        .bind(&numbers)
        .bind(&owner.node)
        .bind(generation)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        check_shard_count(rows, max, all)?;
        if held_by_others > 0 {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await.map_err(db)?;
        // The fence lock, exclusively: writes in flight (which hold it shared,
        // see `flashcore_fence`) commit first, and later ones see the new epochs.
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(FENCE_LOCK).execute(&mut *tx).await.map_err(db)?;
        if rows == 0 {
            sqlx::query("INSERT INTO shard_leases (shard) SELECT generate_series(0, $1 - 1) ON CONFLICT DO NOTHING")
                .bind(i64::from(all.count()))
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let (now,): (i64,) = sqlx::query_as("SELECT flashcore_now_ms()").fetch_one(&mut *tx).await.map_err(db)?;
        let locked: Vec<LeaseColumns> = sqlx::query_as(&format!(
            "SELECT {LEASE_COLUMNS} FROM shard_leases WHERE shard = ANY($1) ORDER BY shard FOR UPDATE"
        ))
        .bind(&numbers)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let locked: Vec<LeaseRow> = locked.into_iter().map(lease_row).collect::<Result<_, _>>()?;
        if locked.len() != shards.len() || !may_take(&locked, owner, instant(now)?) {
            return Ok(None); // the transaction rolls back when dropped
        }
        let taken: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE shard_leases SET owner_node = $2, owner_generation = $3, epoch = epoch + 1, \
             expires_at_ms = flashcore_now_ms() + $4 WHERE shard = ANY($1) RETURNING shard::int8, epoch",
        )
        .bind(&numbers)
        .bind(&owner.node)
        .bind(generation)
        .bind(ttl_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        leases_of(taken).map(Some)
    }

    async fn renew(&self, owner: &Owner, leases: &[Lease], ttl: std::time::Duration) -> Result<bool, StoreError> {
        let (shards, epochs) = fence_columns(leases)?;
        // Lease rows are locked in shard order (the CTE) by every statement that
        // updates them, as the fence locks them: no deadlock with a write.
        let done = sqlx::query(
            "WITH mine AS (SELECT l.shard FROM shard_leases AS l JOIN UNNEST($1::int4[], $2::int8[]) AS x(shard, epoch) \
             ON l.shard = x.shard WHERE l.epoch = x.epoch AND l.owner_node = $3 AND l.owner_generation = $4 \
             ORDER BY l.shard FOR UPDATE OF l) \
             UPDATE shard_leases AS l SET expires_at_ms = flashcore_now_ms() + $5 FROM mine WHERE l.shard = mine.shard",
        )
        .bind(&shards)
        .bind(&epochs)
        .bind(&owner.node)
        .bind(to_i64(owner.generation)?)
        .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() == leases.len() as u64)
    }

    async fn release(&self, owner: &Owner, leases: &[Lease]) -> Result<(), StoreError> {
        let (shards, epochs) = fence_columns(leases)?;
        sqlx::query(
            "WITH mine AS (SELECT l.shard FROM shard_leases AS l JOIN UNNEST($1::int4[], $2::int8[]) AS x(shard, epoch) \
             ON l.shard = x.shard WHERE l.epoch = x.epoch AND l.owner_node = $3 AND l.owner_generation = $4 \
             ORDER BY l.shard FOR UPDATE OF l) \
             UPDATE shard_leases AS l SET owner_node = NULL, owner_generation = NULL, expires_at_ms = 0 \
             FROM mine WHERE l.shard = mine.shard",
        )
        .bind(&shards)
        .bind(&epochs)
        .bind(&owner.node)
        .bind(to_i64(owner.generation)?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows: Vec<LeaseColumns> =
            sqlx::query_as(&format!("SELECT {LEASE_COLUMNS} FROM shard_leases ORDER BY shard"))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.into_iter().map(lease_row).collect()
    }
}
