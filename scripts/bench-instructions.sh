#!/usr/bin/env bash
# Instructions per hot-SKU reserve request, counted by callgrind: a figure
# that does not move with the machine's load (wrk's requests per second on
# this shared VM move by ±20 % between runs), for comparing two builds of the
# request path.
#
#   scripts/bench-instructions.sh [BIN]      (default target/release/flashcore)
#
# The release flashcore runs under `valgrind --tool=callgrind` on Postgres and
# Redis (as in scripts/sidebyside.sh (d)); 256 carts take turns reserving and
# releasing one SKU for DURATION seconds (default 10) with instrumentation on
# only then. Write-behind runs every 2 s instead of 50 ms, so its share per
# request stays near the full-speed one (valgrind runs ~50x slower).
# Prints requests, instructions, instructions per request and the top
# inclusive costs per request; the profile is left in $OUT (callgrind_annotate it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

BIN="$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/flashcore}")"
DURATION="${DURATION:-10}"
OUT="${OUT:-loadtests/results/callgrind.out}"
command -v valgrind >/dev/null || lt_die "valgrind is required (apt-get install valgrind)"
ensure_wrk
require_services
mkdir -p "$(dirname "$OUT")"
OUT="$(realpath "$(dirname "$OUT")")/$(basename "$OUT")"
rm -f "$OUT" "$OUT".*

harness_init instructions
trap harness_cleanup EXIT
cat >"$LT_WORK/under-valgrind.sh" <<EOS
#!/bin/sh
exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" --dump-instr=no "$BIN"
EOS
chmod +x "$LT_WORK/under-valgrind.sh"
start_flashcore "$LT_WORK/under-valgrind.sh" FLASHCORE_DEMO=false FLASHCORE_FLUSH_INTERVAL_MS=2000
reserve_fixture BENCH "$LT_WORK/carts.txt"
lua=loadtests/sidebyside/reserve.lua
# Warm up (every cart active, the SKU's holds at their usual count), then count.
wrk -t1 -c16 -d3s -s "$lua" "$FC_BASE" -- "$LT_WORK/carts.txt" BENCH 1 >/dev/null
callgrind_control -i on "$FC_PID" >/dev/null
wrk -t1 -c16 -d"${DURATION}s" -s "$lua" "$FC_BASE" -- "$LT_WORK/carts.txt" BENCH 1 >"$LT_WORK/wrk.out"
callgrind_control -i off "$FC_PID" >/dev/null
callgrind_control -d "$FC_PID" >/dev/null
stop_flashcore || true
reqs="$(awk '/requests in/ { print $1 }' "$LT_WORK/wrk.out")"
non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$LT_WORK/wrk.out")"
[ -z "$non2xx" ] || lt_die "$non2xx requests failed: $(cat "$LT_WORK/wrk.out")"
profile="$(ls -S "$OUT"* | head -n1)"
callgrind_annotate --inclusive=yes --auto=no "$profile" >"$LT_WORK/inclusive.txt" 2>/dev/null
total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$LT_WORK/inclusive.txt")"
[ "${reqs:-0}" -gt 0 ] && [ "${total:-0}" -gt 0 ] || lt_die "no requests or no instructions counted"
echo "requests=$reqs instructions=$total per_request=$((total / reqs)) (profile: $profile)"
echo "inclusive instructions per request, top frames of flashcore's own code and the edge:"
grep -E 'flashcore_|ractor::actor::ActorRuntime' "$LT_WORK/inclusive.txt" |
  sed -E 's/\( *[0-9.]+%\) +//' |
  awk -v n="$reqs" '{ gsub(",", "", $1); v = $1 / n; if (v >= 500) printf "%8d %s\n", v, substr($0, index($0, $2), 140) }' |
  sed -E 's#/root/.cargo/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/library/##' | head -n 25
