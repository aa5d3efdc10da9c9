// cluster: the black-friday mix (60 % browse, 30 % cart abandoned, 10 %
// checkout, skewed popularity; see lib/mix.js) against one flashcore node or
// several nodes of one cluster, for scripts/bench-cluster.sh.
//
// Unlike black-friday.js it does not create its SKUs: in cluster mode a node
// loads the catalog when its engine starts, so the runner seeds SKUS products
// `<SKU_PREFIX>-0001…` with STOCK units each through the first node before the
// others start. Set-up only checks that every one of them answers.
//
// BASE_URLS (comma-separated) spreads the virtual users over the nodes (see
// lib/base-urls.js); set-up and the post-run store check go to the first.
//
// env: BASE_URLS or BASE_URL, FLASHCORE_ADMIN_KEY, SKU_PREFIX (required), SKUS
// (100), STOCK (1000: only reported), DURATION (20s), RATE (900 shoppers/s),
// MAX_VUS (300), REPLAY_P (0.05), SUITE_NAME (cluster: the report's file name),
// P95_MS / P99_MS.

import { BASE_URLS } from './lib/base-urls.js';
import { fail } from 'k6';
import * as api from './lib/api.js';
import { shopper } from './lib/mix.js';
import { verifyStore } from './lib/store.js';
import { suiteOptions, summarize } from './lib/summary.js';

const DURATION = api.envSeconds('DURATION', 20);
const RATE = api.envNumber('RATE', 900);
const SKUS = api.envNumber('SKUS', 100);
const STOCK = api.envNumber('STOCK', 1000);
const MAX_VUS = api.envNumber('MAX_VUS', 300);
const REPLAY_P = api.envNumber('REPLAY_P', 0.05);
const PREFIX = (__ENV.SKU_PREFIX || '').toUpperCase();
const NAME = __ENV.SUITE_NAME || 'cluster';
const SCENARIO = 'cluster_mix';
const s = (f) => `${Math.max(1, Math.round(DURATION * f))}s`;

export const options = suiteOptions({
  scenarios: {
    [SCENARIO]: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.round(RATE / 10)),
      timeUnit: '1s',
      preAllocatedVUs: Math.min(100, MAX_VUS),
      maxVUs: MAX_VUS,
      // A short ramp, then the rate held to the end: throughput is read over the whole run.
      stages: [
        { target: RATE, duration: s(0.1) },
        { target: RATE, duration: s(0.9) },
      ],
      gracefulStop: '10s',
    },
  },
  slo: api.BUYER_ROUTES,
  track: ['POST /v1/carts/{id}/checkout (replay)'],
  p95: 100,
  p99: 250,
  // The load alone (set-up and the post-run check left out), kept for the runner.
  extra: {
    [`http_req_duration{scenario:${SCENARIO}}`]: ['max>=0'],
    [`http_req_failed{scenario:${SCENARIO}}`]: ['rate>=0'],
    [`http_reqs{scenario:${SCENARIO}}`]: ['count>=0'],
    [`iterations{scenario:${SCENARIO}}`]: ['count>=0'],
  },
});

export function setup() {
  if (!PREFIX) {
    fail('SKU_PREFIX is not set: the runner seeds the products before the nodes start');
  }
  api.waitReady(30);
  const skus = [];
  for (let i = 1; i <= SKUS; i++) {
    const sku = `${PREFIX}-${String(i).padStart(4, '0')}`;
    const res = api.getProduct(sku, { tags: { name: 'GET /v1/products/{sku} (set-up)' } });
    if (res.status !== 200) {
      fail(`${sku}: ${res.status} (seed the products before the run)`);
    }
    skus.push(sku);
  }
  return {
    skus,
    since: Date.now(),
    summary: { skus: SKUS, stock_per_sku: STOCK, rate: RATE, duration_s: DURATION, nodes: Math.max(1, BASE_URLS.length) },
  };
}

export default function ({ skus }) {
  shopper(skus, REPLAY_P);
}

export function teardown({ skus, since }) {
  verifyStore(skus, since, false);
}

export function handleSummary(data) {
  return summarize(NAME, data);
}
