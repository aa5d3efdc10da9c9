//! Start-up recovery of every SKU at once, in a few set reads.
//!
//! One actor recovering itself reads its snapshot and the journal after it: two
//! round trips, which for 100,000 SKUs is most of a minute. Here the snapshots
//! of every SKU are read in pages, then the journal's stock facts once from the
//! oldest snapshot's position on, each fact applied to its SKU exactly as that
//! SKU's own recovery ([`crate::sku::recover`]) would: facts after its
//! snapshot's position, and those of orders its snapshot shows committing, in
//! position order. Nothing is activated; the engine publishes each SKU's counts
//! and parks its state ([`crate::parked`]).

use std::collections::{HashMap, HashSet};

use flashcore_domain::{Inventory, InventorySnapshot, JournalPos, OrderId, Sku, StockFact, StockFactKind, Timestamp};

use crate::ports::{EntityKind, FactCursor, Journal, SnapshotStore, StoreError};

/// Snapshots read per page.
const SNAPSHOT_PAGE: usize = 5_000;
/// Journal facts read per page.
const FACT_PAGE: usize = 20_000;

/// One SKU as recovery rebuilt it.
#[derive(Debug)]
pub struct RecoveredSku {
    /// The inventory, with the journal's tail applied and no committing holds.
    pub inv: Inventory,
    /// The stored snapshot's version (0: none).
    pub stored_version: u64,
    /// True if recovery changed it from the stored snapshot.
    pub changed: bool,
}

/// What bulk recovery read, for the start-up log.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecoveryStats {
    /// Snapshots read.
    pub snapshots: usize,
    /// Journal facts read (some belong to other SKUs' older history).
    pub facts_read: usize,
    /// Facts applied.
    pub facts_applied: usize,
    /// Holds that had lapsed and were dropped.
    pub holds_expired: usize,
}

struct Building {
    inv: Inventory,
    stored_version: u64,
    /// The snapshot's position: facts after it apply.
    from: JournalPos,
    /// Orders the snapshot shows committing: their facts apply wherever they are.
    committing: HashSet<OrderId>,
    applied: usize,
}

impl Building {
    fn wants(&self, fact: &StockFact) -> bool {
        fact.pos > self.from
            || matches!(&fact.kind, StockFactKind::Sold { order, .. } if self.committing.contains(order))
    }
}

/// Rebuilds every SKU of `skus` from `snapshots` and `journal` as of `now`,
/// handing each to `each` as it is finished (so the caller keeps its own compact
/// form, and no second map of 100,000 inventories is built next to this one).
pub async fn recover_all(
    skus: impl IntoIterator<Item = Sku>,
    snapshots: &dyn SnapshotStore,
    journal: &dyn Journal,
    now: Timestamp,
    mut each: impl FnMut(Sku, RecoveredSku),
) -> Result<RecoveryStats, StoreError> {
    let mut stats = RecoveryStats::default();
    let mut building: HashMap<Sku, Building> = skus
        .into_iter()
        .map(|sku| {
            let b = Building {
                inv: Inventory::new(0),
                stored_version: 0,
                from: JournalPos(0),
                committing: HashSet::new(),
                applied: 0,
            };
            (sku, b)
        })
        .collect();

    let mut after: Option<String> = None;
    loop {
        let page = snapshots.load_page(EntityKind::Sku, after.as_deref(), SNAPSHOT_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        stats.snapshots += page.len();
        for rec in page {
            // A snapshot of a SKU the catalog no longer has is never activated.
            let Ok(sku) = Sku::parse(&rec.id) else { continue };
            let Some(b) = building.get_mut(&sku) else { continue };
            let snap: InventorySnapshot = rec
                .state
                .decode()
                .map_err(|e| StoreError::Unavailable(format!("corrupt snapshot of SKU {sku}: {e}")))?;
            b.inv = Inventory::restore(snap);
            b.stored_version = rec.version;
            b.from = b.inv.watermark();
            b.committing = b.inv.committing_orders().into_iter().collect();
        }
    }

    let oldest = building.values().map(|b| b.from).min().unwrap_or_default();
    // Facts of committing orders at or before the oldest position are not in the
    // scan below; they come first, as they are earlier than all of it.
    let committing: Vec<OrderId> = building.values().flat_map(|b| b.committing.iter().copied()).collect();
    let mut early = journal.stock_facts_of_orders(&committing).await?;
    early.retain(|f| f.pos <= oldest);
    stats.facts_read += early.len();
    apply(&mut building, &early, &mut stats);

    let mut cursor = FactCursor::after(oldest);
    loop {
        let page = journal.stock_facts_page(&cursor, FACT_PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = FactCursor::after_fact(last);
        stats.facts_read += page.len();
        apply(&mut building, &page, &mut stats);
    }

    for (sku, mut b) in building {
        let settled = crate::sku::settle(&mut b.inv, now);
        stats.holds_expired += settled.expired;
        let changed = b.applied > 0 || settled.changed();
        each(sku, RecoveredSku { inv: b.inv, stored_version: b.stored_version, changed });
    }
    Ok(stats)
}

fn apply(building: &mut HashMap<Sku, Building>, facts: &[StockFact], stats: &mut RecoveryStats) {
    for fact in facts {
        if let Some(b) = building.get_mut(&fact.sku)
            && b.wants(fact)
        {
            b.inv.apply_fact(fact);
            b.applied += 1;
            stats.facts_applied += 1;
        }
    }
}
