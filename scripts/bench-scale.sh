#!/usr/bin/env bash
# The scale benchmark of issue 13 (DESIGN §7: start-up and RSS targets).
#
# For each store (STORES, default "postgres sqlite"):
#   - an empty store: start the release binary, wait for /ready, read its RSS;
#   - a seeded one (tests/examples/seed_scale.rs, through the adapters' batch
#     paths, not HTTP): SKUS products (default 100000), ORDERS orders (default
#     1000000, half of them after the SKUs' last snapshots) and CARTS cart
#     snapshots (default 1000000); then
#       start (first after seeding), SIGTERM and wait,
#       start (timed: "graceful"), kill -9,
#       start (timed: "kill -9"), SIGTERM,
#     each start timed from spawn to /ready answering 200 (polled every 20 ms),
#     with the RSS (VmRSS) after it, no traffic.
# Then RSS per active cart: a fresh flashcore on CARTS_RSS_STORE (default
# memory) with a few SKUs of big stock, RSS before and after CARTS_RSS
# (default 100000) carts with one line each, made over the HTTP API by
# tests/examples/cart_rss.rs (64 connections).
#
# Writes loadtests/results/bench-scale.md (and .json). A missed target is a
# measurement, not a failure; a real error (seeding failed, flashcore died,
# /ready not within 300 s) fails the script. SKIP_BUILD=1 uses the binaries
# already built. The throwaway databases and directories are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

SKUS="${SKUS:-100000}"
CARTS="${CARTS:-1000000}"
ORDERS="${ORDERS:-1000000}"
CARTS_RSS="${CARTS_RSS:-100000}"
CARTS_RSS_STORE="${CARTS_RSS_STORE:-memory}"
STORES="${STORES-postgres sqlite}"
RSS_SETTLE="${RSS_SETTLE:-2}"
CONNS=64
READY_CAP=300
for v in SKUS CARTS ORDERS CARTS_RSS RSS_SETTLE; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || lt_die "$v must be a whole number (got '${!v}')"
done
[ "$SKUS" -ge 1 ] || lt_die "SKUS must be at least 1"
[ "$CARTS" -ge "$ORDERS" ] || lt_die "CARTS ($CARTS) must be at least ORDERS ($ORDERS): every order comes from a cart"
for s in $STORES; do
  case "$s" in postgres | sqlite) ;; *) lt_die "STORES: expected postgres and/or sqlite (got '$s')" ;; esac
done
case "$CARTS_RSS_STORE" in memory | sqlite) ;; *) lt_die "CARTS_RSS_STORE: expected memory or sqlite" ;; esac
results=loadtests/results
mkdir -p "$results"
target="${CARGO_TARGET_DIR:-target}/release"
bin="$target/flashcore"

harness_init scale
PG_DBS=()
scale_cleanup() {
  trap '' INT TERM # a second signal must not cut the cleanup short
  if [ -n "$FC_PID" ]; then
    kill -KILL "$FC_PID" 2>/dev/null || true
    wait "$FC_PID" 2>/dev/null || true
    FC_PID=""
  fi
  local db
  for db in "${PG_DBS[@]}"; do
    lt_psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $db" >&2
  done
  [ -n "${LT_WORK:-}" ] && [ -d "$LT_WORK" ] && rm -rf "$LT_WORK"
}
trap scale_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for t in curl jq awk; do
  command -v $t >/dev/null || lt_die "$t is required"
done
case " $STORES " in
  *" postgres "*)
    command -v psql >/dev/null || lt_die "psql is required (apt-get install postgresql-client)"
    lt_psql -c 'SELECT 1' >/dev/null 2>&1 || lt_die "PostgreSQL is not reachable at $LT_PG (set FLASHCORE_LOADTEST_PG)"
    ;;
esac
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  lt_log "building the release binary and the seeding and cart examples"
  cargo build --release --locked -q -p flashcore-http --bin flashcore
  cargo build --release --locked -q -p flashcore-tests --example seed_scale --example cart_rss
fi
[ -x "$bin" ] || lt_die "$bin is not built"
for e in seed_scale cart_rss; do
  [ -x "$target/examples/$e" ] || lt_die "$target/examples/$e is not built"
