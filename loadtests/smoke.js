// smoke: every storefront route once, then the operator routes with the admin
// key, by one virtual user. Fast (a few seconds); `make test` runs it, so any
// failed check or threshold fails the build.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e FLASHCORE_ADMIN_KEY=… loadtests/smoke.js

import http from 'k6/http';
import { check, group } from 'k6';
import * as api from './lib/api.js';
import { R } from './lib/api.js';
import { addToCart, buy } from './lib/flow.js';
import { verifyStore } from './lib/store.js';
import { suiteOptions, summarize } from './lib/summary.js';

const ALL = Object.values(R).concat(['POST /v1/carts/{id}/checkout (replay)']);

export const options = suiteOptions({
  scenarios: { smoke: { executor: 'per-vu-iterations', vus: 1, iterations: 1, maxDuration: '45s' } },
  // One request per route: its p95/p99 is that request. Generous, but a route
  // that hangs or fails still fails the suite.
  slo: api.BUYER_ROUTES,
  track: ALL,
  p95: 500,
  p99: 1000,
  extra: { checks: ['rate==1.0'] },
});

const STOCK = 5;

export function setup() {
  api.waitReady(30);
  const sku = `SMOKE-${api.runId()}`;
  api.putProduct(sku, STOCK, { max_per_order: 3 });
  return { sku, since: Date.now(), summary: { sku, stock: STOCK } };
}

export default function ({ sku }) {
  group('operations', () => {
    check(api.get('/health', R.health), { 'health 200': (r) => r.status === 200 });
    check(api.get('/ready', R.ready), { 'ready 200': (r) => r.status === 200 });
    check(api.get('/metrics', R.metrics), {
      'metrics 200 Prometheus text': (r) => r.status === 200 && r.body.includes('flashcore_'),
    });
    check(api.get('/openapi.json', R.openapi), {
      'openapi 200 with paths': (r) => r.status === 200 && api.body(r).paths['/v1/carts'] !== undefined,
    });
    check(api.get('/docs', R.docs), { 'docs 200': (r) => r.status === 200 });
  });

  group('storefront', () => {
    const page = api.listProducts(2);
    const p1 = api.body(page);
    check(page, { 'products page 200': (r) => r.status === 200 && p1.items.length > 0 });
    if (p1 && p1.next_cursor) {
      const next = api.listProducts(2, p1.next_cursor);
      check(next, { 'next products page 200': (r) => r.status === 200 && api.body(r).items[0].sku !== p1.items[0].sku });
    }
    check(api.waitAvailable(sku, STOCK), {
      'product 200 with availability': (r) => r.status === 200 && api.body(r).available === STOCK,
    });
    check(api.getProduct('NO-SUCH-SKU-1', { responseCallback: http.expectedStatuses(404) }), {
      'unknown product 404 problem': (r) => r.status === 404 && r.headers['Content-Type'].startsWith('application/problem+json'),
    });

    // SSE: the stream stays open, so the request ends at its timeout; what it
    // received until then is the initial `availability` event.
    const sse = http.get(`${api.BASE_URL}/v1/products/${sku}/availability`, {
      tags: { name: R.availability },
      timeout: '1s',
      responseCallback: http.expectedStatuses(200, 0),
    });
    check(sse, {
      'availability stream opens (200 or held open to the timeout)': (r) => r.status === 200 || r.error_code === 1050,
    });

    const cart = api.createCart();
    if (!cart) {
      return;
    }
    check(api.getCart(cart), { 'cart 200, open and empty': (r) => r.status === 200 && api.body(r).status === 'open' });

    check(addToCart(cart, sku, 2), { 'add 2 to cart': (ok) => ok });
    const more = api.setItem(cart, sku, STOCK + 1);
    check(more, {
      'over max_per_order: 409 limit-exceeded': (r) => r.status === 409 && api.problemCode(r) === 'limit-exceeded',
    });
    check(api.setItem(cart, sku, 1), {
      'resize to 1: line with hold_expires_at': (r) => r.status === 200 && api.body(r).lines[0].hold_expires_at.length > 0,
    });
    check(api.removeItem(cart, sku), { 'remove line 200, cart empty': (r) => r.status === 200 && api.body(r).lines.length === 0 });
    check(addToCart(cart, sku, 1), { 'add 1 again': (ok) => ok });

    const nokey = api.checkout(cart, null, 'tok_visa', { responseCallback: http.expectedStatuses(400, 422, 428) });
    check(nokey, { 'checkout without Idempotency-Key refused': (r) => api.problemCode(r) === 'idempotency-key-missing' });

    const orderId = buy(cart, 1.0);
    check(orderId, { 'checkout placed an order': (id) => !!id });
    if (orderId) {
      check(api.getOrder(orderId, cart.token), {
        'order readable with the cart token': (r) => r.status === 200 && api.body(r).order_id === orderId,
      });
    }
    check(api.waitAvailable(sku, STOCK - 1), {
      'stock went down by the order': (r) => r.status === 200 && api.body(r).available === STOCK - 1,
    });
  });

  group('operators', () => {
    const unauth = http.get(`${api.BASE_URL}/v1/admin/orders`, {
      tags: { name: R.adminOrders },
      responseCallback: http.expectedStatuses(401),
    });
    check(unauth, { 'admin without a key: 401': (r) => r.status === 401 });
    check(api.changeStock(sku, { restock: 2 }), {
      'restock 200': (r) => r.status === 200 && api.body(r).total === STOCK + 2,
    });
    check(api.adminGet('/v1/admin/orders?limit=5', R.adminOrders), {
      'admin orders 200': (r) => r.status === 200 && Array.isArray(api.body(r).items),
    });
    check(api.adminGet('/v1/admin/actors', R.adminActors), { 'admin actors 200': (r) => r.status === 200 });
    check(api.adminGet('/v1/admin/journal', R.adminJournal), { 'admin journal 200': (r) => r.status === 200 });
    check(api.adminGet('/v1/admin/keys', R.adminKeys), { 'admin keys 200': (r) => r.status === 200 });
    const created = api.createKey(`smoke-${api.runId()}`, 'operator');
    const key = api.body(created);
    check(created, { 'operator key created (201)': (r) => r.status === 201 && key.secret.startsWith('fck_') });
    if (key && key.secret) {
      check(api.adminGet('/v1/admin/orders?limit=1', R.adminOrders, key.secret), {
        'operator key reads orders': (r) => r.status === 200,
      });
      check(api.revokeKey(key.id), { 'key revoked (2xx)': (r) => r.status >= 200 && r.status < 300 });
    }
  });
}

export function teardown({ sku, since }) {
  verifyStore([sku], since, true);
}

export function handleSummary(data) {
  return summarize('smoke', data);
}
