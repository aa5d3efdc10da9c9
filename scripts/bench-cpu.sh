#!/usr/bin/env bash
# Where a hot-SKU reserve's share of the two cores goes, next to the axum
# hello-world's: CPU time per request of the server and of wrk (user + system,
# from /proc, kernel networking included, which callgrind does not count), and
# the server's involuntary context switches per request. The side-by-side's
# ratio follows from these: with both processes on the same 2 cores,
# requests/s ≈ 2 s / (server µs + wrk µs) per request.
#
#   scripts/bench-cpu.sh            (DURATION=10 seconds each, SKIP_BUILD=1 to reuse the build)
#
# Runs (a) and (d) of scripts/sidebyside.sh one after the other (wrk -t2 -c64;
# for (d) 256 carts take turns reserving and releasing one SKU, flashcore on
# Postgres and Redis) and prints one line each.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

DURATION="${DURATION:-10}"
target="${CARGO_TARGET_DIR:-target}/release"
ensure_wrk
require_services
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked -q -p flashcore-http --bin flashcore --example hello
fi
harness_init benchcpu
HELLO_PID=""
cleanup() {
  [ -z "$HELLO_PID" ] || kill -TERM "$HELLO_PID" 2>/dev/null || true
  harness_cleanup
}
trap cleanup EXIT

tck="$(getconf CLK_TCK)"
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# Involuntary context switches summed over a process's threads.
preempted() { cat /proc/"$1"/task/*/status | awk '/^nonvoluntary_ctxt_switches/ { n += $2 } END { print n + 0 }'; }

# measure NAME PID WRK_ARGS...: runs wrk against the server PID, prints the figures.
measure() {
  local name="$1" pid="$2"
  shift 2
  local s0 p0 w0="" w1="" s1 p1
  s0="$(ticks "$pid")"
  p0="$(preempted "$pid")"
  wrk -t2 -c64 -d"${DURATION}s" "$@" >"$LT_WORK/$name.wrk" &
  local wrk_pid=$!
  # wrk's own time, sampled until it exits (its /proc entry goes with it).
  while kill -0 "$wrk_pid" 2>/dev/null; do
    w1="$(ticks "$wrk_pid" 2>/dev/null || echo "$w1")"
    [ -n "$w0" ] || w0="$w1"
    sleep 0.2
  done
  wait "$wrk_pid"
  s1="$(ticks "$pid")"
  p1="$(preempted "$pid")"
  local reqs rps bad
  reqs="$(awk '/requests in/ { print $1 }' "$LT_WORK/$name.wrk")"
  rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$LT_WORK/$name.wrk")"
  bad="$(awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$LT_WORK/$name.wrk")"
  [ "${reqs:-0}" -gt 0 ] && [ "$bad" = 0 ] || lt_die "$name: ${reqs:-0} requests, $bad failed"
  awk -v name="$name" -v rps="$rps" -v r="$reqs" -v t="$tck" -v s="$((s1 - s0))" -v w="$((w1 - w0))" \
    -v p="$((p1 - p0))" 'BEGIN {
      printf "%-8s %7d req/s   server %5.1f µs/request   wrk %4.1f µs/request   server preempted %.2f times/request\n",
        name, rps, s / t * 1e6 / r, w / t * 1e6 / r, p / r }'
}

HELLO_ADDR=127.0.0.1:0 "$target/examples/hello" >"$LT_WORK/hello.log" 2>&1 &
HELLO_PID=$!
for _ in $(seq 50); do grep -q '^listening on ' "$LT_WORK/hello.log" 2>/dev/null && break; sleep 0.1; done
hello_url="http://$(sed -n 's/^listening on //p' "$LT_WORK/hello.log")/"
measure hello "$HELLO_PID" "$hello_url"
kill -TERM "$HELLO_PID"
wait "$HELLO_PID" 2>/dev/null || true
HELLO_PID=""

start_flashcore "$target/flashcore" FLASHCORE_DEMO=false
reserve_fixture CPU-HOT "$LT_WORK/carts.txt"
lua=loadtests/sidebyside/reserve.lua
# Warm up (every cart active, the SKU's holds at their usual count), then measure.
wrk -t2 -c64 -d2s -s "$lua" "$FC_BASE" -- "$LT_WORK/carts.txt" CPU-HOT 2 >/dev/null
measure reserve "$FC_PID" -s "$lua" "$FC_BASE" -- "$LT_WORK/carts.txt" CPU-HOT 2
stop_flashcore
