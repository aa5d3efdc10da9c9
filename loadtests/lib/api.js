// The flashcore HTTP API as the suites use it: one function per call, every
// request tagged with its route template (`tags.name`) so URLs with ids group in
// the metrics, and the operator calls authenticated with FLASHCORE_ADMIN_KEY.

import http from 'k6/http';
import { check, fail, sleep } from 'k6';

/** Where flashcore listens. */
export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
/** An admin API key (`fck_…` or the bootstrap FLASHCORE_ADMIN_KEY). */
export const ADMIN_KEY = __ENV.FLASHCORE_ADMIN_KEY || '';

/** Route templates, used as `tags.name` and in thresholds and reports. */
export const R = {
  health: 'GET /health',
  ready: 'GET /ready',
  metrics: 'GET /metrics',
  openapi: 'GET /openapi.json',
  docs: 'GET /docs',
  products: 'GET /v1/products',
  product: 'GET /v1/products/{sku}',
  availability: 'GET /v1/products/{sku}/availability',
  createCart: 'POST /v1/carts',
  getCart: 'GET /v1/carts/{id}',
  setItem: 'PUT /v1/carts/{id}/items/{sku}',
  removeItem: 'DELETE /v1/carts/{id}/items/{sku}',
  checkout: 'POST /v1/carts/{id}/checkout',
  order: 'GET /v1/orders/{id}',
  putProduct: 'PUT /v1/admin/products/{sku}',
  stock: 'POST /v1/admin/products/{sku}/stock',
  adminOrders: 'GET /v1/admin/orders',
  adminActors: 'GET /v1/admin/actors',
  adminJournal: 'GET /v1/admin/journal',
  adminKeys: 'GET /v1/admin/keys',
  createKey: 'POST /v1/admin/keys',
  revokeKey: 'DELETE /v1/admin/keys/{id}',
};

/** Routes a storefront buyer hits; the suites put latency thresholds on these. */
export const BUYER_ROUTES = [R.products, R.product, R.createCart, R.getCart, R.setItem, R.removeItem, R.checkout];

const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** Statuses that are outcomes, not failures, for cart edits and checkouts. */
export const SALE_OUTCOMES = http.expectedStatuses({ min: 200, max: 299 }, 409);

