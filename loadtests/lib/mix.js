// The shopping mix of the black-friday and soak suites: browse / cart / checkout
// over a catalog of many SKUs whose popularity is skewed (a few SKUs get most
// of the traffic, as on a real sale day).

import { check } from 'k6';
import * as api from './api.js';
import { addToCart, buy } from './flow.js';
import { verifyStore } from './store.js';
import { summarize } from './summary.js';

/** Creates `n` SKUs `<prefix>-0001…` with `stock` units each; returns their codes. */
export function createCatalog(prefix, n, stock) {
  const skus = [];
  for (let i = 1; i <= n; i++) {
    const sku = `${prefix}-${String(i).padStart(4, '0')}`;
    api.putProduct(sku, stock, { max_per_order: 5 });
    skus.push(sku);
  }
  return skus;
}

/** A SKU, skewed: index ~ n * u^2, so the first tenth takes about a third of the picks. */
function pick(skus) {
  return skus[Math.floor(skus.length * Math.random() ** 2)];
}

function distinct(skus, k) {
  const out = new Set();
  for (let tries = 0; out.size < k && tries < 10; tries++) {
    out.add(pick(skus));
  }
  return [...out];
}

/** Looks around: a product page of the listing, then one to three products. */
export function browse(skus) {
  if (Math.random() < 0.5) {
    check(api.listProducts(20), { 'browse: product list 200': (r) => r.status === 200 });
  }
  const n = 1 + Math.floor(Math.random() * 3);
  for (let i = 0; i < n; i++) {
    check(api.getProduct(pick(skus)), { 'browse: product 200': (r) => r.status === 200 });
  }
}

/** Fills a cart with one to three SKUs, looks at it, maybe removes one, leaves. */
export function abandonCart(skus) {
  const cart = api.createCart();
  if (!cart) {
    return;
  }
  const picked = distinct(skus, 1 + Math.floor(Math.random() * 3));
  for (const sku of picked) {
    addToCart(cart, sku, 1 + Math.floor(Math.random() * 2));
  }
  check(api.getCart(cart), { 'cart: view 200': (r) => r.status === 200 });
  if (Math.random() < 0.3) {
    check(api.removeItem(cart, picked[0]), { 'cart: remove 200': (r) => r.status === 200 });
  }
}

/** Fills a cart with one or two SKUs and checks out. */
export function purchase(skus, replayP) {
  const cart = api.createCart();
  if (!cart) {
    return;
  }
  let held = 0;
  for (const sku of distinct(skus, 1 + Math.floor(Math.random() * 2))) {
    if (addToCart(cart, sku, 1 + Math.floor(Math.random() * 2))) {
      held++;
    }
  }
  if (held > 0) {
    buy(cart, replayP);
  }
}

/** One shopper: 60 % browse, 30 % cart (abandoned), 10 % checkout. */
export function shopper(skus, replayP) {
  const r = Math.random();
  if (r < 0.6) {
    browse(skus);
  } else if (r < 0.9) {
    abandonCart(skus);
  } else {
    purchase(skus, replayP);
  }
}

// The life cycle black-friday and soak share: set-up creates `skus` fresh SKUs
// named `<prefix>-<run>-…` with `stock` units each; every iteration is one
// shopper; teardown checks the store; the summary is written under `name`.
// A suite exports these as its `setup`, `default`, `teardown` and `handleSummary`.
export function mixSuite(name, prefix, { skus, stock, rate, duration, replayP }) {
  return {
    setup() {
      api.waitReady(30);
      const created = createCatalog(`${prefix}-${api.runId()}`, skus, stock);
      return {
        skus: created,
        since: Date.now(),
        summary: { skus, stock_per_sku: stock, rate, duration_s: duration },
      };
    },
    run({ skus: created }) {
      shopper(created, replayP);
    },
    teardown({ skus: created, since }) {
      verifyStore(created, since, false);
    },
    handleSummary(data) {
      return summarize(name, data);
    },
  };
}
