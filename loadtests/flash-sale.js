// flash-sale: a spike of buyers on one hot SKU.
//
// Set-up creates a fresh SKU with STOCK units (at most 2 per order). Buyers
// arrive at a ramping rate that spikes to RATE per second: each looks at the
// product, creates a cart, adds 1 or 2 units and checks out with an
// Idempotency-Key (REPLAY_P of them send the checkout again and must get the same
// order back). Once the stock is gone, add-to-cart answers 409 out-of-stock:
// that is the expected outcome, not an error. Afterwards the store must hold at
// most STOCK units of orders for the SKU (exactly STOCK - available, nothing
// left held), one order per cart, and every acknowledged order.
//
// env: BASE_URL, FLASHCORE_ADMIN_KEY, DURATION (20s), RATE (1000 buyers/s at the
// peak), STOCK (500), MAX_VUS (400), REPLAY_P (0.1), P95_MS / P99_MS.

import { check } from 'k6';
import * as api from './lib/api.js';
import { R } from './lib/api.js';
import { addToCart, buy } from './lib/flow.js';
import { verifyStore } from './lib/store.js';
import { suiteOptions, summarize } from './lib/summary.js';

const DURATION = api.envSeconds('DURATION', 20);
const RATE = api.envNumber('RATE', 1000);
const STOCK = api.envNumber('STOCK', 500);
const REPLAY_P = api.envNumber('REPLAY_P', 0.1);
const s = (f) => `${Math.max(1, Math.round(DURATION * f))}s`;

export const options = suiteOptions({
  scenarios: {
    flash_sale: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.round(RATE / 20)),
      timeUnit: '1s',
      preAllocatedVUs: Math.min(100, api.envNumber('MAX_VUS', 400)),
      maxVUs: api.envNumber('MAX_VUS', 400),
      // Doors open: a trickle, the spike, the peak held, the crowd leaves.
      stages: [
        { target: Math.round(RATE / 10), duration: s(0.1) },
        { target: RATE, duration: s(0.1) },
        { target: RATE, duration: s(0.6) },
        { target: 0, duration: s(0.2) },
      ],
      gracefulStop: '10s',
    },
  },
  slo: [R.product, R.createCart, R.setItem, R.checkout],
  track: ['POST /v1/carts/{id}/checkout (replay)'],
  p95: 100,
  p99: 250,
});

export function setup() {
  api.waitReady(30);
  const sku = `FLASH-${api.runId()}`;
  api.putProduct(sku, STOCK, { title: 'Flash sale load test', max_per_order: 2 });
  check(api.waitAvailable(sku, STOCK), { 'hot SKU has its stock': (r) => r.status === 200 && api.body(r).available === STOCK });
  return { sku, since: Date.now(), summary: { sku, stock: STOCK, peak_rate: RATE, duration_s: DURATION } };
}

export default function ({ sku }) {
  api.getProduct(sku);
  const cart = api.createCart();
  if (!cart) {
    return;
  }
  if (addToCart(cart, sku, 1 + Math.floor(Math.random() * 2))) {
    buy(cart, REPLAY_P);
  }
}

export function teardown({ sku, since }) {
  verifyStore([sku], since, true);
}

export function handleSummary(data) {
  return summarize('flash-sale', data);
}
