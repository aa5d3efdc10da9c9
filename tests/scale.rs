//! Seeds a store with the shape of issue 13's scale benchmark, fast: through the
//! store adapters' own batch paths (the journal's `append`, the snapshot store's
//! `save`), never through HTTP. Used by the `seed_scale` example (the
//! benchmark's seeder) and by the recovery test, which seeds small shapes.
//!
//! Under the leases of every shard, taken as owner `seeder` and released at the
//! end, [`seed`] writes:
//!
//! 1. `skus` products (`SCALE-000001` …), upserted many at a time;
//! 2. a `TotalSet` stock fact per SKU;
//! 3. the first half of `orders` orders, one line of one unit each, the SKUs
//!    taken round robin;
//! 4. a snapshot of every SKU as its actor would have written it then (the
//!    inventory rebuilt from the facts just journaled, at their positions);
//! 5. the second half of the orders (replayed by each SKU's recovery);
//! 6. `carts` cart snapshots: the first `orders` ones are the carts the orders
//!    came from, checked out; of the rest every other one is empty and the
//!    others were abandoned with one line whose hold has lapsed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use flashcore_actors::flusher::next_incarnation;
use flashcore_actors::ownership::{LeaseConfig, Ownership};
use flashcore_actors::ports::{
    AppendOutcome, EntityKind, Fence, Journal, Owner, SnapshotRecord, SnapshotStore, StateJson,
};
use flashcore_domain::{
    Cart, CartId, CartLine, CartStatus, Currency, HoldId, Inventory, JournalEntry, JournalPos, Money, Order, OrderId,
    OrderLine, Product, Sku, StockFact, StockFactKind, Timestamp,
};
use flashcore_http::config::StoreKind;
use flashcore_persistence::memory::LocalFeed;
use futures::{StreamExt, TryStreamExt, stream};

/// Entries per journal batch (the engine's group commit writes at most 1,000;
/// one statement either way on Postgres, a few multi-row ones on SQLite).
const APPEND_BATCH: usize = 2_000;
/// Records per snapshot save (the flusher saves 1,000 at a time).
const SAVE_BATCH: usize = 2_000;

/// How the seeder writes to one kind of store.
struct Plan {
    /// Product upserts in flight (each is one statement).
    upserts: usize,
    /// Journal batches and snapshot saves in flight.
    writes: usize,
}

impl Plan {
    fn for_store(store: &StoreKind) -> Plan {
        match store {
            // Appends serialize on the journal's lock, but encoding and sending
            // the next batch overlaps the one being written.
            StoreKind::Postgres { .. } => Plan { upserts: 32, writes: 3 },
            // One writer connection: more in flight only queues.
            _ => Plan { upserts: 4, writes: 1 },
        }
    }
}

/// The `i`-th SKU (0-based): `SCALE-000001` for 0.
pub fn sku(i: usize) -> Sku {
    Sku::parse(&format!("SCALE-{:06}", i + 1)).expect("a valid SKU")
}

fn title(i: usize) -> String {
    format!("Scale product {:06}", i + 1)
}

fn price() -> Money {
    Money::new(1_999, Currency::EUR).expect("a valid price")
}

/// A random-looking but reproducible UUID (shaped as v4, as cart ids are), so
/// the seeder need not keep a million ids to refer to them again.
fn uuid_of(salt: u64, i: usize) -> uuid::Uuid {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let i = i as u64;
    let hi = mix(salt.wrapping_mul(0x1000_0000_01b3) ^ i.wrapping_mul(2));
    let lo = mix(hi ^ i.wrapping_mul(2).wrapping_add(1));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn cart_id(i: usize) -> CartId {
    CartId::from_uuid(uuid_of(1, i))
}

fn order_hold(i: usize) -> HoldId {
    HoldId::from_uuid(uuid_of(2, i))
}

fn abandoned_hold(i: usize) -> HoldId {
    HoldId::from_uuid(uuid_of(3, i))
}

/// The shape being seeded.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Products, each with a `TotalSet` fact and a snapshot.
    pub skus: usize,
    /// Cart snapshots: the first `orders` checked out, then empty and abandoned ones.
    pub carts: usize,
    /// Orders of one unit each, half before the SKUs' snapshots and half after.
    pub orders: usize,
}

