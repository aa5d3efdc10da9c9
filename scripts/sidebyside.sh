#!/usr/bin/env bash
# The side-by-side of DESIGN §7, in one run on this machine, one after another,
# each for DURATION seconds (default 10):
#
#   (a) axum hello-world ceiling      http/examples/hello.rs, wrk -t2 -c64
#   (b) Postgres hot row              pgbench -c64: UPDATE stock … available >= 1 + INSERT order, one transaction
#   (c) Redis Lua check-and-decrement redis-benchmark -c64 EVAL on one key
#   (d) flashcore hot-SKU reserve     wrk -t2 -c64, PUT quantity 1 / 0 on pre-created carts, one SKU
#   (e) flashcore durable checkout    wrk -t2 -c64, chained create cart + add + checkout (Postgres journal)
#   (f) flashcore checkout only       tests/examples/checkout_load.rs: carts created and filled before the
#                                     clock starts, then 64 concurrent checkouts (like for like with (b))
#
# and writes loadtests/results/sidebyside.md (and .json) with each figure, its
# ratio to flashcore's, and the §7 targets as met or missed by how much.
# The throwaway database, Redis keys and processes are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || [ "$DURATION" -lt 1 ]; then
  lt_die "DURATION must be whole seconds (got '$DURATION')"
fi
CONNS=64
THREADS=2
results=loadtests/results
mkdir -p "$results"
target="${CARGO_TARGET_DIR:-target}/release"
dir=loadtests/sidebyside

harness_init sidebyside
PG_DB="flashcore_sbs_pg_${LT_ID}"
PG_CREATED=0
HELLO_PID=""
REDIS_KEY="${LT_PREFIX}hot"
sbs_cleanup() {
  if [ -n "$HELLO_PID" ]; then
    kill -TERM "$HELLO_PID" 2>/dev/null || true
    wait "$HELLO_PID" 2>/dev/null || true
  fi
  [ "$PG_CREATED" = 1 ] && { lt_psql -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 || true; }
  redis-cli -u "$LT_REDIS" DEL "$REDIS_KEY" >/dev/null 2>&1 || true
  harness_cleanup
}
trap sbs_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_wrk
for t in pgbench redis-benchmark curl jq awk; do
  command -v $t >/dev/null || lt_die "$t is required"
done
require_services
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  lt_log "building the release binary and the hello-world example"
  cargo build --release --locked -q -p flashcore-http --bin flashcore --example hello
  cargo build --release --locked -q -p flashcore-tests --example checkout_load
fi

# Parsing helpers. wrk prints latencies as 812.00us / 1.23ms / 1.02s.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }
wrk_rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$1"; }
wrk_p99_ms() { to_ms "$(awk '$1 == "99%" { print $2 }' "$1")"; }
wrk_non2xx() { awk '/Non-2xx or 3xx responses:/ { n = $NF } END { print n + 0 }' "$1"; }
wrk_sockerr() { awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }' "$1"; }
kv() { sed -n "s/.*[ ]$2=\([^ ]*\).*/\1/p" "$1" | head -n1; }
div() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%." d "f", a / b }'; }
wait_line() { # wait_line FILE REGEX: polls (30 s) until FILE has a line matching REGEX
  local deadline=$((SECONDS + 30))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || lt_die "no '$2' in $1 within 30 s"
    sleep 0.1
  done
}

# --- (a) axum hello-world ceiling -------------------------------------------
lt_log "(a) axum hello-world, wrk -t$THREADS -c$CONNS, ${DURATION}s"
HELLO_ADDR=127.0.0.1:0 "$target/examples/hello" >"$LT_WORK/hello.log" 2>&1 &
HELLO_PID=$!
wait_line "$LT_WORK/hello.log" '^listening on '
hello_url="http://$(sed -n 's/^listening on //p' "$LT_WORK/hello.log")/"
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "$hello_url" >"$LT_WORK/hello.wrk"
kill -TERM "$HELLO_PID"
wait "$HELLO_PID" 2>/dev/null || true
HELLO_PID=""
hello_rps="$(wrk_rps "$LT_WORK/hello.wrk")"
hello_p99="$(wrk_p99_ms "$LT_WORK/hello.wrk")"

# --- (b) Postgres hot row ---------------------------------------------------
lt_log "(b) Postgres hot-row UPDATE + INSERT, pgbench -c$CONNS, ${DURATION}s"
lt_psql -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
PG_CREATED=1
psql "$LT_PG/$PG_DB" -v ON_ERROR_STOP=1 -q -f "$dir/pg_setup.sql"
mkdir -p "$LT_WORK/pgbench"
pgbench -n -f "$dir/pg_hot_row.sql" -c "$CONNS" -j "$THREADS" -T "$DURATION" \
  -l --log-prefix="$LT_WORK/pgbench/tx" "$LT_PG/$PG_DB" >"$LT_WORK/pgbench.out" 2>&1 ||
  { cat "$LT_WORK/pgbench.out" >&2; lt_die "pgbench failed"; }
