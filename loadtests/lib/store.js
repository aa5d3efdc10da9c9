// After a run: check the store through the operator API. Called from teardown().
//
// - No oversell: for every SKU of the run, the units in its orders are at most
//   `total - available` (available = total - sold - held, and held >= 0), hence
//   at most `total`. When nothing is held any more the two are equal.
// - No duplicate orders: an order carries its cart id (OrderDto does not expose
//   the Idempotency-Key), and a cart checks out once, so two orders for one cart
//   would mean a checkout (or its replay) ran twice. Replays are also checked as
//   they happen: the suites compare the replayed order id with the first one.
// - No lost acknowledgements: every 201 the buyers saw is an order in the store
//   (compared in handleSummary, which sees the buyers' counters; see summary.js).
//
// Figures go to gauges (`store_*`) so handleSummary can report them; violations
// go to the `invariant_violations` counter, which every suite thresholds at 0.

import { check, sleep } from 'k6';
import { Counter, Gauge } from 'k6/metrics';
import { R, adminGet, body, getProduct } from './api.js';

export const invariantViolations = new Counter('invariant_violations');
const gOrders = new Gauge('store_orders');
const gUnitsSold = new Gauge('store_units_sold');
const gUnitsTotal = new Gauge('store_units_total');
const gUnitsAvailable = new Gauge('store_units_available');
const gUnitsHeld = new Gauge('store_units_held');
const gDuplicates = new Gauge('store_duplicate_orders');
const gOversold = new Gauge('store_oversold_skus');
const gSkus = new Gauge('store_skus_checked');

/** Every order created at or after `since` (ms since the epoch), newest first. */
export function ordersSince(since) {
  const out = [];
  let cursor = null;
  for (let page = 0; page < 10000; page++) {
    const q = cursor ? `?limit=500&cursor=${encodeURIComponent(cursor)}` : '?limit=500';
    const res = adminGet(`/v1/admin/orders${q}`, R.adminOrders);
    if (!check(res, { 'admin orders listed (200)': (r) => r.status === 200 })) {
      invariantViolations.add(1, { check: 'orders-unreadable' });
      return null;
    }
    const b = body(res);
    let older = false;
    for (const o of b.items) {
      if (Date.parse(o.created_at) < since) {
        older = true;
        break;
      }
      out.push(o);
    }
    if (older || !b.next_cursor) {
      return out;
    }
    cursor = b.next_cursor;
  }
  return out;
}

/** Reads every SKU's product and sets it against the units sold in the run. */
function readStock(skus, sold) {
  const f = { unitsSold: 0, unitsTotal: 0, unitsAvailable: 0, oversold: 0, unreadable: 0, hot: [] };
  for (const sku of skus) {
    const res = getProduct(sku, { tags: { name: 'GET /v1/products/{sku} (post-run)' } });
    const p = res.status === 200 ? body(res) : null;
    if (!p) {
      f.unreadable++;
      continue;
    }
    const s = sold[sku] || 0;
    f.unitsSold += s;
    f.unitsTotal += p.total;
    f.unitsAvailable += p.available;
    if (s > p.total - p.available) {
      f.oversold++;
    }
    f.hot.push({ sku, total: p.total, available: p.available, sold: s, held: p.total - p.available - s });
  }
  f.held = f.unitsTotal - f.unitsAvailable - f.unitsSold;
  return f;
}

/**
 * Checks the orders of the run's `skus` against their stock. `since` bounds the
 * paging (orders are newest first). `expectNoHolds`: also require
 * sold == total - available (nothing may still be held after this suite).
 * Returns the figures.
 */
export function verifyStore(skus, since, expectNoHolds) {
  invariantViolations.add(0);
  const wanted = new Set(skus);
  const orders = ordersSince(since - 60 * 1000);
  if (orders === null) {
    return null;
  }
  const sold = {};
  const perCart = {};
  let runOrders = 0;
  for (const o of orders) {
    const mine = o.lines.filter((l) => wanted.has(l.sku));
    if (mine.length === 0) {
      continue;
    }
    runOrders++;
    perCart[o.cart_id] = (perCart[o.cart_id] || 0) + 1;
    for (const l of mine) {
      sold[l.sku] = (sold[l.sku] || 0) + l.quantity;
    }
  }
  const duplicates = Object.values(perCart).filter((n) => n > 1).length;

  // Product reads come from the availability feed, which trails the SKU actors
  // by a few milliseconds: read again (up to 5 s) until the figures settle.
  let f;
  const deadline = Date.now() + 5000;
  for (;;) {
    f = readStock(skus, sold);
    if ((f.oversold === 0 && (!expectNoHolds || f.held === 0)) || Date.now() > deadline) {
      break;
    }
    sleep(0.25);
  }
  const { unitsSold, unitsTotal, unitsAvailable, held, oversold, unreadable, hot } = f;

  const ok = {
    'post-run: every SKU of the run readable': unreadable === 0,
    'post-run: orders never exceed stock (sold <= total - available)': oversold === 0,
    'post-run: no cart has two orders': duplicates === 0,
  };
  if (expectNoHolds) {
    ok['post-run: nothing left held (sold == total - available)'] = held === 0;
  }
  for (const [name, pass] of Object.entries(ok)) {
    check(null, { [name]: () => pass });
    if (!pass) {
      invariantViolations.add(1, { check: name });
    }
  }

  gOrders.add(runOrders);
  gUnitsSold.add(unitsSold);
  gUnitsTotal.add(unitsTotal);
  gUnitsAvailable.add(unitsAvailable);
  gUnitsHeld.add(held);
  gDuplicates.add(duplicates);
  gOversold.add(oversold);
  gSkus.add(skus.length - unreadable);
  const figures = { orders: runOrders, unitsSold, unitsTotal, unitsAvailable, held, duplicates, oversold, skus: skus.length };
  console.log(`post-run store check: ${JSON.stringify(figures)}${skus.length <= 3 ? ' ' + JSON.stringify(hot) : ''}`);
  return figures;
}