done

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# The store a run starts on, as flashcore's environment: STORE_ENV and STORE_URL.
STORE_ENV=()
STORE_URL=""
store_new() { # store_new KIND NAME: a fresh, empty store
  local kind="$1" name="$2"
  local data="$LT_WORK/$name"
  mkdir -p "$data"
  case "$kind" in
    postgres)
      local db="flashcore_scale_${LT_ID}_${name//[^a-z0-9]/_}"
      lt_psql -c "CREATE DATABASE \"$db\"" >/dev/null
      PG_DBS+=("$db")
      STORE_URL="$LT_PG/$db"
      STORE_ENV=(FLASHCORE_STORE=postgres "DATABASE_URL=$STORE_URL" "FLASHCORE_DATA_DIR=$data")
      ;;
    sqlite)
      STORE_URL="sqlite://$data/flashcore.db"
      STORE_ENV=(FLASHCORE_STORE=sqlite "DATABASE_URL=$STORE_URL" "FLASHCORE_DATA_DIR=$data")
      ;;
    memory)
      STORE_URL=""
      STORE_ENV=(FLASHCORE_STORE=memory "FLASHCORE_DATA_DIR=$data")
      ;;
  esac
}
store_drop() { # store_drop KIND NAME: frees the disk of a store no longer needed
  case "$1" in
    postgres)
      local db="flashcore_scale_${LT_ID}_${2//[^a-z0-9]/_}"
      lt_psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
      ;;
    *) rm -rf "${LT_WORK:?}/$2" ;;
  esac
}

# fc_start LOG [VAR=value …]: spawns flashcore on STORE_ENV (logging to LOG, a
# new file per start) and waits for /ready.
# Sets FC_PID, FC_BASE, READY_SECS (spawn to the first 200 from /ready) and
# RSS_KIB (VmRSS after RSS_SETTLE more seconds without traffic).
fc_start() {
  local log="$1"
  shift
  local t0 addr="" deadline=$((SECONDS + READY_CAP))
  t0="$(now)"
  env -u REDIS_URL -u DATABASE_URL \
    FLASHCORE_ADDR=127.0.0.1:0 \
    FLASHCORE_DEMO=false \
    FLASHCORE_LOG_FORMAT=json \
    FLASHCORE_TOKEN_SECRET="$LT_TOKEN_SECRET" \
    RUST_LOG="${RUST_LOG:-info}" \
    "${STORE_ENV[@]}" "$@" "$bin" >"$log" 2>&1 &
  FC_PID=$!
  while :; do
    if ! kill -0 "$FC_PID" 2>/dev/null; then
      tail -n 20 "$log" >&2
      wait "$FC_PID" 2>/dev/null || true
      FC_PID=""
      lt_die "flashcore exited during start-up (log above)"
    fi
    [ $SECONDS -lt $deadline ] || lt_die "flashcore was not ready within $READY_CAP s"
    if [ -z "$addr" ]; then
      addr="$(grep -m1 '"flashcore listening"' "$log" 2>/dev/null | sed -E 's/.*"addr":"([^"]+)".*/\1/')" || true
    fi
    if [ -n "$addr" ] && curl -fs -o /dev/null --max-time 1 "http://$addr/ready"; then
      break
    fi
    sleep 0.02
  done
  READY_SECS="$(since "$t0")"
  FC_BASE="http://$addr"
  sleep "$RSS_SETTLE"
  kill -0 "$FC_PID" 2>/dev/null || lt_die "flashcore died after it was ready"
  RSS_KIB="$(rss_kib "$FC_PID")"
}

# fc_stop: SIGTERM and wait for the exit (at most READY_CAP s); a non-zero exit
# is an error. Sets STOP_SECS.
fc_stop() {
  local t0 deadline=$((SECONDS + READY_CAP)) status=0
  t0="$(now)"
  kill -TERM "$FC_PID"
  while kill -0 "$FC_PID" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || lt_die "flashcore did not stop within $READY_CAP s of SIGTERM"
    sleep 0.02
  done
  wait "$FC_PID" || status=$?
  FC_PID=""
  STOP_SECS="$(since "$t0")"
  [ "$status" = 0 ] || lt_die "flashcore exited with status $status after SIGTERM"
}

fc_kill9() {
  kill -KILL "$FC_PID"
  wait "$FC_PID" 2>/dev/null || true
  FC_PID=""
}

# The recovery time the node logged for its latest start ("serving", recovery_ms).
recovery_ms() { grep '"serving"' "$1" | tail -n1 | sed -nE 's/.*"recovery_ms":([0-9]+).*/\1/p'; }
# Seconds from spawn to "leases acquired", from the log's own timestamps: the
# wait for the previous owner's leases to lapse after kill -9 shows here.
lease_secs() { # lease_secs LOG
  awk '/"flashcore listening"/ { l = $0 } /"leases acquired; recovering"/ { a = $0 } END { print l; print a }' "$1" |
    sed -nE 's/.*"timestamp":"[^T]*T([0-9]+):([0-9]+):([0-9.]+)Z".*/\1 \2 \3/p' |
    awk 'NR == 1 { s = $1 * 3600 + $2 * 60 + $3 } NR == 2 { printf "%.2f", $1 * 3600 + $2 * 60 + $3 - s }'
}

declare -A R # results, keyed "store.field"
for kind in $STORES; do
  lt_log "$kind: empty store"
  store_new "$kind" "${kind}_empty"
  log="$LT_WORK/${kind}_empty.log"
  fc_start "$log"
  R[$kind.empty_ready]="$READY_SECS"
  R[$kind.empty_rss]="$RSS_KIB"
  fc_stop
  store_drop "$kind" "${kind}_empty"
  lt_log "$kind: empty store ready in ${READY_SECS} s, RSS $(mib "$RSS_KIB") MiB"

  lt_log "$kind: seeding $SKUS SKUs, $ORDERS orders, $CARTS carts"
  store_new "$kind" "${kind}_scale"
  seed_out="$LT_WORK/${kind}_seed.out"
  t0="$(now)"
  "$target/examples/seed_scale" "$STORE_URL" "$SKUS" "$CARTS" "$ORDERS" >"$seed_out" ||
    { cat "$seed_out" >&2; lt_die "seeding the $kind store failed"; }
  R[$kind.seed_secs]="$(since "$t0")"
  grep '^SEED ' "$seed_out" >&2
  R[$kind.seed_phases]="$(sed -nE 's/^SEED phase=([a-z_]+) items=([0-9]+) secs=([0-9.]+)$/\1 \2 \3/p' "$seed_out" | paste -sd ';')"
  case "$kind" in
    postgres) R[$kind.size]="$(lt_psql -c "SELECT pg_size_pretty(pg_database_size('flashcore_scale_${LT_ID}_${kind}_scale'))")" ;;
    sqlite) R[$kind.size]="$(du -sh "$LT_WORK/${kind}_scale" | cut -f1)" ;;
  esac

  for run in first graceful kill9; do
    lt_log "$kind: start ($run)"
    log="$LT_WORK/${kind}_scale_${run}.log"
    fc_start "$log"
    R[$kind.${run}_ready]="$READY_SECS"
    R[$kind.${run}_rss]="$RSS_KIB"
    R[$kind.${run}_recovery_ms]="$(recovery_ms "$log")"
    R[$kind.${run}_lease_secs]="$(lease_secs "$log")"
    lt_log "$kind: ready ($run) in ${READY_SECS} s (leases after ${R[$kind.${run}_lease_secs]:-?} s, recovery ${R[$kind.${run}_recovery_ms]:-?} ms), RSS $(mib "$RSS_KIB") MiB"
    case "$run" in
      first | kill9)
        fc_stop
        R[$kind.${run}_stop_secs]="$STOP_SECS"
        lt_log "$kind: stopped gracefully in ${STOP_SECS} s"
        ;;
      graceful) fc_kill9 ;;
    esac
  done
  store_drop "$kind" "${kind}_scale"