impl Shape {
    /// Units of SKU `s` (0-based) the seeded orders sold.
    pub fn sold(&self, s: usize) -> u64 {
        let (whole, rest) = (self.orders / self.skus, self.orders % self.skus);
        (whole + usize::from(s < rest)) as u64
    }

    /// The SKU order `i` buys.
    fn sku_of(&self, i: usize) -> usize {
        i % self.skus
    }

    /// Each SKU's total: at least 100, and room for every unit the orders sell.
    pub fn total(&self) -> u64 {
        (self.orders.div_ceil(self.skus) as u64 * 2).max(100)
    }
}

/// What the orders are built from.
struct Orders {
    shape: Shape,
    ids: Vec<OrderId>,
    created_at: Timestamp,
}

impl Orders {
    fn order(&self, i: usize) -> Order {
        let s = self.shape.sku_of(i);
        let unit = price();
        Order {
            id: self.ids[i],
            cart_id: cart_id(i),
            lines: vec![OrderLine {
                sku: sku(s),
                title: title(s),
                qty: 1,
                unit_price: unit,
                line_total: unit,
                hold_id: order_hold(i),
            }],
            total: unit,
            email: Some(format!("buyer{i}@example.com")),
            payment_ref: format!("test_auth_{i}"),
            idempotency_key: key(i),
            created_at: self.created_at.plus_millis((i / 1_000) as u64),
        }
    }
}

fn key(i: usize) -> String {
    format!("scale-checkout-{i}")
}

