//! SKUs without an actor: their state, kept compact until the next activation.
//!
//! Start-up recovery rebuilds every SKU's inventory in bulk and parks it here
//! instead of starting 100,000 actors; an idle SKU actor with nothing held parks
//! its state on passivation. A SKU's availability stays in the feed, so reads and
//! streams never need its actor. Activation takes the parked state out (the one
//! writer is the actor from then on) or, if nothing is parked, recovers from the
//! store; a state is only ever parked by the actor that owned it, before its slot
//! is retired, so activation never finds a stale one.

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use flashcore_domain::{Inventory, InventorySnapshot, JournalPos, Sku};

use crate::flusher::SnapshotSource;
use crate::ports::SnapshotRecord;

/// One parked SKU.
#[derive(Debug)]
pub struct ParkedSku {
    /// Its inventory, as recovered or as its actor left it.
    pub inv: Inventory,
    /// The version its next snapshot continues from.
    pub version: u64,
    /// True while the store's snapshot is older than `inv` (recovery replayed
    /// journal facts or dropped holds); the flusher writes it behind.
    pub unsaved: bool,
}

/// Every parked SKU.
#[derive(Debug, Default)]
pub struct ParkedSkus(DashMap<Sku, Stored>);

/// A parked SKU as kept: most hold nothing, and those are three numbers, not an
/// inventory with its (empty) hold maps and expiry queue, which at 100,000 cold
/// SKUs is the difference between ~70 and ~200 bytes each.
#[derive(Debug)]
struct Stored {
    state: State,
    version: u64,
    unsaved: bool,
}

#[derive(Debug)]
enum State {
    /// No holds (so nothing committing): the counts are the whole state.
    Idle { total: u64, sold: u64, watermark: JournalPos },
    /// Holds to keep (a SKU parked with holds, e.g. at start-up).
    Holding(Box<Inventory>),
}

impl State {
    fn of(inv: Inventory) -> State {
        if inv.hold_count() == 0 {
            State::Idle { total: inv.total(), sold: inv.sold(), watermark: inv.watermark() }
        } else {
            State::Holding(Box::new(inv))
        }
    }

    fn inventory(&self) -> Inventory {
        match self {
            State::Idle { total, sold, watermark } => {
                let (total, sold, watermark) = (*total, *sold, *watermark);
                Inventory::restore(InventorySnapshot { total, sold, watermark, holds: Vec::new() })
            }
            State::Holding(inv) => Inventory::clone(inv),
        }
    }

    fn into_inventory(self) -> Inventory {
        match self {
            State::Holding(inv) => *inv,
            idle => idle.inventory(),
        }
    }
}

impl ParkedSkus {
    /// Parks `sku`'s state (its actor is stopping, or was never started).
    pub fn park(&self, sku: Sku, parked: ParkedSku) {
        let ParkedSku { inv, version, unsaved } = parked;
        self.0.insert(sku, Stored { state: State::of(inv), version, unsaved });
    }

    /// Takes `sku`'s state out for its actor, which owns it from then on.
    pub fn take(&self, sku: &Sku) -> Option<ParkedSku> {
        self.0.remove(sku).map(|(_, p)| ParkedSku {
            inv: p.state.into_inventory(),
            version: p.version,
            unsaved: p.unsaved,
        })
    }

    /// Drops the parked states of the SKUs `pred` picks (their shard moved to
    /// another node, which recovers them from the store); returns how many.
    pub fn drop_where(&self, pred: impl Fn(&Sku) -> bool) -> usize {
        let before = self.0.len();
        self.0.retain(|sku, _| !pred(sku));
        before - self.0.len()
    }

    /// How many SKUs are parked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no SKU is parked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The snapshot of a parked, unsaved SKU (marked saved); `None` if it is
    /// saved or no longer parked (its actor then writes its own).
    fn snapshot(&self, sku: &Sku) -> Option<SnapshotRecord> {
        let mut p = self.0.get_mut(sku)?;
        if !p.unsaved {
            return None;
        }
        p.unsaved = false;
        Some(crate::sku::record(sku, &p.state.inventory(), p.version))
    }
}

/// A parked SKU registered with the write-behind flusher.
#[derive(Debug)]
pub struct ParkedSource {
    /// The parked SKU.
    pub sku: Sku,
    /// Where it is parked.
    pub parked: Arc<ParkedSkus>,
}

#[async_trait]
impl SnapshotSource for ParkedSource {
    async fn snapshot(&self) -> Option<SnapshotRecord> {
        self.parked.snapshot(&self.sku)
    }
}

#[cfg(test)]
mod tests {
    use flashcore_domain::{CartId, HoldId, JournalPos, StockFact, StockFactKind, Timestamp};

    use super::*;

    fn sku() -> Sku {
        Sku::parse("PARKED-1").expect("sku")
    }

    fn sold_some() -> Inventory {
        let mut inv = Inventory::new(10);
        let order = flashcore_domain::OrderId::new();
        let hold = HoldId::new();
        inv.apply_fact(&StockFact {
            pos: JournalPos(7),
            sku: sku(),
            kind: StockFactKind::Sold { order, hold, qty: 3 },
        });
        inv
    }

    #[test]
    fn a_parked_sku_comes_back_as_it_was_parked_with_or_without_holds() {
        let parked = ParkedSkus::default();
        let idle = sold_some();
        let mut holding = sold_some();
        holding.reserve(HoldId::new(), CartId::new(), 2, Timestamp::from_millis(u64::MAX / 2)).expect("reserve");
        for (inv, unsaved) in [(idle, false), (holding, true)] {
            parked.park(sku(), ParkedSku { inv: inv.clone(), version: 42, unsaved });
            assert_eq!(parked.len(), 1);
            let back = parked.take(&sku()).expect("parked");
            assert_eq!((back.inv, back.version, back.unsaved), (inv, 42, unsaved));
            assert!(parked.take(&sku()).is_none(), "taken once");
        }
    }

    #[test]
    fn an_unsaved_parked_sku_is_written_behind_once() {
        let parked = ParkedSkus::default();
        let inv = sold_some();
        parked.park(sku(), ParkedSku { inv: inv.clone(), version: 5, unsaved: true });
        let rec = parked.snapshot(&sku()).expect("unsaved: a snapshot");
        assert_eq!((rec.id.as_str(), rec.version, rec.pos), ("PARKED-1", 5, JournalPos(7)));
        let snap: InventorySnapshot = rec.state.decode().expect("decodes");
        assert_eq!(snap, inv.snapshot());
        assert!(parked.snapshot(&sku()).is_none(), "saved: nothing more to write");
    }
}
