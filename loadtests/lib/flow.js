// Buyer steps shared by the suites, with their outcome counters.
//
// A 409 `out-of-stock` on add-to-cart and a 409 `stock-lost` on checkout are what
// a flash sale is supposed to answer once the stock is gone: they count as
// outcomes (sold_out, stock_lost), not as errors. Any other status fails a check.

import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { body, checkout, problemCode, setItem, uuid } from './api.js';

/** Orders the buyers saw acknowledged (201, first attempt). */
export const ordersAcked = new Counter('orders_acked');
/** Units in those orders. */
export const unitsAcked = new Counter('units_acked');
/** Add-to-cart answered 409 out-of-stock. */
export const soldOut = new Counter('sold_out');
/** Checkout answered 409 stock-lost. */
export const stockLost = new Counter('stock_lost');
/** Checkouts replayed with the same Idempotency-Key. */
export const replays = new Counter('checkout_replays');
/** Replays that did not answer the same order (must stay 0). */
export const replayMismatches = new Counter('replay_mismatches');

/**
 * Puts `qty` of `sku` in the cart. Returns true when held, false when the
 * answer was an expected 409 out-of-stock or a failure (which fails a check).
 */
export function addToCart(cart, sku, qty) {
  const res = setItem(cart, sku, qty);
  if (res.status === 200) {
    check(res, { 'add to cart: 200 or 409 out-of-stock': () => true });
    return true;
  }
  const code = res.status === 409 ? problemCode(res) : '';
  if (code === 'out-of-stock') {
    soldOut.add(1);
  }
  check(res, { 'add to cart: 200 or 409 out-of-stock': () => code === 'out-of-stock' });
  return false;
}

/**
 * Checks the cart out with a fresh Idempotency-Key; with probability `replayP`
 * sends the same request again and checks it replays the same order. Returns
 * the order id, or null (sold out meanwhile, or a failure).
 */
export function buy(cart, replayP) {
  const key = uuid();
  const res = checkout(cart, key);
  if (res.status === 201) {
    const order = body(res);
    const ok = check(res, { 'checkout: 201 order or 409 stock-lost': () => order && order.order_id });
    if (!ok) {
      return null;
    }
    ordersAcked.add(1);
    unitsAcked.add(order.lines.reduce((n, l) => n + l.quantity, 0));
    if (replayP > 0 && Math.random() < replayP) {
      replays.add(1);
      const again = checkout(cart, key, 'tok_visa', { tags: { name: 'POST /v1/carts/{id}/checkout (replay)' } });
      const b = again.status === 201 ? body(again) : null;
      const same = check(again, {
        'checkout replay: same order, Idempotent-Replayed': () =>
          b && b.order_id === order.order_id && again.headers['Idempotent-Replayed'] === 'true',
      });
      if (!same) {
        replayMismatches.add(1);
      }
    }
    return order.order_id;
  }
  const code = res.status === 409 ? problemCode(res) : '';
  if (code === 'stock-lost') {
    stockLost.add(1);
  }
  check(res, { 'checkout: 201 order or 409 stock-lost': () => code === 'stock-lost' });
  return null;
}