done

# --- RSS per active cart ---------------------------------------------------------
lt_log "$CARTS_RSS_STORE: RSS per active cart, $CARTS_RSS carts with one line over HTTP"
store_new "$CARTS_RSS_STORE" carts
log="$LT_WORK/carts.log"
fc_start "$log" FLASHCORE_ADMIN_KEY="$LT_ADMIN_KEY" FLASHCORE_RATE_CLIENT=off FLASHCORE_RATE_SKU=off \
  FLASHCORE_CART_IDLE_SECS=86400 FLASHCORE_HOLD_TTL_MS=86400000
cart_skus=()
for i in 1 2 3 4 5 6 7 8; do
  admin_curl PUT "/v1/admin/products/CART-RSS-$i" \
    "{\"title\":\"Cart RSS $i\",\"price\":{\"amount\":100,\"currency\":\"EUR\"},\"total\":1000000000}" >/dev/null
  cart_skus+=("CART-RSS-$i")
done
sleep "$RSS_SETTLE"
carts_before="$(rss_kib "$FC_PID")"
carts_out="$LT_WORK/carts.out"
"$target/examples/cart_rss" "$FC_BASE" "$CARTS_RSS" "$CONNS" "$(
  IFS=,
  echo "${cart_skus[*]}"
)" >"$carts_out" || { cat "$carts_out" >&2; lt_die "creating the carts failed"; }
sleep "$RSS_SETTLE"
kill -0 "$FC_PID" 2>/dev/null || lt_die "flashcore died while the carts were made"
carts_after="$(rss_kib "$FC_PID")"
carts_line="$(grep '^CARTS ' "$carts_out")"
carts_secs="$(sed -nE 's/.* secs=([0-9.]+).*/\1/p' <<<"$carts_line")"
actors="$(admin_curl GET /v1/admin/actors | jq -c '.supervisors | map({kind, active})' 2>/dev/null || echo '?')"
fc_stop
per_cart="$(awk -v a="$carts_after" -v b="$carts_before" -v n="$CARTS_RSS" 'BEGIN { if (n == 0) print "n/a"; else printf "%.0f", (a - b) * 1024 / n }')"
lt_log "RSS $(mib "$carts_before") → $(mib "$carts_after") MiB for $CARTS_RSS carts in $carts_secs s: $per_cart B per cart"

