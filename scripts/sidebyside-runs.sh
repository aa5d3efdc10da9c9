#!/usr/bin/env bash
# The side-by-side of DESIGN §7 (scripts/sidebyside.sh) RUNS times in a row
# (default 3), and the two target ratios as DESIGN §7 and issue 13 judge them:
# the median of the runs, with their spread.
#
#   scripts/sidebyside-runs.sh          (RUNS=3, DURATION=10 seconds per figure; SKIP_BUILD=1 to reuse the build)
#   SUMMARY_ONLY=1 scripts/sidebyside-runs.sh   (summarizes the RUNS reports already there)
#
# Each run's report stays in loadtests/results/sidebyside-run-<n>.md (and .json);
# the summary is loadtests/results/sidebyside-runs.md (and .json).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
if ! [[ "$RUNS" =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 1 ]; then
  echo "RUNS must be a whole number of runs (got '$RUNS')" >&2
  exit 2
fi
results=loadtests/results
mkdir -p "$results"
for t in jq awk; do
  command -v $t >/dev/null || { echo "$t is required" >&2; exit 1; }
done

if [ "${SUMMARY_ONLY:-0}" != 1 ]; then
  for n in $(seq "$RUNS"); do
    echo "== side-by-side, run $n of $RUNS" >&2
    # Built once, by the first run (unless the caller already did).
    if [ "$n" -gt 1 ]; then export SKIP_BUILD=1; fi
    ./scripts/sidebyside.sh >/dev/null
    cp "$results/sidebyside.md" "$results/sidebyside-run-$n.md"
    cp "$results/sidebyside.json" "$results/sidebyside-run-$n.json"
  done
fi

runs=()
for n in $(seq "$RUNS"); do
  [ -f "$results/sidebyside-run-$n.json" ] || { echo "no $results/sidebyside-run-$n.json" >&2; exit 1; }
  runs+=("$results/sidebyside-run-$n.json")
done
# Medians (the middle run, or the mean of the two middle ones) and spreads of the two ratios.
summary="$(jq -s '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def ratio(a; b): if b == 0 then null else a / b end;
  [ .[] | {
      hello: .hello.rps, hot_row: .postgres_hot_row.tps, reserve: .flashcore_reserve.rps,
      checkout_only: .flashcore_checkout_only.per_s, checkout_p99_ms: .flashcore_checkout_only.p99_ms,
      reserve_vs_hello: ratio(.flashcore_reserve.rps; .hello.rps),
      checkout_vs_hot_row: ratio(.flashcore_checkout_only.per_s; .postgres_hot_row.tps) } ] as $runs
  | { runs: $runs,
      reserve_vs_hello: { median: ([$runs[].reserve_vs_hello] | median), min: ([$runs[].reserve_vs_hello] | min), max: ([$runs[].reserve_vs_hello] | max), target: 0.6 },
      checkout_vs_hot_row: { median: ([$runs[].checkout_vs_hot_row] | median), min: ([$runs[].checkout_vs_hot_row] | min), max: ([$runs[].checkout_vs_hot_row] | max), target: 10 },
      checkout_p99_ms: { max: ([$runs[].checkout_p99_ms] | max), target: 50 } }' "${runs[@]}")"
echo "$summary" >"$results/sidebyside-runs.json"

verdict() { # verdict MEDIAN TARGET
  awk -v m="$1" -v t="$2" 'BEGIN { if (m + 0 >= t + 0) printf "**met**"; else printf "**missed** by %.0f %%", (1 - m / t) * 100 }'
}
row() { jq -r --argjson i "$1" '.runs[$i] | "| \($i + 1) | \(.hello) | \(.reserve) | \(.reserve_vs_hello * 100 | round / 100)× | \(.hot_row) | \(.checkout_only) | \(.checkout_vs_hot_row * 10 | round / 10)× | \(.checkout_p99_ms) ms |"' <<<"$summary"; }
get() { jq -r "$1" <<<"$summary"; }
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
r_med="$(get '.reserve_vs_hello.median * 100 | round / 100')"
c_med="$(get '.checkout_vs_hot_row.median * 10 | round / 10')"
{
  echo "# Side-by-side, $RUNS runs in a row"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, $(nproc) cores, ${DURATION:-10} s per figure (each run's report: \`sidebyside-run-<n>.md\`)."
  echo
  echo "| run | hello-world req/s | reserve req/s | reserve ÷ hello | hot row tx/s | checkout only /s | checkout only ÷ hot row | checkout p99 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for i in $(seq 0 $((RUNS - 1))); do row "$i"; done
  echo
  echo "- hot-SKU reserve ÷ hello-world: median **${r_med}×** (spread $(get '.reserve_vs_hello.min * 100 | round / 100')–$(get '.reserve_vs_hello.max * 100 | round / 100')×), target ≥ 0.6×: $(verdict "$(get .reserve_vs_hello.median)" 0.6)"
  echo "- durable checkout only ÷ Postgres hot row: median **${c_med}×** (spread $(get '.checkout_vs_hot_row.min * 10 | round / 10')–$(get '.checkout_vs_hot_row.max * 10 | round / 10')×), target ≥ 10×: $(verdict "$(get .checkout_vs_hot_row.median)" 10)"
  echo "- checkout-only p99, worst run: $(get .checkout_p99_ms.max) ms (target ≤ 50 ms)"
} >"$results/sidebyside-runs.md"
cat "$results/sidebyside-runs.md"
