// Options (thresholds per route) and the end-of-test summary every suite shares.
//
// handleSummary writes `<RESULTS_DIR>/<suite>.json` (the report below plus k6's
// raw metrics) and `<RESULTS_DIR>/<suite>.md` (the same as Markdown, which
// scripts/loadtest.sh wraps with the run's set-up), and prints the Markdown.

import { BASE_URL } from './api.js';

const RESULTS_DIR = (__ENV.RESULTS_DIR || 'loadtests/results').replace(/\/+$/, '');

/** A threshold that always passes: it only makes k6 keep the per-route sub-metric. */
const TRACK_TREND = 'max>=0';
const TRACK_RATE = 'rate>=0';

function ms(name, fallback) {
  const v = Number(__ENV[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/**
 * k6 options for a suite: its scenarios, then thresholds on
 * - every route in `slo` (p95 < `p95` ms and p99 < `p99` ms, failures < 1 %),
 *   overridable with P95_MS / P99_MS,
 * - every route in `track` (kept per route for the report, no threshold),
 * - all requests (failures < 1 %), checks (> 99 % pass), the post-run store
 *   check (`invariant_violations` == 0) and idempotent replays (no mismatch).
 */
export function suiteOptions({ scenarios, slo, track, p95, p99, extra }) {
  const thresholds = {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    invariant_violations: ['count==0'],
    replay_mismatches: ['count==0'],
  };
  const P95 = ms('P95_MS', p95);
  const P99 = ms('P99_MS', p99);
  for (const name of slo || []) {
    thresholds[`http_req_duration{name:${name}}`] = [`p(95)<${P95}`, `p(99)<${P99}`];
    thresholds[`http_req_failed{name:${name}}`] = ['rate<0.01'];
  }
  for (const name of track || []) {
    thresholds[`http_req_duration{name:${name}}`] = thresholds[`http_req_duration{name:${name}}`] || [TRACK_TREND];
    thresholds[`http_req_failed{name:${name}}`] = thresholds[`http_req_failed{name:${name}}`] || [TRACK_RATE];
  }
  Object.assign(thresholds, extra || {});
  return {
    scenarios,
    thresholds,
    summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max', 'count'],
    setupTimeout: '120s',
    teardownTimeout: '300s',
    // Thousands of buyers share one process: never keep cookies or sleep between steps.
    noCookiesReset: true,
    discardResponseBodies: false,
  };
}

const round = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? Number(x.toFixed(d)) : null);
const val = (data, metric, stat) => {
  const m = data.metrics[metric];
  return m && m.values && stat in m.values ? m.values[stat] : null;
};

/** The report object: totals, per route, outcomes, store figures, checks and thresholds. */
export function report(suite, data, setup) {
  const seconds = data.state.testRunDurationMs / 1000;
  const routes = [];
  for (const key of Object.keys(data.metrics)) {
    const m = /^http_req_duration\{name:(.+)\}$/.exec(key);
    if (!m) {
      continue;
    }
    const v = data.metrics[key].values;
    if (!v.count) {
      continue;
    }
    routes.push({
      route: m[1],
      count: v.count,
      rate: round(v.count / seconds, 1),
      p50_ms: round(v.med),
      p95_ms: round(v['p(95)']),
      p99_ms: round(v['p(99)']),
      max_ms: round(v.max),
      failed_rate: round(val(data, `http_req_failed{name:${m[1]}}`, 'rate'), 4),
    });
  }
  routes.sort((a, b) => a.route.localeCompare(b.route));

  const counter = (n) => val(data, n, 'count') || 0;
  const gauge = (n) => val(data, n, 'value');
  const outcomes = {
    orders_acked: counter('orders_acked'),
    units_acked: counter('units_acked'),
    sold_out_409: counter('sold_out'),
    stock_lost_409: counter('stock_lost'),
    checkout_replays: counter('checkout_replays'),
    replay_mismatches: counter('replay_mismatches'),
  };
  const store = {
    skus_checked: gauge('store_skus_checked'),
    orders: gauge('store_orders'),
    units_sold: gauge('store_units_sold'),
    units_total: gauge('store_units_total'),
    units_available: gauge('store_units_available'),
    units_held: gauge('store_units_held'),
    duplicate_orders: gauge('store_duplicate_orders'),
    oversold_skus: gauge('store_oversold_skus'),
  };

  const checks = [];
  const group = data.root_group || { checks: [], groups: [] };
  const walk = (g) => {
    for (const c of g.checks || []) {
      checks.push({ name: c.name, passes: c.passes, fails: c.fails });
    }
    for (const sub of g.groups || []) {
      walk(sub);
    }
  };
  walk(group);

  const post = [
    { name: 'the post-run store check ran', ok: store.orders !== null },
    { name: 'units sold <= units in stock (no oversell)', ok: store.units_sold !== null && store.units_sold <= store.units_total },
    { name: 'no SKU sold more than total - available', ok: store.oversold_skus === 0 },
    { name: 'no cart has two orders (no duplicate checkout)', ok: store.duplicate_orders === 0 },
    { name: 'every acknowledged order is in the store', ok: store.orders !== null && store.orders >= outcomes.orders_acked },
    { name: 'every replay answered the same order', ok: outcomes.replay_mismatches === 0 },
  ];

  const thresholds = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) {
      if (expr !== TRACK_TREND && expr !== TRACK_RATE) {
        thresholds.push({ metric, expr, ok: t.ok });
      }
    }
  }
  thresholds.sort((a, b) => a.metric.localeCompare(b.metric) || a.expr.localeCompare(b.expr));

  return {
    suite,
    base_url: BASE_URL,
    setup: setup || null,
    duration_s: round(seconds, 1),
    requests: {
      count: val(data, 'http_reqs', 'count'),
      rate: round(val(data, 'http_reqs', 'rate'), 1),
      failed_rate: round(val(data, 'http_req_failed', 'rate'), 4),
      p50_ms: round(val(data, 'http_req_duration', 'med')),
      p95_ms: round(val(data, 'http_req_duration', 'p(95)')),
      p99_ms: round(val(data, 'http_req_duration', 'p(99)')),
    },
    iterations: val(data, 'iterations', 'count'),
    dropped_iterations: val(data, 'dropped_iterations', 'count') || 0,
    vus_max: val(data, 'vus_max', 'max') || val(data, 'vus_max', 'value'),
    checks: { passes: val(data, 'checks', 'passes'), fails: val(data, 'checks', 'fails'), list: checks },
    routes,
    outcomes,
    store,
    post_checks: post,
    thresholds,
    passed: thresholds.every((t) => t.ok) && post.every((p) => p.ok),
  };
}

