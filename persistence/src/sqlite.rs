//! SQLite adapters: the embedded default store (`./data/flashcore.db`).
//!
//! WAL mode with `synchronous = FULL`: a committed journal batch survives a
//! killed process (and the machine losing power). SQLite has one writer at a time;
//! the journal's single group-commit writer and the flusher are the only writers
//! on the hot path, so that is no bottleneck. Positions come from `journal_head`,
//! advanced in the same transaction as the entries.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use flashcore_actors::ports::{
    AppendOutcome, Catalog, EntityKind, FactCursor, Fence, ForeignLease, Journal, Lease, LeaseRow, LeaseStore, Member,
    MemberStatus, Owner, SnapshotRecord, SnapshotStore, StoreError,
};
use flashcore_domain::{CartId, JournalEntry, JournalPos, Order, OrderId, Product, ShardId, Shards, Sku, StockFact};
use flashcore_http_ports::{ApiKeyRecord, ApiKeyStore};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use crate::leases::{
    LeaseColumns, MEMBER_RETENTION_MS, MEMBERS_QUERY, MemberColumns, check_shard_count, lease_row, leases_of, may_take,
    member,
};
use crate::rows::{
    ApiKeyRow, FactRow, LineRow, OrderRow, ProductRow, SnapshotRow, db, fact_columns, fact_cursor_pos, fact_cursor_sku,
    snapshot, to_i64,
};

/// The SQLite store: journal, snapshots and catalog in one database file.
///
/// Writes go through one dedicated connection, and every write transaction
/// starts with `BEGIN IMMEDIATE`: it takes the database's write lock first
/// (waiting up to the busy timeout for another process, e.g. a standby taking
/// the leases), where a deferred transaction that reads before it writes would
/// fail at once (`SQLITE_BUSY`) when another connection wrote in between. So the
/// fence check and the write of a journal batch or snapshot batch are one atomic
/// step against every other process on the file. Reads use their own pool; WAL
/// lets them run beside the writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a
    /// plain path) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
        if let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.read_only(true))
            .await
            .map_err(db)?;
        Ok(SqliteStore { pool, writer })
    }

    /// The read-only pool (tests and tools).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single-connection write pool (tests and tools, e.g. migrations).
    pub fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    async fn load_order(&self, row: Option<OrderRow>) -> Result<Option<Order>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let lines: Vec<LineRow> = sqlx::query_as(
            "SELECT sku, title, qty, unit_amount, line_amount, hold_id FROM order_lines WHERE order_id = ? ORDER BY sku",
        )
        .bind(&row.order_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        row.into_order(lines).map(Some)
    }
}

/// Rows' bound parameters per statement stay under SQLite's limit of 32,766.
const ROWS_PER_STATEMENT: usize = 30_000;

const ORDER_COLUMNS: &str =
    "order_id, cart_id, idempotency_key, total_amount, currency, email, payment_ref, created_at_ms";

/// Refuses the transaction's write unless `owner` holds every lease of `claims`.
async fn check_fence(tx: &mut SqliteConnection, owner: &Owner, claims: &[Lease]) -> Result<(), StoreError> {
    for chunk in claims.chunks(ROWS_PER_STATEMENT / 4) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT count(*) FROM shard_leases WHERE owner_node = ");
        q.push_bind(owner.node.clone())
            .push(" AND owner_generation = ")
            .push_bind(to_i64(owner.generation)?)
            .push(" AND (shard, epoch) IN (VALUES ");
        let mut rows = q.separated(", ");
        for c in chunk {
            rows.push("(").push_bind_unseparated(i64::from(c.shard.get())).push_unseparated(", ");
            rows.push_bind_unseparated(to_i64(c.epoch)?).push_unseparated(")");
        }
        q.push(")");
        let held: i64 = q.build_query_scalar().fetch_one(&mut *tx).await.map_err(db)?;
        if held != chunk.len() as i64 {
            return Err(StoreError::Fenced(format!("{owner} does not hold the leases it writes under")));
        }
    }
    Ok(())
}

