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
use flashcore_domain::{Inventory, Sku};

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
pub struct ParkedSkus(DashMap<Sku, ParkedSku>);

impl ParkedSkus {
    /// Parks `sku`'s state (its actor is stopping, or was never started).
    pub fn park(&self, sku: Sku, parked: ParkedSku) {
        self.0.insert(sku, parked);
    }

    /// Takes `sku`'s state out for its actor, which owns it from then on.
    pub fn take(&self, sku: &Sku) -> Option<ParkedSku> {
        self.0.remove(sku).map(|(_, p)| p)
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
        Some(crate::sku::record(sku, &p.inv, p.version))
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
