//! Broken invariants found in the store. They are loud: an ERROR event, a metric
//! and a line in the operators' actor view, never clamped out of sight.
//!
//! A single writer never journals a sale it has no stock for, so a SKU whose
//! journal holds more sold units than its total can only come from a store that
//! two processes wrote at once (before ownership was fenced, or by hand).

use dashmap::DashMap;
use flashcore_domain::{Inventory, Sku};
use serde::Serialize;

use crate::clock;
use crate::metrics as m;

/// A SKU the journal says was sold beyond its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OversoldSku {
    /// The oversold SKU's code.
    pub sku: String,
    /// Its total, as the journal has it.
    pub total: u64,
    /// Units sold, as the journal has them.
    pub sold: u64,
    /// `sold - total`.
    pub oversold: u64,
    /// When this process first found it (ms since the epoch).
    pub detected_at_ms: u64,
}

/// The broken invariants this process knows of.
#[derive(Debug, Default)]
pub struct Alarms {
    oversold: DashMap<Sku, OversoldSku>,
}

impl Alarms {
    /// Looks at `inv` after recovery or a change (`when`) and raises or clears
    /// the SKU's alarm.
    pub fn check(&self, sku: &Sku, inv: &Inventory, when: &'static str) {
        let excess = inv.oversold();
        if excess == 0 {
            if self.oversold.remove(sku).is_some() {
                metrics::gauge!(m::OVERSOLD_UNITS, "sku" => sku.to_string()).set(0.0);
                tracing::warn!(target: "flashcore::invariant", event = "inventory.oversold.cleared", sku = %sku,
                    total = inv.total(), sold = inv.sold(), "SKU no longer oversold (stock was added)");
            }
            return;
        }
        let known = self.oversold.get(sku).map(|o| o.oversold);
        if known == Some(excess) {
            return;
        }
        let detected_at_ms = self.oversold.get(sku).map_or_else(|| clock::now().as_millis(), |o| o.detected_at_ms);
        self.oversold.insert(
            sku.clone(),
            OversoldSku {
                sku: sku.to_string(),
                total: inv.total(),
                sold: inv.sold(),
                oversold: excess,
                detected_at_ms,
            },
        );
        metrics::counter!(m::INVARIANT_VIOLATIONS, "kind" => "oversold").increment(1);
        metrics::gauge!(m::OVERSOLD_UNITS, "sku" => sku.to_string()).set(excess as f64);
        tracing::error!(target: "flashcore::invariant", event = "inventory.oversold", sku = %sku, found_in = when,
            total = inv.total(), sold = inv.sold(), oversold = excess,
            "the journal holds more units sold than the SKU's total: the store was written by two writers at once");
    }

    /// Every oversold SKU, in SKU order.
    pub fn oversold(&self) -> Vec<OversoldSku> {
        let mut v: Vec<OversoldSku> = self.oversold.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.sku.cmp(&b.sku));
        v
    }
}