/// Appends entries `range` (built by `entry`) in batches, `in_flight` at a time;
/// returns (entry index, position) of every entry, in no particular order.
async fn append_all(
    journal: &dyn Journal,
    fence: &Fence,
    range: std::ops::Range<usize>,
    in_flight: usize,
    entry: impl Fn(usize) -> JournalEntry,
) -> anyhow::Result<Vec<(usize, JournalPos)>> {
    let entry = &entry;
    let batches: Vec<std::ops::Range<usize>> =
        range.clone().step_by(APPEND_BATCH).map(|s| s..(s + APPEND_BATCH).min(range.end)).collect();
    let written: Vec<Vec<(usize, JournalPos)>> = stream::iter(batches)
        .map(|r| async move {
            let batch: Vec<JournalEntry> = r.clone().map(entry).collect();
            let outcomes = journal.append(&batch, fence).await.with_context(|| format!("appending entries {r:?}"))?;
            ensure!(
                outcomes.len() == batch.len(),
                "the journal answered {} of {} entries",
                outcomes.len(),
                batch.len()
            );
            r.zip(outcomes)
                .map(|(i, o)| match o {
                    AppendOutcome::Written(pos) => Ok((i, pos)),
                    AppendOutcome::DuplicateKey => bail!("entry {i} was refused as a duplicate (store not empty?)"),
                })
                .collect()
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    Ok(written.into_iter().flatten().collect())
}

/// Saves `count` records (built by `record`) in batches, `in_flight` at a time.
async fn save_all(
    snapshots: &dyn SnapshotStore,
    fence: &Fence,
    count: usize,
    in_flight: usize,
    record: impl Fn(usize) -> SnapshotRecord,
) -> anyhow::Result<()> {
    let record = &record;
    stream::iter((0..count).step_by(SAVE_BATCH))
        .map(|start| async move {
            let batch: Vec<SnapshotRecord> = (start..(start + SAVE_BATCH).min(count)).map(record).collect();
            snapshots.save(&batch, fence).await.with_context(|| format!("saving snapshots from {start}"))
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The snapshot a cart actor would have written for cart `i`.
fn cart_record(shape: Shape, orders: &Orders, now: Timestamp, i: usize) -> SnapshotRecord {
    let id = cart_id(i);
    let mut cart = Cart::new(id);
    let line = |s: usize, hold_id: HoldId, hold_expires_at: Timestamp| CartLine {
        sku: sku(s),
        title: title(s),
        qty: 1,
        unit_price: price(),
        hold_id,
        hold_expires_at,
    };
    // Created (1), a line set (2); the checkout's own change is not written
    // behind by the actor, but a checked-out cart's snapshot is what is asked for.
    let changes = if i < shape.orders {
        let s = shape.sku_of(i);
        cart.lines.insert(line(s, order_hold(i), orders.created_at.plus_millis(600_000)));
        cart.status = CartStatus::CheckedOut { order_id: orders.ids[i], idempotency_key: key(i) };
        2
    } else if i % 2 == 1 {
        let s = shape.sku_of(i);
        cart.lines.insert(line(
            s,
            abandoned_hold(i),
            Timestamp::from_millis(now.as_millis().saturating_sub(3_600_000)),
        ));
        2
    } else {
        1
    };
    SnapshotRecord {
        kind: EntityKind::Cart,
        id: id.to_string(),
        pos: JournalPos::default(),
        version: next_incarnation(0) + changes,
        state: StateJson::encode(&cart).expect("a cart always serializes"),
    }
}

/// Seeds `store`, which must be empty, with `shape`: opened as the binary
/// opens it (migrations run), under the leases of every shard taken as owner
/// `seeder` and released at the end (so a flashcore takes them at once). Tells
/// `report` each phase: its name, how many items it wrote, how long it took.
pub async fn seed(store: &StoreKind, shape: Shape, report: impl Fn(&str, usize, Duration)) -> anyhow::Result<()> {
    ensure!(shape.skus >= 1, "at least one SKU");
    ensure!(shape.carts >= shape.orders, "every order comes from a cart: carts must be at least orders");
    let plan = Plan::for_store(store);
    let all = Instant::now();

    // Open the store as the binary does (migrations run), and take every lease.
    let t = Instant::now();
    let stores = flashcore_http::startup::open_stores(store, Arc::new(LocalFeed::default())).await?;
    let now = flashcore_actors::clock::now();
    let owner = Owner { node: "seeder".into(), generation: now.as_millis() };
    // A long TTL: a busy two-core machine must not starve the renewals.
    let cfg = LeaseConfig { ttl: Duration::from_secs(30), ..LeaseConfig::default() };
    let own = tokio::time::timeout(Duration::from_secs(60), Ownership::hold(Arc::clone(&stores.leases), owner, cfg))
        .await
        .context("the leases were not free within 60 s (is a flashcore running on this store?)")?;
    let fence = own.write_fence()?;
    let shards = fence.shards();
    report("open", shards.count() as usize, t.elapsed());
    let (journal, snapshots, catalog) = (&*stores.ports.journal, &*stores.ports.snapshots, &*stores.ports.catalog);
    ensure!(catalog.list(1, None).await?.is_empty(), "the store already has products: seed an empty one");

    // 1. The catalog.
    let t = Instant::now();
    stream::iter(0..shape.skus)
        .map(|i| async move {
            let p = Product::new(sku(i), title(i), "Seeded by seed_scale.", price(), None, None)?;
            catalog.upsert(&p).await.with_context(|| format!("upserting {}", p.sku))
        })
        .buffer_unordered(plan.upserts)
        .try_collect::<Vec<()>>()
        .await?;
    report("catalog", shape.skus, t.elapsed());

    // 2. A total per SKU.
    let t = Instant::now();
    let total = shape.total();
    let stock = append_all(journal, &fence, 0..shape.skus, plan.writes, |i| JournalEntry::Stock {
        sku: sku(i),
        kind: StockFactKind::TotalSet { total },
    })
    .await?;
    let mut inventories: Vec<(Inventory, u64)> = (0..shape.skus).map(|_| (Inventory::new(0), 0)).collect();
    let mut stock = stock;
    stock.sort_unstable_by_key(|&(_, pos)| pos);
    for (i, pos) in stock {
        let (inv, changes) = &mut inventories[i];
        inv.apply_fact(&StockFact { pos, sku: sku(i), kind: StockFactKind::TotalSet { total } });
        *changes += 1;
    }
    report("stock", shape.skus, t.elapsed());

    // 3. The first half of the orders.
    let t = Instant::now();
    let orders = Orders { shape, ids: (0..shape.orders).map(|_| OrderId::new()).collect(), created_at: now };
    let half = shape.orders / 2;
    let mut sold = append_all(journal, &fence, 0..half, plan.writes, |i| JournalEntry::Order(orders.order(i))).await?;
    report("orders_first_half", half, t.elapsed());

    // 4. Every SKU's snapshot after them: what its actor would hold (the facts
    //    applied in position order, as the actor receives them).
    let t = Instant::now();
    sold.sort_unstable_by_key(|&(_, pos)| pos);
    for (i, pos) in sold {
        let s = shape.sku_of(i);
        let (inv, changes) = &mut inventories[s];
        let kind = StockFactKind::Sold { order: orders.ids[i], hold: order_hold(i), qty: 1 };
        inv.apply_fact(&StockFact { pos, sku: sku(s), kind });
        *changes += 1;
    }
    let inventories = &inventories;
    save_all(snapshots, &fence, shape.skus, plan.writes, |i| {
        let (inv, changes) = &inventories[i];
        SnapshotRecord {
            kind: EntityKind::Sku,
            id: sku(i).to_string(),
            pos: inv.watermark(),
            version: next_incarnation(0) + changes,
            state: StateJson::encode(&inv.snapshot()).expect("an inventory always serializes"),
        }
    })
    .await?;
    report("sku_snapshots", shape.skus, t.elapsed());

    // 5. The second half, after the snapshots.
    let t = Instant::now();
    let orders = &orders;
    append_all(journal, &fence, half..shape.orders, plan.writes, |i| JournalEntry::Order(orders.order(i))).await?;
    report("orders_second_half", shape.orders - half, t.elapsed());

    // 6. The carts.
    let t = Instant::now();
    save_all(snapshots, &fence, shape.carts, plan.writes, |i| cart_record(shape, orders, now, i)).await?;
    report("cart_snapshots", shape.carts, t.elapsed());

    // Check a little of what was written, then hand the store over.
    let t = Instant::now();
    let last = shape.orders.checked_sub(1);
    if let Some(i) = last {
        let stored = journal.order_for_cart(cart_id(i)).await?.context("the last order is not in the journal")?;
        ensure!(stored.id == orders.ids[i], "the last cart's order is another one");
    }
    let first = snapshots.load(EntityKind::Sku, sku(0).as_str()).await?.context("no snapshot of the first SKU")?;
    let snap: flashcore_domain::InventorySnapshot = first.state.decode()?;
    ensure!(snap.total == total, "the first SKU's snapshot says total {} (expected {total})", snap.total);
    let facts = journal.stock_facts(&sku(0), first.pos, &[]).await?;
    let by_kind = facts.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, f| {
        *m.entry(match f.kind {
            StockFactKind::Sold { .. } => "sold",
            _ => "other",
        })
        .or_default() += 1;
        m
    });
    eprintln!(
        "seed_scale: SKU {} snapshot at {} (sold {}), {:?} facts after it",
        sku(0),
        first.pos.0,
        snap.sold,
        by_kind
    );
    own.release(&*stores.leases).await;
    let leases = stores.leases.leases().await?;
    ensure!(leases.iter().all(|l| l.owner.is_none()), "the seeder's leases were not released");
    report("check_and_release", leases.len(), t.elapsed());
    report("total", shape.skus + shape.orders + shape.carts, all.elapsed());
    Ok(())
}