# --- report ------------------------------------------------------------------------
per_sku() { # per_sku KIND: (RSS at the graceful start − RSS of the empty store) / SKUS, bytes
  awk -v a="${R[$1.graceful_rss]}" -v b="${R[$1.empty_rss]}" -v n="$SKUS" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'
}
le() { awk -v v="$1" -v t="$2" 'BEGIN { print (v != "n/a" && v + 0 <= t + 0) ? "met" : "missed" }'; }
verdicts=()
rows=""
json_stores="[]"
for kind in $STORES; do
  R[$kind.per_sku]="$(per_sku "$kind")"
  rows+="| $kind | $SKUS | $CARTS | $ORDERS | ${R[$kind.first_ready]} | ${R[$kind.graceful_ready]} | ${R[$kind.kill9_ready]} | $(mib "${R[$kind.first_rss]}") / $(mib "${R[$kind.graceful_rss]}") / $(mib "${R[$kind.kill9_rss]}") | $(mib "${R[$kind.empty_rss]}") | ${R[$kind.per_sku]} | |"$'\n'
  for run in graceful kill9; do
    v="$(le "${R[$kind.${run}_ready]}" 5)"
    verdicts+=("$kind start-up after ${run/kill9/kill -9} ≤ 5 s: **$v** (${R[$kind.${run}_ready]} s)")
  done
  verdicts+=("$kind RSS per cold SKU ≤ 1024 B: **$(le "${R[$kind.per_sku]}" 1024)** (${R[$kind.per_sku]} B)")
  max_rss="$(printf '%s\n' "${R[$kind.first_rss]}" "${R[$kind.graceful_rss]}" "${R[$kind.kill9_rss]}" | sort -n | tail -n1)"
  verdicts+=("$kind RSS after start-up ≤ 250 MiB with $SKUS SKUs: **$(le "$(mib "$max_rss")" 250)** (highest of the three starts $(mib "$max_rss") MiB)")
  json_stores="$(jq -c \
    --arg store "$kind" \
    --argjson first "${R[$kind.first_ready]}" --argjson graceful "${R[$kind.graceful_ready]}" --argjson kill9 "${R[$kind.kill9_ready]}" \
    --argjson rss_first "${R[$kind.first_rss]}" --argjson rss_graceful "${R[$kind.graceful_rss]}" --argjson rss_kill9 "${R[$kind.kill9_rss]}" \
    --argjson rss_empty "${R[$kind.empty_rss]}" --argjson empty_ready "${R[$kind.empty_ready]}" \
    --argjson per_sku "${R[$kind.per_sku]}" --argjson seed_secs "${R[$kind.seed_secs]}" \
    --arg phases "${R[$kind.seed_phases]}" --arg size "${R[$kind.size]}" \
    --arg rec "${R[$kind.first_recovery_ms]:-} ${R[$kind.graceful_recovery_ms]:-} ${R[$kind.kill9_recovery_ms]:-}" \
    --arg lease "${R[$kind.first_lease_secs]:-} ${R[$kind.graceful_lease_secs]:-} ${R[$kind.kill9_lease_secs]:-}" \
    '. + [{store: $store, startup_s: {first: $first, graceful: $graceful, kill9: $kill9, empty: $empty_ready},
           rss_kib: {first: $rss_first, graceful: $rss_graceful, kill9: $rss_kill9, empty: $rss_empty},
           rss_per_cold_sku_bytes: $per_sku, seed_s: $seed_secs, store_size: $size,
           recovery_ms: ($rec | split(" ") | map(select(. != "") | tonumber)),
           leases_after_s: ($lease | split(" ") | map(select(. != "") | tonumber)),
           seed_phases: ($phases | split(";") | map(split(" ") | {phase: .[0], items: (.[1] | tonumber), secs: (.[2] | tonumber)}))}]' \
    <<<"$json_stores")"
