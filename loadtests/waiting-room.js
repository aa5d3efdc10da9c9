// waiting-room: a spike of ARRIVALS buyers for STOCK units behind a waiting room.
//
// Set-up creates a fresh SKU with STOCK units (1 per order) whose sale starts
// START_IN seconds later, with a waiting room admitting ADMIT_RATE buyers per
// second. VUS virtual users each bring ARRIVALS / VUS buyers: every buyer opens
// a cart and joins the line before the start (the spike), so they are all drawn
// into random order when the sale opens. Each then polls its ticket the way the
// waiting page does when its stream is down: when the ticket says
// (`poll_after_ms`: after the start, spread, for a ticket not drawn yet; then
// about when its place may come up): an admitted buyer adds the product with
// its Waiting-Room-Pass and checks out; a `sold-out` ticket is the expected end
// for everyone else.
//
// Asserted: admitted buyers never see a 429 (`admitted_429` == 0), their
// checkout p99 <= P99_MS (250), exactly STOCK units sold (orders of the run ==
// STOCK, nothing left available or held), every ticket ends admitted or
// sold-out; reported: the join's p50/p95/p99 (`POST /v1/products/{sku}/queue`).
//
// env: BASE_URL, FLASHCORE_ADMIN_KEY, ARRIVALS (20000), STOCK (500), VUS (200),
// ADMIT_RATE (250 per second), START_IN (seconds after set-up, default 40),
// P95_MS / P99_MS.

import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import * as api from './lib/api.js';
import { R, body, problemCode } from './lib/api.js';
import { ordersAcked, soldOut, unitsAcked } from './lib/flow.js';
import { invariantViolations, verifyStore } from './lib/store.js';
import { suiteOptions, summarize } from './lib/summary.js';

const ARRIVALS = api.envNumber('ARRIVALS', 20000);
const STOCK = api.envNumber('STOCK', 500);
const VUS = api.envNumber('VUS', 200);
const ADMIT_RATE = api.envNumber('ADMIT_RATE', 250);
const START_IN = api.envNumber('START_IN', 40);
const PER_VU = Math.ceil(ARRIVALS / VUS);
const BATCH = 25;

const JOIN = 'POST /v1/products/{sku}/queue';
const TICKET = 'GET /v1/products/{sku}/queue/{ticket}';

/** 429 answers seen by buyers after their admission (must stay 0). */
const admitted429 = new Counter('admitted_429');
/** Tickets admitted / ended sold-out / still unresolved at the deadline. */
const admittedTickets = new Counter('tickets_admitted');
const soldOutTickets = new Counter('tickets_sold_out');
const unresolved = new Counter('tickets_unresolved');
/** Seconds from the sale start to a buyer's admission. */
const waitToAdmission = new Trend('wait_to_admission_s');
/** Ticket reads per buyer. */
const readsPerBuyer = new Trend('ticket_reads_per_buyer');

/** When to read a ticket `t` again (ms since the epoch): its `poll_after_ms`,
 * or, from a server that gives none, the old rule (half the estimate, 0.5 to 5 s). */
function nextRead(t) {
  const hint = typeof t.poll_after_ms === 'number' ? t.poll_after_ms
    : 1000 * Math.min(5, Math.max(0.5, (t.estimated_wait_secs || 1) / 2)) * (0.8 + Math.random() * 0.4);
  return Date.now() + hint;
}

export const options = Object.assign(suiteOptions({
  scenarios: {
    spike: {
      executor: 'per-vu-iterations',
      vus: VUS,
      iterations: 1,
      maxDuration: `${START_IN + 240}s`,
      gracefulStop: '30s',
    },
  },
  slo: [R.checkout, R.setItem],
  track: [JOIN, TICKET, R.createCart],
  p95: 100,
  p99: 250,
  extra: {
    admitted_429: ['count==0'],
    tickets_unresolved: ['count==0'],
    [`http_req_failed{name:${JOIN}}`]: ['rate<0.01'],
  },
}), { batch: BATCH, batchPerHost: BATCH });

function bearer(token, json) {
  const h = { Authorization: `Bearer ${token}` };
  if (json) {
    h['Content-Type'] = 'application/json';
  }
  return h;
}

