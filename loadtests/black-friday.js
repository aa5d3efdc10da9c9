// black-friday: the sale-day mix over many SKUs — 60 % browse, 30 % cart
// (filled, looked at, abandoned), 10 % checkout — at a rate that ramps up to RATE
// shoppers per second and holds. Set-up creates SKUS fresh SKUs with STOCK units
// each; popularity is skewed. Afterwards no SKU may have sold more than
// total - available, no cart may have two orders, and every acknowledged order
// must be in the store (abandoned carts keep their holds, so units stay held).
//
// env: BASE_URL, FLASHCORE_ADMIN_KEY, DURATION (30s), RATE (150 shoppers/s),
// SKUS (100), STOCK (1000), MAX_VUS (300), REPLAY_P (0.05), P95_MS / P99_MS.

import * as api from './lib/api.js';
import { mixSuite } from './lib/mix.js';
import { suiteOptions } from './lib/summary.js';

const DURATION = api.envSeconds('DURATION', 30);
const RATE = api.envNumber('RATE', 150);
const SKUS = api.envNumber('SKUS', 100);
const STOCK = api.envNumber('STOCK', 1000);
const REPLAY_P = api.envNumber('REPLAY_P', 0.05);
const s = (f) => `${Math.max(1, Math.round(DURATION * f))}s`;

export const options = suiteOptions({
  scenarios: {
    black_friday: {
      executor: 'ramping-arrival-rate',
      startRate: Math.max(1, Math.round(RATE / 10)),
      timeUnit: '1s',
      preAllocatedVUs: Math.min(50, api.envNumber('MAX_VUS', 300)),
      maxVUs: api.envNumber('MAX_VUS', 300),
      stages: [
        { target: RATE, duration: s(0.2) },
        { target: RATE, duration: s(0.7) },
        { target: 0, duration: s(0.1) },
      ],
      gracefulStop: '10s',
    },
  },
  slo: api.BUYER_ROUTES,
  track: ['POST /v1/carts/{id}/checkout (replay)'],
  p95: 100,
  p99: 250,
});

const suite = mixSuite('black-friday', 'BF', { skus: SKUS, stock: STOCK, rate: RATE, duration: DURATION, replayP: REPLAY_P });

export const setup = suite.setup;
export default suite.run;
export const teardown = suite.teardown;
export const handleSummary = suite.handleSummary;