done
rows+="| $CARTS_RSS_STORE (carts over HTTP) | 8 | $CARTS_RSS | 0 | | | | $(mib "$carts_before") → $(mib "$carts_after") | | | $per_cart |"$'\n'
verdicts+=("RSS per active cart with one line ≤ 2048 B: **$(le "$per_cart" 2048)** ($per_cart B)")

details=""
for kind in $STORES; do
  details+="- **$kind**: seeded in ${R[$kind.seed_secs]} s ($(tr ';' '\n' <<<"${R[$kind.seed_phases]}" | awk '{ printf "%s%s %s s", (NR > 1 ? ", " : ""), $1, $3 }')); store size ${R[$kind.size]}. "
  details+="Empty store: ready in ${R[$kind.empty_ready]} s. "
  details+="Leases taken after first / graceful / kill -9: ${R[$kind.first_lease_secs]:-?} / ${R[$kind.graceful_lease_secs]:-?} / ${R[$kind.kill9_lease_secs]:-?} s from spawn; "
  details+="recovery (logged \`recovery_ms\`) ${R[$kind.first_recovery_ms]:-?} / ${R[$kind.graceful_recovery_ms]:-?} / ${R[$kind.kill9_recovery_ms]:-?} ms; "
  details+="graceful stops took ${R[$kind.first_stop_secs]} s (after the first start) and ${R[$kind.kill9_stop_secs]} s."$'\n'
done
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit+=" (with uncommitted changes)"

cat >"$results/bench-scale.md" <<EOF
# Scale benchmark (issue 13), one run

$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, $(nproc) cores, release \`flashcore\`. Start-up is timed from
spawn to the first 200 from \`/ready\` (polled every 20 ms); RSS is VmRSS ${RSS_SETTLE} s after it, no traffic.
Stores seeded by \`tests/examples/seed_scale.rs\` through the adapters' batch paths: $SKUS SKUs (a total
each), $ORDERS orders of one line (half of them after the SKUs' snapshots), $CARTS cart snapshots
($ORDERS of them the orders' checked-out carts). Each seeded store is started three times: first after
seeding, then after a graceful stop (SIGTERM), then after \`kill -9\`.

| store | SKUs | carts | orders | start-up first (s) | graceful (s) | kill -9 (s) | RSS after start, first / graceful / kill -9 (MiB) | RSS, empty store (MiB) | RSS per cold SKU (B) | RSS per cart (B) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows}| **target** | 100000 | 1000000 | 1000000 | | ≤ 5 | ≤ 5 | ≤ 250 | | ≤ 1024 | ≤ 2048 |

Targets (DESIGN §7):

$(printf -- '- %s\n' "${verdicts[@]}")

Details:

${details}- RSS per cold SKU = (RSS at the graceful start − RSS of an empty store's start) / $SKUS.
- RSS per cart: a fresh flashcore on the $CARTS_RSS_STORE store with 8 SKUs of 10⁹ units; $CARTS_RSS carts
  created and given one line each over HTTP ($CONNS connections, \`tests/examples/cart_rss.rs\`, $carts_secs s),
  RSS $carts_before → $carts_after KiB; (after − before) / $CARTS_RSS. Rate limits off, carts never passivated
  (\`FLASHCORE_CART_IDLE_SECS=86400\`). Actors afterwards: $actors.$([ "$CARTS_RSS_STORE" = memory ] && printf '\n  The memory store keeps the write-behind snapshots (every cart'"'"'s and the SKUs'"'"') in the process too, so\n  this counts them as well.')
EOF

jq -n \
  --argjson skus "$SKUS" --argjson carts "$CARTS" --argjson orders "$ORDERS" \
  --argjson stores "$json_stores" \
  --arg carts_store "$CARTS_RSS_STORE" --argjson carts_rss "$CARTS_RSS" \
  --argjson before "$carts_before" --argjson after "$carts_after" --arg per_cart "$per_cart" \
  --argjson carts_secs "${carts_secs:-0}" \
  '{shape: {skus: $skus, carts: $carts, orders: $orders}, stores: $stores,
    rss_per_cart: {store: $carts_store, carts: $carts_rss, rss_before_kib: $before, rss_after_kib: $after,
                   bytes_per_cart: ($per_cart | tonumber? // null), secs: $carts_secs},
    targets: {startup_s: 5, rss_per_cold_sku_bytes: 1024, rss_per_cart_bytes: 2048, rss_after_start_mib: 250}}' \
  >"$results/bench-scale.json"

cat "$results/bench-scale.md"