/** A random RFC 4122 v4 UUID (Idempotency-Key values, run ids). */
export function uuid() {
  if (typeof crypto !== 'undefined' && crypto.randomUUID) {
    return crypto.randomUUID();
  }
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = (Math.random() * 16) | 0;
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

/** A short id for SKUs created by one run (SKUs allow A-Z, 0-9 and dashes). */
export function runId() {
  return (__ENV.RUN_ID || uuid().slice(0, 8)).toUpperCase().replace(/[^A-Z0-9]/g, '');
}

/** Parses a JSON body, or null. */
export function body(res) {
  try {
    return res.json();
  } catch (_) {
    return null;
  }
}

/** The problem `code` of an error response, or ''. */
export function problemCode(res) {
  const b = body(res);
  return (b && b.code) || '';
}

function params(name, extra) {
  const p = Object.assign({ tags: { name } }, extra || {});
  p.tags = Object.assign({ name }, (extra && extra.tags) || {});
  return p;
}

function bearer(token) {
  return { Authorization: `Bearer ${token}` };
}

function adminHeaders(json) {
  if (!ADMIN_KEY) {
    fail('FLASHCORE_ADMIN_KEY is not set: the operator routes need an admin key');
  }
  return Object.assign(json ? Object.assign({}, JSON_HEADERS) : {}, bearer(ADMIN_KEY));
}

// ---------------------------------------------------------------------------
// Operations and health.

export function get(path, name, extra) {
  return http.get(`${BASE_URL}${path}`, params(name, extra));
}

// ---------------------------------------------------------------------------
// Storefront.

export function listProducts(limit, cursor) {
  const q = cursor ? `?limit=${limit}&cursor=${encodeURIComponent(cursor)}` : `?limit=${limit}`;
  return http.get(`${BASE_URL}/v1/products${q}`, params(R.products));
}

export function getProduct(sku, extra) {
  return http.get(`${BASE_URL}/v1/products/${encodeURIComponent(sku)}`, params(R.product, extra));
}

/** `POST /v1/carts`: returns `{cart_id, token}` or null (the failure is in the metrics). */
export function createCart() {
  const res = http.post(`${BASE_URL}/v1/carts`, null, params(R.createCart));
  const ok = check(res, { 'cart created (201)': (r) => r.status === 201 });
  const b = ok ? body(res) : null;
  return b && b.cart_id && b.token ? { id: b.cart_id, token: b.token } : null;
}

export function getCart(cart) {
  return http.get(`${BASE_URL}/v1/carts/${cart.id}`, params(R.getCart, { headers: bearer(cart.token) }));
}

/** Sets a line's quantity; 409 (out of stock, limit, sale not started) is an outcome. */
export function setItem(cart, sku, quantity, extra) {
  return http.put(
    `${BASE_URL}/v1/carts/${cart.id}/items/${encodeURIComponent(sku)}`,
    JSON.stringify({ quantity }),
    params(R.setItem, Object.assign({ headers: Object.assign(bearer(cart.token), JSON_HEADERS), responseCallback: SALE_OUTCOMES }, extra || {})),
  );
}

export function removeItem(cart, sku) {
  return http.del(
    `${BASE_URL}/v1/carts/${cart.id}/items/${encodeURIComponent(sku)}`,
    null,
    params(R.removeItem, { headers: bearer(cart.token) }),
  );
}

/** Checks out with `key` as Idempotency-Key; 409 (stock lost) is an outcome. */
export function checkout(cart, key, paymentToken, extra) {
  const headers = Object.assign(bearer(cart.token), JSON_HEADERS);
  if (key) {
    headers['Idempotency-Key'] = key;
  }
  return http.post(
    `${BASE_URL}/v1/carts/${cart.id}/checkout`,
    JSON.stringify({ payment: { token: paymentToken || 'tok_visa' }, email: 'loadtest@example.com' }),
    params(R.checkout, Object.assign({ headers, responseCallback: SALE_OUTCOMES }, extra || {})),
  );
}

/**
 * Product reads come from the availability feed, a few milliseconds behind the
 * SKU actor: polls (up to `seconds`, default 3) until `available` is `want`, and
 * returns the last response.
 */
export function waitAvailable(sku, want, seconds) {
  const deadline = Date.now() + (seconds || 3) * 1000;
  for (;;) {
    const r = getProduct(sku);
    const b = r.status === 200 ? body(r) : null;
    if ((b && b.available === want) || Date.now() > deadline) {
      return r;
    }
    sleep(0.05);
  }
}

export function getOrder(orderId, token) {
  return http.get(`${BASE_URL}/v1/orders/${orderId}`, params(R.order, { headers: bearer(token) }));
}

// ---------------------------------------------------------------------------
// Operators.

/** Creates or replaces a product with `total` units; fails the test if refused. */
export function putProduct(sku, total, extra) {
  const product = Object.assign(
    { title: `Load test ${sku}`, description: 'Created by a k6 suite.', price: { amount: 1999, currency: 'EUR' }, total },
    extra || {},
  );
  const res = http.put(
    `${BASE_URL}/v1/admin/products/${encodeURIComponent(sku)}`,
    JSON.stringify(product),
    params(R.putProduct, { headers: adminHeaders(true) }),
  );
  if (!check(res, { 'product created (200/201)': (r) => r.status === 200 || r.status === 201 })) {
    fail(`PUT /v1/admin/products/${sku} answered ${res.status}: ${res.body}`);
  }
  return body(res);
}

export function changeStock(sku, change) {
  return http.post(
    `${BASE_URL}/v1/admin/products/${encodeURIComponent(sku)}/stock`,
    JSON.stringify(change),
    params(R.stock, { headers: adminHeaders(true) }),
  );
}

export function adminGet(path, name, key) {
  return http.get(`${BASE_URL}${path}`, params(name, { headers: key ? bearer(key) : adminHeaders(false) }));
}

export function createKey(name, role) {
  return http.post(`${BASE_URL}/v1/admin/keys`, JSON.stringify({ name, role }), params(R.createKey, { headers: adminHeaders(true) }));
}

export function revokeKey(id) {
  return http.del(`${BASE_URL}/v1/admin/keys/${id}`, null, params(R.revokeKey, { headers: adminHeaders(false) }));
}

/** Fails the test unless flashcore answers /ready within `seconds`. */
export function waitReady(seconds) {
  const deadline = Date.now() + (seconds || 30) * 1000;
  for (;;) {
    const res = http.get(`${BASE_URL}/ready`, params(R.ready, { responseCallback: http.expectedStatuses(200, 503) }));
    if (res.status === 200) {
      return;
    }
    if (Date.now() > deadline) {
      fail(`${BASE_URL}/ready did not answer 200 (last: ${res.status} ${res.error || ''})`);
    }
    // k6's sleep is the only way to wait here; this is a poll with a deadline.
    sleep(0.2);
  }
}

/** An env var as a number, or `fallback`. */
export function envNumber(name, fallback) {
  const v = Number(__ENV[name]);
  return __ENV[name] !== undefined && __ENV[name] !== '' && Number.isFinite(v) ? v : fallback;
}

/** An env duration (`90`, `90s`, `5m`, `1h`) in seconds, or `fallback`. */
export function envSeconds(name, fallback) {
  const raw = __ENV[name];
  const m = raw ? /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim()) : null;
  if (!m) {
    return fallback;
  }
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] || 's'];
  return Number(m[1]) * unit;
}