function iso(ms) {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function setup() {
  api.waitReady(30);
  const sku = `QUEUE-${api.runId()}`;
  const startsAt = Math.ceil((Date.now() + START_IN * 1000) / 1000) * 1000;
  const p = api.putProduct(sku, STOCK, {
    title: 'Waiting room load test',
    max_per_order: 1,
    sale_starts_at: iso(startsAt),
    waiting_room: { admit_per_second: ADMIT_RATE, pass_ttl_secs: 300 },
  });
  check(p, { 'the product has its waiting room': (b) => b && b.waiting_room && b.waiting_room.admit_per_second === ADMIT_RATE });
  return {
    sku,
    startsAt,
    since: Date.now(),
    summary: { sku, stock: STOCK, arrivals: VUS * PER_VU, vus: VUS, admit_per_second: ADMIT_RATE, start_in_s: START_IN },
  };
}

/** One VU: PER_VU buyers who open a cart, join, wait, and buy when admitted. */
export default function ({ sku, startsAt }) {
  const base = api.BASE_URL;
  const buyers = [];
  // Arrive: carts, then joins, BATCH requests at a time.
  for (let i = 0; i < PER_VU; i += BATCH) {
    const n = Math.min(BATCH, PER_VU - i);
    const carts = http.batch(
      Array.from({ length: n }, () => ['POST', `${base}/v1/carts`, null, { tags: { name: R.createCart } }]),
    );
    const made = carts
      .map((r) => (r.status === 201 ? body(r) : null))
      .filter((b) => b && b.token)
      .map((b) => ({ id: b.cart_id, token: b.token }));
    check(carts, { 'cart created (201)': (rs) => rs.every((r) => r.status === 201) });
    const joins = http.batch(
      made.map((c) => ['POST', `${base}/v1/products/${sku}/queue`, null, { headers: bearer(c.token), tags: { name: JOIN } }]),
    );
    joins.forEach((r, k) => {
      const t = r.status === 201 ? body(r) : null;
      if (check(r, { 'joined (201 ticket)': () => t && t.ticket_id !== undefined })) {
        buyers.push({ cart: made[k], ticket: t.ticket_id, next: nextRead(t), reads: 0, done: false });
      }
    });
  }
  // Read each ticket when it says: a ticket read long before the start says to
  // come back shortly before it, then after it (spread over a window that grows
  // with the crowd), then about when its place may come up.
  const deadline = startsAt + 180 * 1000;
  while (buyers.some((b) => !b.done) && Date.now() < deadline) {
    const now = Date.now();
    const due = buyers.filter((b) => !b.done && b.next <= now);
    for (let i = 0; i < due.length; i += BATCH) {
      const chunk = due.slice(i, i + BATCH);
      const reads = http.batch(
        chunk.map((b) => [
          'GET',
          `${base}/v1/products/${sku}/queue/${b.ticket}`,
          null,
          { headers: bearer(b.cart.token), tags: { name: TICKET } },
        ]),
      );
      reads.forEach((r, k) => {
        const b = chunk[k];
        b.reads += 1;
        const t = r.status === 200 ? body(r) : null;
        if (!t) {
          check(r, { 'ticket read (200)': () => false });
          b.next = Date.now() + 1000;
          return;
        }
        if (t.state === 'admitted') {
          admittedTickets.add(1);
          waitToAdmission.add((Date.now() - startsAt) / 1000);
          buy(b, sku, t.pass);
          b.done = true;
        } else if (t.state === 'sold-out' || t.state === 'expired') {
          soldOutTickets.add(1);
          b.done = true;
        } else {
          b.next = nextRead(t);
        }
      });
    }
    const pending = buyers.filter((b) => !b.done);
    if (pending.length) {
      const soonest = Math.min(...pending.map((b) => b.next));
      sleep(Math.max(0.05, (soonest - Date.now()) / 1000));
    }
  }
  unresolved.add(buyers.filter((b) => !b.done).length);
  for (const b of buyers) {
    readsPerBuyer.add(b.reads);
  }
}

/** An admitted buyer: add with the pass, check out. A 429 on either is a failure. */
function buy(b, sku, pass) {
  const headers = Object.assign(bearer(b.cart.token, true), { 'Waiting-Room-Pass': pass });
  const put = api.setItem(b.cart, sku, 1, { headers });
  if (put.status === 429) {
    admitted429.add(1);
  }
  if (put.status !== 200) {
    const code = put.status === 409 ? problemCode(put) : '';
    if (code === 'out-of-stock') {
      soldOut.add(1);
    }
    check(put, { 'admitted add-to-cart: 200 or 409 out-of-stock': () => code === 'out-of-stock' });
    return;
  }
  const res = api.checkout(b.cart, api.uuid());
  if (res.status === 429) {
    admitted429.add(1);
  }
  const order = res.status === 201 ? body(res) : null;
  if (check(res, { 'admitted checkout: 201 or 409 stock-lost': () => (order && order.order_id) || problemCode(res) === 'stock-lost' }) && order) {
    ordersAcked.add(1);
    unitsAcked.add(1);
  }
}

export function teardown({ sku, since }) {
  const f = verifyStore([sku], since, true);
  const exact = f !== null && f.unitsSold === STOCK && f.orders === STOCK;
  check(null, { 'post-run: exactly the stock sold': () => exact });
  if (!exact) {
    invariantViolations.add(1, { check: 'exactly-the-stock-sold' });
  }
  const room = api.adminGet(`/v1/admin/products/${sku}/queue`, 'GET /v1/admin/products/{sku}/queue');
  const r = room.status === 200 ? body(room) : null;
  console.log(`waiting room after the run: ${JSON.stringify(r)}`);
  check(r, { 'post-run: the room is sold out': (x) => x && x.sold_out === true });
}

export function handleSummary(data) {
  return summarize('waiting-room', data);
}