const mark = (ok) => (ok ? 'ok' : '**FAILED**');
const cell = (x) => (x === null || x === undefined ? '–' : String(x));

/** The report as Markdown (no title: the runner adds the run's set-up above it). */
export function markdown(r) {
  const L = [];
  L.push(`**Result: ${r.passed ? 'passed' : 'FAILED'}** — ${r.requests.count} requests in ${r.duration_s} s ` +
    `(${r.requests.rate} req/s overall, set-up and post-run checks included), ` +
    `${(r.requests.failed_rate * 100).toFixed(2)} % failed, checks ${r.checks.passes} passed / ${r.checks.fails} failed, ` +
    `${r.iterations} iterations (${r.dropped_iterations} dropped), up to ${cell(r.vus_max)} VUs.`);
  L.push('');
  L.push('| route | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | failed |');
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const x of r.routes) {
    const failed = x.failed_rate === null ? '–' : `${(x.failed_rate * 100).toFixed(2)} %`;
    L.push(`| \`${x.route}\` | ${x.count} | ${x.rate} | ${cell(x.p50_ms)} | ${cell(x.p95_ms)} | ${cell(x.p99_ms)} | ${cell(x.max_ms)} | ${failed} |`);
  }
  L.push(`| all | ${r.requests.count} | ${r.requests.rate} | ${cell(r.requests.p50_ms)} | ${cell(r.requests.p95_ms)} | ${cell(r.requests.p99_ms)} | | ${(r.requests.failed_rate * 100).toFixed(2)} % |`);
  L.push('');
  const o = r.outcomes;
  const s = r.store;
  L.push('| orders and stock | |');
  L.push('|---|---:|');
  L.push(`| orders acknowledged to buyers (201) | ${o.orders_acked} (${o.units_acked} units) |`);
  L.push(`| orders of this run in the store | ${cell(s.orders)} (${cell(s.units_sold)} units) |`);
  L.push(`| stock of the run's SKUs (${cell(s.skus_checked)} SKUs): total / available / still held | ${cell(s.units_total)} / ${cell(s.units_available)} / ${cell(s.units_held)} |`);
  L.push(`| add-to-cart 409 out-of-stock / checkout 409 stock-lost | ${o.sold_out_409} / ${o.stock_lost_409} |`);
  L.push(`| checkout replays (same Idempotency-Key) / mismatched | ${o.checkout_replays} / ${o.replay_mismatches} |`);
  L.push(`| carts with two orders / SKUs oversold | ${cell(s.duplicate_orders)} / ${cell(s.oversold_skus)} |`);
  L.push('');
  L.push('Post-run checks:');
  L.push('');
  for (const p of r.post_checks) {
    L.push(`- ${mark(p.ok)}: ${p.name}`);
  }
  L.push('');
  L.push('Thresholds:');
  L.push('');
  for (const t of r.thresholds) {
    L.push(`- ${mark(t.ok)}: \`${t.metric}\` \`${t.expr}\``);
  }
  const failedChecks = r.checks.list.filter((c) => c.fails > 0);
  if (failedChecks.length) {
    L.push('');
    L.push('Failed checks:');
    L.push('');
    for (const c of failedChecks) {
      L.push(`- ${c.name}: ${c.fails} failed, ${c.passes} passed`);
    }
  }
  L.push('');
  return L.join('\n');
}

/** The suites' handleSummary: JSON and Markdown files, Markdown on stdout. */
export function summarize(suite, data) {
  const r = report(suite, data, data.setup_data && data.setup_data.summary);
  const md = markdown(r);
  return {
    stdout: `\n== ${suite} ==\n\n${md}\n`,
    [`${RESULTS_DIR}/${suite}.json`]: JSON.stringify({ report: r, k6: { state: data.state, metrics: data.metrics } }, null, 2),
    [`${RESULTS_DIR}/${suite}.md`]: md,
  };
}
