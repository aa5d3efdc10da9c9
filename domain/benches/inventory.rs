//! The pure domain work on one SKU: what an [`Inventory`] costs per operation when
//! it already carries many holds, as a hot SKU does in a flash sale.
//!
//! One element is one operation on one hold:
//!
//! - `reserve`: a new one-unit hold (fresh id, uniform TTL, so the expiry index
//!   appends at the back).
//! - `release`: dropping such a hold.
//! - `prepare_commit`: `prepare` of one hold for a new order, then the order's
//!   `Sold` fact applied (what the SKU actor does once the journal batch committed).
//! - `expire`: one `expire(now)` tick that lapses a chunk of holds; reported per hold.
//!
//! Every variant runs against a base of `N` live holds that stay in place (they
//! expire far in the future). Work that only sets up or undoes a step (creating
//! the holds to release, releasing the holds just reserved) happens outside the
//! timer, in chunks of [`CHUNK`] operations so the state stays near `N` holds.
//! Ids are generated before the timed part.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flashcore_domain::{CartId, HoldId, Inventory, JournalPos, OrderId, Sku, StockFact, StockFactKind, Timestamp};

/// Operations per timed chunk; the untimed clean-up runs between chunks.
const CHUNK: u64 = 1_000;
/// "Now" for every operation.
const NOW: Timestamp = Timestamp::from_millis(1_000_000);
/// Expiry of the base holds and of the reserved ones: far after `NOW`.
const LATER: Timestamp = Timestamp::from_millis(1_000_000 + 600_000);
/// Base hold counts: a warm SKU and a very hot one.
const BASES: [usize; 2] = [1_000, 100_000];

/// An inventory with `n` one-unit holds expiring at `LATER`, and stock to spare.
fn with_holds(n: usize) -> Inventory {
    let mut inv = Inventory::new(1_000_000_000_000);
    let cart = CartId::new();
    for _ in 0..n {
        inv.reserve(HoldId::new(), cart, 1, LATER).expect("stock to spare");
    }
    inv
}

fn ids(n: u64) -> Vec<HoldId> {
    (0..n).map(|_| HoldId::new()).collect()
}

/// Runs `iters` operations in chunks: `timed` on each chunk of ids, `untimed`
/// before or after it (`untimed_first` picks which), returning the timed total.
fn chunked(
    iters: u64,
    inv: &mut Inventory,
    untimed_first: bool,
    mut timed: impl FnMut(&mut Inventory, &[HoldId]),
    mut untimed: impl FnMut(&mut Inventory, &[HoldId]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        left -= n;
        let chunk = ids(n);
        if untimed_first {
            untimed(inv, &chunk);
        }
        let start = Instant::now();
        timed(inv, &chunk);
        total += start.elapsed();
        if !untimed_first {
            untimed(inv, &chunk);
        }
    }
    total
}

fn reserve_all(inv: &mut Inventory, cart: CartId, chunk: &[HoldId]) {
    for id in chunk {
        black_box(inv.reserve(*id, cart, 1, LATER)).expect("stock to spare");
    }
}

fn release_all(inv: &mut Inventory, chunk: &[HoldId]) {
    for id in chunk {
        black_box(inv.release(*id)).expect("hold exists");
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("inventory");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    let sku = Sku::parse("BENCH-HOT-01").expect("valid sku");

    for n in BASES {
        let mut inv = with_holds(n);
        let cart = CartId::new();

        g.bench_function(BenchmarkId::new("reserve", n), |b| {
            b.iter_custom(|iters| chunked(iters, &mut inv, false, |inv, ch| reserve_all(inv, cart, ch), release_all));
        });

        g.bench_function(BenchmarkId::new("release", n), |b| {
            b.iter_custom(|iters| chunked(iters, &mut inv, true, release_all, |inv, ch| reserve_all(inv, cart, ch)));
        });

        let mut pos = 0u64;
        g.bench_function(BenchmarkId::new("prepare_commit", n), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    &mut inv,
                    true,
                    |inv, ch| {
                        for id in ch {
                            let order = OrderId::new();
                            black_box(inv.prepare(order, cart, std::slice::from_ref(id), NOW)).expect("prepared");
                            pos += 1;
                            let fact = StockFact {
                                pos: JournalPos(pos),
                                sku: sku.clone(),
                                kind: StockFactKind::Sold { order, hold: *id, qty: 1 },
                            };
                            black_box(inv.apply_fact(&fact));
                        }
                    },
                    |inv, ch| reserve_all(inv, cart, ch),
                )
            });
        });

        g.bench_function(BenchmarkId::new("expire", n), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    &mut inv,
                    true,
                    |inv, ch| {
                        let gone = inv.expire(NOW);
                        assert_eq!(gone.len(), ch.len(), "the chunk's holds lapse, the base stays");
                        black_box(gone);
                    },
                    |inv, ch| {
                        for id in ch {
                            inv.reserve(*id, cart, 1, NOW).expect("stock to spare");
                        }
                    },
                )
            });
        });

        assert_eq!(inv.hold_count(), n, "every variant leaves the base as it found it");
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