/// Refuses the transaction's write unless every one of `claims` (another node's
/// lease the write relies on) is still held by its owner at its epoch, and this
/// host's clock is before its `until`. Called after [`check_fence`], in the
/// same `BEGIN IMMEDIATE` transaction, so no take-over comes in between.
async fn check_foreign(tx: &mut SqliteConnection, claims: &[ForeignLease]) -> Result<(), StoreError> {
    if claims.is_empty() {
        return Ok(());
    }
    let now = now_ms()?;
    for c in claims {
        if to_i64(c.until.as_millis())? <= now {
            return Err(StoreError::Moved(format!("the hold on shard {} was due by {}", c.shard, c.until.as_millis())));
        }
    }
    for chunk in claims.chunks(ROWS_PER_STATEMENT / 4) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT count(*) FROM shard_leases WHERE (shard, epoch, owner_node, owner_generation) IN (VALUES ",
        );
        let mut rows = q.separated(", ");
        for c in chunk {
            rows.push("(").push_bind_unseparated(i64::from(c.shard.get())).push_unseparated(", ");
            rows.push_bind_unseparated(to_i64(c.epoch)?).push_unseparated(", ");
            rows.push_bind_unseparated(c.owner.node.clone()).push_unseparated(", ");
            rows.push_bind_unseparated(to_i64(c.owner.generation)?).push_unseparated(")");
        }
        q.push(")");
        let held: i64 = q.build_query_scalar().fetch_one(&mut *tx).await.map_err(db)?;
        if held != chunk.len() as i64 {
            return Err(StoreError::Moved("a shard the write relies on is no longer held as it was prepared".into()));
        }
    }
    Ok(())
}

/// Now, by this host's clock (every process on a SQLite file shares the host).
fn now_ms() -> Result<i64, StoreError> {
    to_i64(flashcore_actors::clock::now().as_millis())
}

