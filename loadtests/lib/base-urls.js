// Spreads a suite over several flashcore nodes: with BASE_URLS set
// (comma-separated), each virtual user talks to one of them, VU n to the
// ((n - 1) mod count)-th, and set-up and teardown (VU 0) to the first. It sets
// BASE_URL for ./api.js, so import this module BEFORE ./api.js (or any module
// importing it): ES modules are evaluated in import order, and every VU runs
// its own init code. Without BASE_URLS nothing changes.
//
// Per VU rather than per iteration because api.js reads BASE_URL once, at
// init; with an arrival-rate executor the VUs take turns, so the nodes get
// about the same share (scripts/bench-cluster.sh reports each node's count).

const urls = (__ENV.BASE_URLS || '')
  .split(',')
  .map((u) => u.trim().replace(/\/+$/, ''))
  .filter((u) => u.length > 0);

if (urls.length > 0) {
  __ENV.BASE_URL = urls[(__VU > 0 ? __VU - 1 : 0) % urls.length];
}

/** The nodes this run spreads over (empty: BASE_URL alone). */
export const BASE_URLS = urls;
