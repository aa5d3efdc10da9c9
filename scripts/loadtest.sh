#!/usr/bin/env bash
# Runs one k6 suite against a freshly started release flashcore and writes
# loadtests/results/<suite>.md (and <suite>.json).
#
#   scripts/loadtest.sh [smoke|flash-sale|black-friday|soak|waiting-room]   (default: $SUITE, else flash-sale)
#
# flashcore runs against a fresh Postgres database (dropped afterwards) and a
# fresh Redis key prefix (deleted afterwards), on a free loopback port, with a
# generated admin key, FLASHCORE_RATE_CLIENT=off (every virtual user shares one
# address) and FLASHCORE_RATE_SKU=off (override by exporting it). The suite's
# own knobs (DURATION, RATE, STOCK, …; see loadtests/README.md) pass through the
# environment. SKIP_BUILD=1 uses the binary as built. Exits non-zero when a
# threshold or a post-run store check fails, or flashcore does not stop cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

suite="${1:-${SUITE:-flash-sale}}"
case "$suite" in
  smoke | flash-sale | black-friday | soak | waiting-room) ;;
  *) echo "usage: $0 [smoke|flash-sale|black-friday|soak|waiting-room]" >&2; exit 2 ;;
esac

# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

results=loadtests/results
mkdir -p "$results"
bin="${CARGO_TARGET_DIR:-target}/release/flashcore"

harness_init "$suite"
K6_PID=""
stop_k6() {
  [ -n "$K6_PID" ] || return 0
  kill -INT "$K6_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$K6_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$K6_PID" 2>/dev/null || true
  K6_PID=""
}
trap 'stop_k6; harness_cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_k6
command -v curl >/dev/null || lt_die "curl is required"
command -v jq >/dev/null || lt_die "jq is required (apt-get install jq)"
require_services
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  lt_log "building the release binary"
  cargo build --release --locked -q -p flashcore-http --bin flashcore
fi

start_flashcore "$bin"

lt_log "running loadtests/$suite.js"
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
rm -f "$results/$suite.json" "$results/$suite.md"
# k6 runs in the background so a signal to this script is handled at once
# (bash runs traps only between foreground commands); the EXIT trap stops it.
BASE_URL="$FC_BASE" FLASHCORE_ADMIN_KEY="$LT_ADMIN_KEY" RESULTS_DIR="$results" RUN_ID="${LT_ID//_/}" \
  k6 run --quiet --no-color "loadtests/$suite.js" &
K6_PID=$!
k6_rc=0
wait "$K6_PID" || k6_rc=$?
K6_PID=""

# flashcore's own view, before it stops.
journal="$(admin_curl GET /v1/admin/journal 2>/dev/null || echo '{}')"
actors="$(admin_curl GET /v1/admin/actors 2>/dev/null || echo '{}')"
stop_flashcore
log="$LT_WORK/flashcore.log"
# Failed requests are logged once per response (and counted by k6 already);
# anything else at ERROR is flashcore's own trouble.
req_errors="$(grep '"level":"ERROR"' "$log" | grep -cE '"message":"(request|response) failed"' || true)"
log_errors="$(grep '"level":"ERROR"' "$log" | grep -cvE '"message":"(request|response) failed"' || true)"
log_warnings="$(grep -c '"level":"WARN"' "$log" || true)"

# The report: the run's set-up, k6's figures (written by handleSummary), flashcore's view.
body=""
[ -f "$results/$suite.md" ] && body="$(cat "$results/$suite.md")"
passed="$(jq -r '.report.passed // false' "$results/$suite.json" 2>/dev/null || echo false)"
settings=""
for v in DURATION RATE STOCK SKUS MAX_VUS REPLAY_P ARRIVALS VUS ADMIT_RATE START_IN P95_MS P99_MS FLASHCORE_RATE_SKU; do
  [ -n "${!v:-}" ] && settings+=" $v=${!v}"
done
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
ok=1
[ "$k6_rc" -eq 0 ] && [ "$passed" = true ] && [ "$FC_EXIT" = 0 ] || ok=0
{
  echo "# Load test: $suite"
  echo
  echo "$started, commit $commit, $(nproc) cores, $(k6 version 2>/dev/null | head -n1 | cut -d' ' -f1-2)."
  echo "flashcore (release) on Postgres (fresh database) and Redis (fresh key prefix), client and"
  echo "per-SKU rate limits off; k6 and flashcore share this machine's cores, so the figures are"
  echo "a smoke check of this machine at this moment, not a capacity figure."
  echo "Settings:${settings:- suite defaults}."
  echo
  if [ -n "$body" ]; then echo "$body"; else echo "**k6 wrote no summary** (exit code $k6_rc): see its output."; fi
  echo
  echo "flashcore:"
  echo
  echo "- journal: $(jq -c '.journal // {}' <<<"$journal" 2>/dev/null || echo '?')"
  echo "- write-behind: $(jq -c '.write_behind // {}' <<<"$journal" 2>/dev/null || echo '?')"
  echo "- actors: $(jq -c '[.supervisors[]? | {kind, active, starts, restarts, failures, rejections}]' <<<"$actors" 2>/dev/null || echo '?')"
  echo "- log: $log_errors errors and $log_warnings warnings of its own, $req_errors lines about failed requests (start-up /ready polls included)"
  echo "- SIGTERM to exit: ${FC_STOP_SECS} s, exit status $FC_EXIT"
  echo
  echo "**Outcome: $([ $ok = 1 ] && echo passed || echo FAILED)** (k6 exit $k6_rc, thresholds and post-run checks $([ "$passed" = true ] && echo passed || echo failed), flashcore exit $FC_EXIT)."
} >"$results/$suite.md.tmp"
mv "$results/$suite.md.tmp" "$results/$suite.md"

if [ "$log_errors" != 0 ]; then
  echo "flashcore logged $log_errors errors; the first ones:" >&2
  grep '"level":"ERROR"' "$log" | grep -vE '"message":"(request|response) failed"' | head -n 5 >&2
fi
lt_log "report: $results/$suite.md"
if [ $ok != 1 ]; then
  echo "load test '$suite' FAILED (k6 exit $k6_rc, report passed=$passed, flashcore exit $FC_EXIT)" >&2
  exit 1
fi
lt_log "load test '$suite' passed"