#[async_trait]
impl Journal for SqliteStore {
    async fn append(&self, batch: &[JournalEntry], fence: &Fence) -> Result<Vec<AppendOutcome>, StoreError> {
        // A few multi-row statements per batch, not several per order: each
        // statement is a round trip to SQLite's worker thread.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        check_fence(&mut tx, fence.owner(), &fence.claims_for_entries(batch)).await?;
        check_foreign(&mut tx, &fence.foreign_claims_for_entries(batch)).await?;
        let epoch_of = |shard| to_i64(fence.epoch(shard));
        let head: i64 =
            sqlx::query_scalar("SELECT pos FROM journal_head WHERE id = 1").fetch_one(&mut *tx).await.map_err(db)?;
        // Entry i gets position head + i + 1; a skipped duplicate leaves a gap.
        let pos_of = |i: usize| head + i as i64 + 1;
        let orders: Vec<(usize, &Order)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                JournalEntry::Order(o) => Some((i, o)),
                JournalEntry::Stock { .. } => None,
            })
            .collect();
        let created: Vec<i64> =
            orders.iter().map(|(_, o)| to_i64(o.created_at.as_millis())).collect::<Result<_, _>>()?;
        let epochs: Vec<i64> =
            orders.iter().map(|(_, o)| epoch_of(fence.shards().of_cart(o.cart_id))).collect::<Result<_, _>>()?;
        let orders: Vec<(usize, &Order, i64, i64)> =
            orders.into_iter().zip(created).zip(epochs).map(|(((i, o), c), e)| (i, o, c, e)).collect();
        let mut inserted = std::collections::HashSet::new();
        for chunk in orders.chunks(ROWS_PER_STATEMENT / 10) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO orders (order_id, pos, epoch, cart_id, idempotency_key, total_amount, currency, email, \
                 payment_ref, created_at_ms) ",
            );
            q.push_values(chunk, |mut row, (i, o, created, epoch)| {
                row.push_bind(o.id.to_string())
                    .push_bind(pos_of(*i))
                    .push_bind(*epoch)
                    .push_bind(o.cart_id.to_string())
                    .push_bind(o.idempotency_key.clone())
                    .push_bind(o.total.amount())
                    .push_bind(o.total.currency().as_str().to_owned())
                    .push_bind(o.email.clone())
                    .push_bind(o.payment_ref.clone())
                    .push_bind(*created);
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING order_id");
            let ids: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await.map_err(db)?;
            inserted.extend(ids);
        }
        let written: Vec<&Order> =
            orders.iter().map(|(_, o, _, _)| *o).filter(|o| inserted.contains(&o.id.to_string())).collect();
        let lines: Vec<(&Order, &flashcore_domain::OrderLine)> =
            written.iter().flat_map(|o| o.lines.iter().map(move |l| (*o, l))).collect();
        for chunk in lines.chunks(ROWS_PER_STATEMENT / 7) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO order_lines (order_id, sku, title, qty, unit_amount, line_amount, hold_id) ",
            );
            q.push_values(chunk, |mut row, (o, l)| {
                row.push_bind(o.id.to_string())
                    .push_bind(l.sku.as_str().to_owned())
                    .push_bind(l.title.clone())
                    .push_bind(i64::from(l.qty))
                    .push_bind(l.unit_price.amount())
                    .push_bind(l.line_total.amount())
                    .push_bind(l.hold_id.to_string());
            });
            q.build().execute(&mut *tx).await.map_err(db)?;
        }
        let mut facts: Vec<(i64, Sku, flashcore_domain::StockFactKind)> = Vec::with_capacity(batch.len());
        let mut out = Vec::with_capacity(batch.len());
        for (i, entry) in batch.iter().enumerate() {
            match entry {
                JournalEntry::Order(o) if inserted.contains(&o.id.to_string()) => {
                    facts.extend(o.sold_facts().map(|(sku, kind)| (pos_of(i), sku.clone(), kind)));
                    out.push(AppendOutcome::Written(JournalPos(pos_of(i) as u64)));
                }
                JournalEntry::Order(_) => out.push(AppendOutcome::DuplicateKey),
                JournalEntry::Stock { sku, kind } => {
                    facts.push((pos_of(i), sku.clone(), kind.clone()));
                    out.push(AppendOutcome::Written(JournalPos(pos_of(i) as u64)));
                }
            }
        }
        let facts: Vec<_> = facts
            .into_iter()
            .map(|(pos, sku, kind)| {
                let (kind, qty, order, hold) = fact_columns(&kind);
                let epoch = epoch_of(fence.shards().of_sku(&sku))?;
                Ok((pos, sku, kind, to_i64(qty)?, order, hold, epoch))
            })
            .collect::<Result<_, StoreError>>()?;
        for chunk in facts.chunks(ROWS_PER_STATEMENT / 7) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO stock_facts (pos, sku, kind, qty, order_id, hold_id, epoch) ");
            q.push_values(chunk, |mut row, (pos, sku, kind, qty, order, hold, epoch)| {
                row.push_bind(*pos)
                    .push_bind(sku.as_str().to_owned())
                    .push_bind(*kind)
                    .push_bind(*qty)
                    .push_bind(order.clone())
                    .push_bind(hold.clone())
                    .push_bind(*epoch);
            });
            q.build().execute(&mut *tx).await.map_err(db)?;
        }
        sqlx::query("UPDATE journal_head SET pos = ? WHERE id = 1")
            .bind(head + batch.len() as i64)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(out)
    }

    async fn stock_facts(
        &self,
        sku: &Sku,
        after: JournalPos,
        orders: &[OrderId],
    ) -> Result<Vec<StockFact>, StoreError> {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT pos, sku, kind, qty, order_id, hold_id FROM stock_facts WHERE sku = ");
        q.push_bind(sku.as_str()).push(" AND (pos > ").push_bind(to_i64(after.0)?);
        if !orders.is_empty() {
            q.push(" OR order_id IN (");
            let mut ids = q.separated(", ");
            for o in orders {
                ids.push_bind(o.to_string());
            }
            q.push(")");
        }
        q.push(") ORDER BY pos");
        let rows: Vec<FactRow> = q.build_query_as().fetch_all(&self.pool).await.map_err(db)?;
        rows.into_iter().map(FactRow::into_fact).collect()
    }

    async fn stock_facts_page(&self, after: &FactCursor, limit: usize) -> Result<Vec<StockFact>, StoreError> {
        // Walks `stock_facts_pos_idx`: a range scan per page, no sort.
        let rows: Vec<FactRow> = sqlx::query_as(
            "SELECT pos, sku, kind, qty, order_id, hold_id FROM stock_facts \
             WHERE (pos, sku) > (?1, ?2) ORDER BY pos, sku LIMIT ?3",
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
        let mut out = Vec::new();
        // SQLite's bound-parameter limit: a few hundred ids per query.
        for chunk in orders.chunks(500) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT pos, sku, kind, qty, order_id, hold_id FROM stock_facts WHERE order_id IN (");
            let mut ids = q.separated(", ");
            for o in chunk {
                ids.push_bind(o.to_string());
            }
            q.push(")");
            let rows: Vec<FactRow> = q.build_query_as().fetch_all(&self.pool).await.map_err(db)?;
            for r in rows {
                out.push(r.into_fact()?);
            }
        }
        out.sort_by(|a, b| (a.pos, &a.sku).cmp(&(b.pos, &b.sku)));
        Ok(out)
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        self.load_order(row).await
    }

    async fn order_for_cart(&self, cart: CartId) -> Result<Option<Order>, StoreError> {
        let row = sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE cart_id = ?"))
            .bind(cart.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        self.load_order(row).await
    }

    async fn orders(&self, limit: usize, before: Option<OrderId>) -> Result<Vec<Order>, StoreError> {
        let rows: Vec<OrderRow> = sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE (?1 IS NULL OR order_id < ?1) ORDER BY order_id DESC LIMIT ?2"
        ))
        .bind(before.map(|b| b.to_string()))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(o) = self.load_order(Some(r)).await? {
                out.push(o);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl SnapshotStore for SqliteStore {
    async fn save(&self, batch: &[SnapshotRecord], fence: &Fence) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        check_fence(&mut tx, fence.owner(), &fence.claims_for_snapshots(batch)).await?;
        for r in batch {
            sqlx::query(
                "INSERT INTO snapshots (kind, id, pos, epoch, version, state) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (kind, id) DO UPDATE SET pos = excluded.pos, epoch = excluded.epoch, \
                 version = excluded.version, state = excluded.state, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE excluded.version > snapshots.version",
            )
            .bind(r.kind.as_str())
            .bind(&r.id)
            .bind(to_i64(r.pos.0)?)
            .bind(to_i64(fence.epoch(r.shard(fence.shards())))?)
            .bind(to_i64(r.version)?)
            .bind(r.state.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn load(&self, kind: EntityKind, id: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        let row: Option<SnapshotRow> =
            sqlx::query_as("SELECT pos, version, state FROM snapshots WHERE kind = ? AND id = ?")
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
            "SELECT id, pos, version, state FROM snapshots WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
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
impl Catalog for SqliteStore {
    async fn list(&self, limit: usize, after: Option<&Sku>) -> Result<Vec<Product>, StoreError> {
        let rows: Vec<ProductRow> = sqlx::query_as(
            "SELECT sku, title, description, price_amount, currency, max_per_order, sale_starts_at_ms FROM products \
             WHERE (?1 IS NULL OR sku > ?1) ORDER BY sku LIMIT ?2",
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
             WHERE sku = ?1",
        )
        .bind(sku.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(ProductRow::into_product).transpose()
    }

    async fn upsert(&self, p: &Product) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO products (sku, title, description, price_amount, currency, max_per_order, sale_starts_at_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET title = excluded.title, \
             description = excluded.description, price_amount = excluded.price_amount, currency = excluded.currency, \
             max_per_order = excluded.max_per_order, sale_starts_at_ms = excluded.sale_starts_at_ms, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(p.sku.as_str())
        .bind(&p.title)
        .bind(&p.description)
        .bind(p.price.amount())
        .bind(p.price.currency().as_str())
        .bind(p.max_per_order.map(i64::from))
        .bind(p.sale_starts_at.map(|t| to_i64(t.as_millis())).transpose()?)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }
}

const LEASE_COLUMNS: &str = "shard, owner_node, owner_generation, epoch, expires_at_ms";

/// Membership and leases on this host's clock. Taking the leases is one
/// `BEGIN IMMEDIATE` transaction (decide and update under the write lock), as is
/// every fenced write, so they are totally ordered.
#[async_trait]
impl LeaseStore for SqliteStore {
    async fn heartbeat(&self, owner: &Owner, address: &str, status: MemberStatus) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO cluster_members (node_id, generation, address, status, heartbeat_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (node_id, generation) DO UPDATE SET address = excluded.address, status = excluded.status, \
             heartbeat_ms = excluded.heartbeat_ms WHERE cluster_members.status <> 'left'",
        )
        .bind(&owner.node)
        .bind(to_i64(owner.generation)?)
        .bind(address)
        .bind(status.as_str())
        .bind(now_ms()?)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn members(&self) -> Result<Vec<Member>, StoreError> {
        sqlx::query("DELETE FROM cluster_members WHERE heartbeat_ms < ?")
            .bind(now_ms()? - MEMBER_RETENTION_MS)
            .execute(&self.writer)
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
        // A look without the write lock first: a standby polls often.
        let current = self.leases().await?;
        let max = current.last().map_or(-1, |r| i64::from(r.shard.get()));
        check_shard_count(current.len() as i64, max, all)?;
        let now = flashcore_actors::clock::now();
        let wanted = |r: &&LeaseRow| shards.contains(&r.shard);
        if !current.is_empty() && !may_take(&current.iter().filter(wanted).cloned().collect::<Vec<_>>(), owner, now) {
            return Ok(None);
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        sqlx::query(
            "WITH RECURSIVE n(shard) AS (SELECT 0 UNION ALL SELECT shard + 1 FROM n WHERE shard + 1 < ?) \
             INSERT OR IGNORE INTO shard_leases (shard) SELECT shard FROM n",
        )
        .bind(i64::from(all.count()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let rows: Vec<LeaseColumns> =
            sqlx::query_as(&format!("SELECT {LEASE_COLUMNS} FROM shard_leases ORDER BY shard"))
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?;
        let rows: Vec<LeaseRow> = rows.into_iter().map(lease_row).collect::<Result<_, _>>()?;
        let asked: Vec<LeaseRow> = rows.iter().filter(wanted).cloned().collect();
        let now = flashcore_actors::clock::now();
        if asked.len() != shards.len() || !may_take(&asked, owner, now) {
            return Ok(None); // rolled back when dropped
        }
        let expires = to_i64(now.as_millis())? + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        let mut taken = Vec::with_capacity(shards.len());
        for chunk in shards.chunks(ROWS_PER_STATEMENT / 2) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("UPDATE shard_leases SET owner_node = ");
            q.push_bind(owner.node.clone())
                .push(", owner_generation = ")
                .push_bind(to_i64(owner.generation)?)
                .push(", epoch = epoch + 1, expires_at_ms = ")
                .push_bind(expires)
                .push(" WHERE shard IN (");
            let mut ids = q.separated(", ");
            for s in chunk {
                ids.push_bind(i64::from(s.get()));
            }
            q.push(") RETURNING shard, epoch");
            let rows: Vec<(i64, i64)> = q.build_query_as().fetch_all(&mut *tx).await.map_err(db)?;
            taken.extend(leases_of(rows)?);
        }
        tx.commit().await.map_err(db)?;
        taken.sort_by_key(|l| l.shard);
        Ok(Some(taken))
    }

    async fn renew(&self, owner: &Owner, leases: &[Lease], ttl: std::time::Duration) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        match check_fence(&mut tx, owner, leases).await {
            Err(StoreError::Fenced(_)) => return Ok(false),
            other => other?,
        }
        let expires = now_ms()? + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        sqlx::query("UPDATE shard_leases SET expires_at_ms = ? WHERE owner_node = ? AND owner_generation = ?")
            .bind(expires)
            .bind(&owner.node)
            .bind(to_i64(owner.generation)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn release(&self, owner: &Owner, leases: &[Lease]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
        for l in leases {
            sqlx::query(
                "UPDATE shard_leases SET owner_node = NULL, owner_generation = NULL, expires_at_ms = 0 \
                 WHERE shard = ? AND epoch = ? AND owner_node = ? AND owner_generation = ?",
            )
            .bind(i64::from(l.shard.get()))
            .bind(to_i64(l.epoch)?)
            .bind(&owner.node)
            .bind(to_i64(owner.generation)?)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
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

/// `api_keys` columns as [`ApiKeyRow`] reads them. `created_at` is RFC 3339 text
/// with milliseconds (`2026-11-22T10:00:00.123Z`), so SQLite's date functions
/// convert it to and from epoch ms exactly.
const API_KEY_COLUMNS: &str = "id, name, key_sha256, role, \
                               CAST(round(unixepoch(created_at, 'subsec') * 1000) AS INTEGER) AS created_at_ms, \
                               revoked_at IS NOT NULL AS revoked";

#[async_trait]
impl ApiKeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_sha256, role, created_at) \
             VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', ? / 1000.0, 'unixepoch'))",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(key.key_sha256.as_slice())
        .bind(key.role.as_str())
        .bind(to_i64(key.created_at.as_millis())?)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_key(&self, key_sha256: &[u8; 32]) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row: Option<ApiKeyRow> = sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL"
        ))
        .bind(key_sha256.as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.map(ApiKeyRow::into_record).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows: Vec<ApiKeyRow> =
            sqlx::query_as(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at_ms, id"))
                .fetch_all(&self.pool)
                .await
                .map_err(db)?;
        rows.into_iter().map(ApiKeyRow::into_record).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        // Revoking again keeps the first revocation's time.
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE id = ?",
        )
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }
}