pg_tps="$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$LT_WORK/pgbench.out" | head -n1 | awk '{ printf "%.0f", $1 }')"
pg_failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$LT_WORK/pgbench.out")"
# Per-transaction log: field 3 is the latency in microseconds.
pg_p99="$(cat "$LT_WORK"/pgbench/tx* | awk '{ print $3 }' | sort -n | awk '{ a[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.2f", a[i] / 1000 }')"
lt_psql -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null
PG_CREATED=0

# --- (c) Redis Lua check-and-decrement --------------------------------------
lt_log "(c) Redis Lua check-and-decrement, redis-benchmark -c$CONNS, ~${DURATION}s"
lua="$(tr '\n' ' ' <"$dir/redis_check_decr.lua")"
redis-cli -u "$LT_REDIS" SET "$REDIS_KEY" 1000000000000 >/dev/null
# redis-benchmark runs a request count, not a duration: calibrate, then size the run.
cal="$(redis-benchmark -u "$LT_REDIS" -c "$CONNS" -n 20000 --csv EVAL "$lua" 1 "$REDIS_KEY" | tail -n1)"
# CSV: "test","rps",…,"p99_latency_ms","max_latency_ms"; the test name holds commas, so count from the end.
csv_field() { awk -F, -v back="$1" '{ gsub(/"/, ""); printf "%s", $(NF - back) }'; }
cal_rps="$(csv_field 6 <<<"$cal" | awk '{ printf "%.0f", $1 }')"
n=$((cal_rps * DURATION))
[ "$n" -ge 20000 ] || n=20000
timeout $((DURATION * 5 + 10)) redis-benchmark -u "$LT_REDIS" -c "$CONNS" -n "$n" --csv EVAL "$lua" 1 "$REDIS_KEY" >"$LT_WORK/redis.csv"
redis_rps="$(tail -n1 "$LT_WORK/redis.csv" | csv_field 6 | awk '{ printf "%.0f", $1 }')"
redis_p99="$(tail -n1 "$LT_WORK/redis.csv" | csv_field 1)"
redis_left="$(redis-cli -u "$LT_REDIS" GET "$REDIS_KEY")"
redis-cli -u "$LT_REDIS" DEL "$REDIS_KEY" >/dev/null

# --- flashcore ---------------------------------------------------------------
start_flashcore "$target/flashcore" FLASHCORE_DEMO=false
product() { # product SKU: a product with (practically) endless stock
  admin_curl PUT "/v1/admin/products/$1" \
    "{\"title\":\"Side-by-side $1\",\"price\":{\"amount\":100,\"currency\":\"EUR\"},\"total\":1000000000}" >/dev/null
}

# --- (d) hot-SKU reserve over HTTP --------------------------------------------
lt_log "(d) flashcore hot-SKU reserve/release, wrk -t$THREADS -c$CONNS, ${DURATION}s"
# 256 carts: 128 per wrk thread, twice its connections.
reserve_fixture SBS-RESERVE "$LT_WORK/carts.txt"
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$dir/reserve.lua" "$FC_BASE" \
  -- "$LT_WORK/carts.txt" SBS-RESERVE "$THREADS" >"$LT_WORK/reserve.wrk"
reserve_rps="$(wrk_rps "$LT_WORK/reserve.wrk")"
reserve_p99="$(wrk_p99_ms "$LT_WORK/reserve.wrk")"
reserve_bad="$(($(wrk_non2xx "$LT_WORK/reserve.wrk") + $(wrk_sockerr "$LT_WORK/reserve.wrk")))"

# --- (e) durable checkout -----------------------------------------------------
lt_log "(e) flashcore durable checkout (create + add + checkout), wrk -t$THREADS -c$CONNS, ${DURATION}s"
product SBS-CHECKOUT
journal_before="$(admin_curl GET /v1/admin/journal)"
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$dir/checkout.lua" "$FC_BASE" \
  -- SBS-CHECKOUT >"$LT_WORK/checkout.wrk"
