// soak: the black-friday mix at a steady, moderate rate for minutes, to see
// latency, memory and the journal hold up over time (watch /metrics and
// /v1/admin/journal meanwhile). Set-up creates SKUS fresh SKUs with STOCK units.
// Same post-run checks as black-friday.
//
// env: BASE_URL, FLASHCORE_ADMIN_KEY, DURATION (5m), RATE (50 shoppers/s),
// SKUS (200), STOCK (100000), MAX_VUS (200), REPLAY_P (0.05), P95_MS / P99_MS.

import * as api from './lib/api.js';
import { mixSuite } from './lib/mix.js';
import { suiteOptions } from './lib/summary.js';

const DURATION = api.envSeconds('DURATION', 300);
const RATE = api.envNumber('RATE', 50);
const SKUS = api.envNumber('SKUS', 200);
const STOCK = api.envNumber('STOCK', 100000);
const REPLAY_P = api.envNumber('REPLAY_P', 0.05);

export const options = suiteOptions({
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${Math.max(1, Math.round(DURATION))}s`,
      preAllocatedVUs: Math.min(50, api.envNumber('MAX_VUS', 200)),
      maxVUs: api.envNumber('MAX_VUS', 200),
      gracefulStop: '10s',
    },
  },
  slo: api.BUYER_ROUTES,
  track: ['POST /v1/carts/{id}/checkout (replay)'],
  p95: 50,
  p99: 150,
});

const suite = mixSuite('soak', 'SOAK', { skus: SKUS, stock: STOCK, rate: RATE, duration: DURATION, replayP: REPLAY_P });

export const setup = suite.setup;
export default suite.run;
export const teardown = suite.teardown;
export const handleSummary = suite.handleSummary;