f="$LT_WORK/checkout.wrk"
grep -q '^SIDEBYSIDE checkout' "$f" || { cat "$f" >&2; lt_die "the checkout run printed no result"; }
co_orders="$(kv "$f" orders)"
co_secs="$(awk -v us="$(kv "$f" duration_us)" 'BEGIN { printf "%.3f", us / 1e6 }')"
co_rps="$(awk -v n="$co_orders" -v s="$co_secs" 'BEGIN { printf "%.0f", n / s }')"
co_p50="$(awk -v us="$(kv "$f" checkout_p50_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
co_p99="$(awk -v us="$(kv "$f" checkout_p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
co_all_p99="$(awk -v us="$(kv "$f" all_p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
co_req_rps="$(wrk_rps "$f")"
co_failures="$(kv "$f" failures)"
co_statuses="$(kv "$f" statuses)"
co_sockerr="$(wrk_sockerr "$f")"
journal_after="$(admin_curl GET /v1/admin/journal)"
sold_or_held="$(admin_curl GET /v1/products/SBS-CHECKOUT | jq '.total - .available')"
batches=$(($(jq .journal.batches <<<"$journal_after") - $(jq .journal.batches <<<"$journal_before")))
entries=$(($(jq .journal.entries <<<"$journal_after") - $(jq .journal.entries <<<"$journal_before")))

# --- (f) durable checkout only ------------------------------------------------
# Sized to last about DURATION seconds at ~8k checkouts/s (CHECKOUT_CARTS overrides).
co_carts="${CHECKOUT_CARTS:-$((DURATION * 8000))}"
lt_log "(f) flashcore durable checkout only: $co_carts carts filled first, then $CONNS concurrent checkouts"
product SBS-CHECKOUT-ONLY
g="$LT_WORK/checkout_only.out"
"$target/examples/checkout_load" "$FC_BASE" SBS-CHECKOUT-ONLY "$co_carts" "$CONNS" >"$g"
grep -q '^SIDEBYSIDE checkout_only' "$g" || { cat "$g" >&2; lt_die "the checkout-only run printed no result"; }
only_orders="$(kv "$g" orders)"
only_failures="$(kv "$g" failures)"
only_secs="$(awk -v us="$(kv "$g" duration_us)" 'BEGIN { printf "%.3f", us / 1e6 }')"
only_rps="$(awk -v n="$only_orders" -v s="$only_secs" 'BEGIN { printf "%.0f", n / s }')"
only_p50="$(awk -v us="$(kv "$g" p50_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
only_p99="$(awk -v us="$(kv "$g" p99_us)" 'BEGIN { printf "%.2f", us / 1000 }')"
only_sold="$(admin_curl GET /v1/products/SBS-CHECKOUT-ONLY | jq '.total - .available')"
stop_flashcore

# --- report -------------------------------------------------------------------
r_hello="$(div "$reserve_rps" "$hello_rps")"
r_redis="$(div "$reserve_rps" "$redis_rps")"
r_pg="$(div "$only_rps" "$pg_tps" 1)"
r_pg_chain="$(div "$co_rps" "$pg_tps" 1)"
verdict_ratio() { # verdict_ratio RATIO TARGET WHAT_PER_SECOND_OF_REFERENCE
  awk -v r="$1" -v t="$2" -v ref="$3" 'BEGIN {
    if (r == "n/a") { print "n/a"; exit }
    if (r + 0 >= t + 0) printf "**met** (%.2f× against ≥ %.2f×)", r, t
    else printf "**missed** by %.0f %% (%.2f× against ≥ %.2f×: needs %.0f/s more)", (1 - r / t) * 100, r, t, (t - r) * ref }'
}
v_reserve="$(verdict_ratio "$r_hello" 0.6 "$hello_rps")"
v_durable="$(verdict_ratio "$r_pg" 10 "$pg_tps")"
v_p99="$(awk -v p="$only_p99" 'BEGIN { if (p + 0 <= 50) printf "**met** (%.2f ms against ≤ 50 ms)", p; else printf "**missed** by %.2f ms (%.2f ms against ≤ 50 ms)", p - 50, p }')"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"
mean_batch="$(div "$entries" "$batches" 1)"

cat >"$results/sidebyside.md" <<EOF
# Side-by-side, one run

$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, $(nproc) cores, ${DURATION} s per figure, one after
another on this machine (the load generator shares the cores with the server; others
may be using the machine too, so compare the rows of one run, not runs). $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2),
$(pgbench --version), $(redis-benchmark --version | cut -d' ' -f1-2).

| | what | figure | p99 | flashcore ÷ this |
|---|---|---:|---:|---:|
| (a) | axum hello-world ceiling (\`http/examples/hello.rs\`), wrk $CONNS connections, $THREADS threads | $hello_rps req/s | $hello_p99 ms | reserve: ${r_hello}× |
| (b) | Postgres hot row: \`UPDATE stock … WHERE sku = 'hot' AND available >= 1\` + order \`INSERT\`, one transaction, pgbench $CONNS clients | $pg_tps tx/s | $pg_p99 ms | checkout only: ${r_pg}×; whole chain: ${r_pg_chain}× |
| (c) | Redis Lua check-and-decrement on one key, redis-benchmark $CONNS clients | $redis_rps ops/s | $redis_p99 ms | reserve: ${r_redis}× |
| (d) | **flashcore** hot-SKU reserve/release over HTTP (\`PUT …/items/{sku}\` quantity 1 then 0, 256 carts, one SKU), wrk $CONNS connections | **$reserve_rps req/s** | $reserve_p99 ms | 1 |
| (e) | **flashcore** durable checkout on one hot SKU (Postgres journal, group commit): a fresh cart per checkout (create + add + checkout chained in wrk), wrk $CONNS connections | **$co_rps checkouts/s** | $co_p99 ms (checkout request) | 1 |
| (f) | **flashcore** durable checkout only, like (b): $co_carts carts created and filled before the clock starts, then $CONNS concurrent checkouts (\`tests/examples/checkout_load.rs\`) | **$only_rps checkouts/s** | $only_p99 ms | 1 |

DESIGN §7 targets:

- hot-SKU reserve over HTTP ≥ 0.6× the hello-world ceiling: $v_reserve
- durable hot-SKU checkouts ≥ 10× the Postgres hot-row figure (checkout only, (f) against (b)): $v_durable
- durable checkout p99 ≤ 50 ms: $v_p99

Details:

- (b) pgbench: $pg_failed failed transactions; p99 from pgbench's per-transaction log.
- (c) redis-benchmark ran $n requests (sized from a 20k-request calibration to last about ${DURATION} s); the key ended at $redis_left.
- (d) $reserve_bad non-2xx answers or socket errors.
- (e) $co_orders orders in $co_secs s, $(kv "$f" carts) carts created, $(kv "$f" holds) holds; $co_failures failed steps (statuses: $co_statuses), $co_sockerr socket errors; all three steps together $co_req_rps req/s, their p99 $co_all_p99 ms; checkout p50 $co_p50 ms. The checkout latency is timed in the wrk script from sending the checkout to its answer. Journal: $entries entries in $batches batches (mean $mean_batch per batch); $sold_or_held units of the SKU sold or held afterwards (≥ orders, the difference being chains cut off by the end of the run).
- (f) $only_orders orders in $only_secs s, $only_failures failed; checkout p50 $only_p50 ms, p99 $only_p99 ms; $only_sold units of the SKU sold or held afterwards.
- flashcore stopped on SIGTERM in ${FC_STOP_SECS} s with exit status $FC_EXIT.
EOF

jq -n \
  --argjson duration "$DURATION" \
  --argjson hello_rps "${hello_rps:-0}" --argjson hello_p99_ms "${hello_p99:-0}" \
  --argjson pg_tps "${pg_tps:-0}" --argjson pg_p99_ms "${pg_p99:-0}" \
  --argjson redis_ops "${redis_rps:-0}" --argjson redis_p99_ms "${redis_p99:-0}" \
  --argjson reserve_rps "${reserve_rps:-0}" --argjson reserve_p99_ms "${reserve_p99:-0}" \
  --argjson checkouts_per_s "${co_rps:-0}" --argjson checkout_p99_ms "${co_p99:-0}" \
  --argjson only_per_s "${only_rps:-0}" --argjson only_p99_ms "${only_p99:-0}" \
  --arg reserve_vs_hello "$r_hello" --arg checkout_vs_pg "$r_pg" --arg reserve_vs_redis "$r_redis" \
  '{duration_s: $duration, hello: {rps: $hello_rps, p99_ms: $hello_p99_ms},
    postgres_hot_row: {tps: $pg_tps, p99_ms: $pg_p99_ms}, redis_lua: {ops: $redis_ops, p99_ms: $redis_p99_ms},
    flashcore_reserve: {rps: $reserve_rps, p99_ms: $reserve_p99_ms},
    flashcore_durable_checkout: {per_s: $checkouts_per_s, p99_ms: $checkout_p99_ms},
    flashcore_checkout_only: {per_s: $only_per_s, p99_ms: $only_p99_ms},
    ratios: {reserve_vs_hello: $reserve_vs_hello, checkout_vs_pg: $checkout_vs_pg, reserve_vs_redis: $reserve_vs_redis}}' \
  >"$results/sidebyside.json"

cat "$results/sidebyside.md"
[ "$FC_EXIT" = 0 ] || lt_die "flashcore exited with status $FC_EXIT"
