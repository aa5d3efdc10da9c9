#!/usr/bin/env bash
# Cluster mode on this machine (DESIGN §9): several release `flashcore` nodes
# on one Postgres database sharing FLASHCORE_SHARDS shards, any node answering
# any request (work on another node's shard is forwarded over the node port).
#
#   1. The black-friday mix (loadtests/cluster.js: 60 % browse, 30 % cart
#      abandoned, 10 % checkout over SKUS skewed SKUs of STOCK units) at RATE
#      shoppers/s for DURATION seconds, against 1 node, then against NODES
#      nodes (k6's virtual users spread over their public URLs), each on a
#      fresh database. Throughput, latency, errors, orders acknowledged; then
#      the journal itself is checked (units sold per SKU in order_lines and in
#      the sold stock facts against the SKU's total, acknowledged orders <=
#      journaled orders).
#   2. Hot-SKU reserve/release on the NODES-node cluster, wrk -t2 -c64 for
#      RESERVE_DURATION seconds with loadtests/sidebyside/reserve.lua (256
#      carts, quantity 1 then 0): through the SKU's owner (carts there too: no
#      forwarding), through a non-owner (carts on the owner: the request is
#      forwarded), and with the carts on the non-owner (the cart reserves on
#      the owner).
#   3. One Markdown table with every figure, the forwarded calls
#      (flashcore_forwarded_requests_total / _request_duration_seconds summed
#      over the nodes, by op, per phase) and where the CPU went; written to
#      loadtests/results/bench-cluster.md (and .json) and printed.
#
# The products are seeded through the first node before the others start (a
# node loads the catalog when its engine starts). Every node gets its own
# public port, node port (both port 0) and data directory, the same token and
# cluster secrets, the admin key, FLASHCORE_DEMO=false and the client and
# per-SKU rate limits off (every virtual user shares one address); Redis (a
# fresh key prefix) when it answers at FLASHCORE_LOADTEST_REDIS.
#
# Knobs (env): DURATION (20 s), RATE (900 shoppers/s), SKUS (100), STOCK
# (1000), MAX_VUS (300), REPLAY_P (0.05), NODES (3), FLASHCORE_SHARDS (256),
# RESERVE_DURATION (8 s), FLASHCORE_LOADTEST_PG (postgres://postgres@127.0.0.1:5432),
# SKIP_BUILD=1 (use target/release/flashcore as built). Latency thresholds
# missed are reported, not failures; the script fails when a run sold
# nothing, the journal oversold or lost an acknowledged order, a post-run
# check failed, more than 1 % of the reserves failed, or a node died. Every
# process and database it made is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=loadtests/lib/harness.sh
. loadtests/lib/harness.sh

secs() { # secs NAME DEFAULT: a whole number of seconds from $NAME (a trailing "s" allowed)
  local v="${!1:-$2}"
  v="${v%s}"
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] || lt_die "$1 must be whole seconds (got '${!1}')"
  echo "$v"
}
DURATION="$(secs DURATION 20)"
RESERVE_DURATION="$(secs RESERVE_DURATION 8)"
RATE="${RATE:-900}"
SKUS="${SKUS:-100}"
STOCK="${STOCK:-1000}"
MAX_VUS="${MAX_VUS:-300}"
REPLAY_P="${REPLAY_P:-0.05}"
NODES="${NODES:-3}"
SHARDS="${FLASHCORE_SHARDS:-256}"
for v in RATE SKUS STOCK MAX_VUS NODES SHARDS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || lt_die "$v must be a positive whole number (got '${!v}')"
done
[ "$NODES" -ge 2 ] || lt_die "NODES must be at least 2 (the cluster runs are compared with one node)"
[ "$NODES" -le 26 ] || lt_die "NODES must be at most 26 (node-a … node-z)"
CONNS=64
THREADS=2
CARTS=256
HOT_TOTAL=1000000000
results=loadtests/results
mkdir -p "$results"
bin="${CARGO_TARGET_DIR:-target}/release/flashcore"
CLK_TCK="$(getconf CLK_TCK)"

harness_init cluster
RUN="${LT_ID//_/}"
CLUSTER_SECRET="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
USE_REDIS=0
DBS=()       # databases this run created (dropped on exit)
NODE_NAMES=() # the running nodes: name, pid, public URL, log
NODE_PIDS=()
NODE_URLS=()
NODE_LOGS=()
BG_PID=""    # k6 or wrk while it runs
FAILED=()    # why the run failed (checked at the end)

# stop_bg: SIGTERM to k6 or wrk (not SIGINT: a non-interactive shell starts
# background commands with SIGINT ignored), SIGKILL after 10 s.
stop_bg() {
  [ -n "$BG_PID" ] || return 0
  kill -TERM "$BG_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while kill -0 "$BG_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$BG_PID" 2>/dev/null || true
  wait "$BG_PID" 2>/dev/null || true
  BG_PID=""
}

# stop_nodes: SIGTERM to every node at once, up to 30 s for them to stop
# (SIGKILL after); sets STOP_REPORT ("node-a exit 0, node-b exit 0 (all
# stopped 1 s after SIGTERM)").
STOP_REPORT=""
stop_nodes() {
  [ "${#NODE_PIDS[@]}" -gt 0 ] || return 0
  local t0=$SECONDS deadline=$((SECONDS + 30)) i pid alive rc
  for pid in "${NODE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  while :; do
    alive=0
    for pid in "${NODE_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 1 ] && [ $SECONDS -lt $deadline ] || break
    sleep 0.1
  done
  STOP_REPORT=""
  for i in "${!NODE_PIDS[@]}"; do
    pid="${NODE_PIDS[$i]}"
    if kill -0 "$pid" 2>/dev/null; then
      lt_log "${NODE_NAMES[$i]} did not stop within 30 s of SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    STOP_REPORT+="${STOP_REPORT:+, }${NODE_NAMES[$i]} exit $rc"
  done
  STOP_REPORT+=" (all stopped $((SECONDS - t0)) s after SIGTERM)"
  NODE_NAMES=() NODE_PIDS=() NODE_URLS=() NODE_LOGS=()
}

cleanup() {
  local rc=$?
  stop_bg
  if [ $rc != 0 ] && [ "${#NODE_LOGS[@]}" -gt 0 ]; then
    local log
    for log in "${NODE_LOGS[@]}"; do
      echo "--- last lines of $(basename "$log")" >&2
      tail -n 5 "$log" >&2 || true
    done
  fi
  stop_nodes || true
  local db
  for db in "${DBS[@]}"; do
    lt_psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
      echo "warning: could not drop database $db" >&2
  done
  DBS=()
  [ "$USE_REDIS" = 1 ] && redis_drop_prefix "$LT_PREFIX"
  [ -n "${LT_WORK:-}" ] && [ -d "$LT_WORK" ] && rm -rf "$LT_WORK"
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- tools and services ---------------------------------------------------------
ensure_k6
ensure_wrk
for t in curl jq psql python3 awk; do
  command -v $t >/dev/null || lt_die "$t is required"
done
lt_psql -c 'SELECT 1' >/dev/null 2>&1 ||
  lt_die "PostgreSQL is not reachable at $LT_PG (start it, or set FLASHCORE_LOADTEST_PG)"
if command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -u "$LT_REDIS" PING 2>/dev/null)" = PONG ]; then
  USE_REDIS=1
else
  lt_log "Redis is not reachable at $LT_REDIS: idempotency keys stay in each node's process"
fi
load="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l > 3) }'; then
  lt_log "warning: load average $load before the start: the figures will show whatever else runs"
fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  lt_log "building the release binary"
  cargo build --release --locked -q -p flashcore-http --bin flashcore
fi
[ -x "$bin" ] || lt_die "$bin is not built"

# --- nodes ---------------------------------------------------------------------------
new_db() { # new_db NAME: a fresh database, dropped on exit
  lt_psql -c "CREATE DATABASE \"$1\"" >/dev/null
  DBS+=("$1")
}

start_node() { # start_node NAME DB: a cluster-mode node on DB; waits for its /ready
  local name="$1" db="$2" log="$LT_WORK/$1.log"
  mkdir -p "$LT_WORK/$name"
  local redis=()
  [ "$USE_REDIS" = 1 ] && redis=(REDIS_URL="$LT_REDIS" FLASHCORE_REDIS_PREFIX="$LT_PREFIX")
  env FLASHCORE_NODE_ID="$name" \
    FLASHCORE_ADDR=127.0.0.1:0 \
    FLASHCORE_CLUSTER_ADDR=127.0.0.1:0 \
    FLASHCORE_CLUSTER_SECRET="$CLUSTER_SECRET" \
    FLASHCORE_SHARDS="$SHARDS" \
    FLASHCORE_STORE=postgres \
    DATABASE_URL="$LT_PG/$db" \
    "${redis[@]}" \
    FLASHCORE_ADMIN_KEY="$LT_ADMIN_KEY" \
    FLASHCORE_TOKEN_SECRET="$LT_TOKEN_SECRET" \
    FLASHCORE_DATA_DIR="$LT_WORK/$name" \
    FLASHCORE_DEMO=false \
    FLASHCORE_FRONTEND_DIR=off \
    FLASHCORE_RATE_CLIENT=off \
    FLASHCORE_RATE_SKU=off \
    FLASHCORE_LOG_FORMAT=json \
    RUST_LOG="${RUST_LOG:-info}" \
    "$bin" >"$log" 2>&1 &
  local pid=$!
  NODE_NAMES+=("$name") NODE_PIDS+=("$pid") NODE_LOGS+=("$log")
  await_flashcore "$pid" "$log"
  NODE_URLS+=("$FC_BASE")
  lt_log "$name ready at $FC_BASE (pid $pid)"
}

nodes_alive() { # fails (and names it) when a node has exited
  local i
  for i in "${!NODE_PIDS[@]}"; do
    kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || { lt_log "${NODE_NAMES[$i]} has exited"; return 1; }
  done
}

admin() { # admin URL METHOD PATH [JSON]
  local args=(-fsS --max-time 10 -X "$2" -H "Authorization: Bearer $LT_ADMIN_KEY")
  [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json' --data "$4")
  curl "${args[@]}" "$1$3"
}

# shares URL: "node-a=86 node-b=85 …" (and "-=n" for shards nobody holds now).
shares() {
  admin "$1" GET /v1/admin/cluster |
    jq -r '[.shard_map[] | (.owner // "-") | split("#")[0]] | group_by(.) | map("\(.[0])=\(length)") | join(" ")'
}

# await_shares: every node ready and holding its quota (SHARDS / nodes, rounded
# either way), no shard unheld, as the first node's /v1/admin/cluster shows it.
await_shares() {
  local n="${#NODE_NAMES[@]}" deadline=$((SECONDS + 120)) lo hi view="" ok i c t0=$SECONDS
  lo=$((SHARDS / n))
  hi=$(((SHARDS + n - 1) / n))
  while :; do
    nodes_alive || lt_die "a node exited while the shards were being shared"
    ok=1
    for i in "${!NODE_URLS[@]}"; do
      curl -fs -o /dev/null --max-time 2 "${NODE_URLS[$i]}/ready" || { ok=0; break; }
    done
    if [ $ok = 1 ]; then
      view="$(shares "${NODE_URLS[0]}" 2>/dev/null || true)"
      [ -n "$view" ] || ok=0
      [[ " $view" == *" -="* ]] && ok=0
      for i in "${!NODE_NAMES[@]}"; do
        c="$(tr ' ' '\n' <<<"$view" | sed -n "s/^${NODE_NAMES[$i]}=//p")"
        [ -n "$c" ] && [ "$c" -ge $lo ] && [ "$c" -le $hi ] || ok=0
      done
    fi
    [ $ok = 1 ] && break
    [ $SECONDS -lt $deadline ] || lt_die "the shards were not shared within 120 s (last view: ${view:-none})"
    sleep 0.5
  done
  SHARE_SECS=$((SECONDS - t0))
  SHARE_VIEW="$view"
  lt_log "shards shared: $view (${SHARE_SECS} s)"
}

seed() { # seed URL PREFIX COUNT TOTAL [MAX_PER_ORDER]: products PREFIX-0001… in one curl
  local url="$1" prefix="$2" count="$3" total="$4" max="${5:-}" urls=() i body codes ok
  body="{\"title\":\"Cluster bench\",\"price\":{\"amount\":500,\"currency\":\"EUR\"},\"total\":$total${max:+,\"max_per_order\":$max}}"
  for i in $(seq "$count"); do urls+=("$url/v1/admin/products/$(printf '%s-%04d' "$prefix" "$i")"); done
  # (-o names the first URL's output only: the answers go to stdout, each followed by its status.)
  codes="$(curl -sS --max-time 60 -X PUT -H "Authorization: Bearer $LT_ADMIN_KEY" -H 'Content-Type: application/json' \
    --data "$body" -w '\nSEED-STATUS %{http_code}\n' "${urls[@]}" | sed -n 's/^SEED-STATUS //p')"
  ok="$(grep -cE '^20[01]$' <<<"$codes" || true)"
  [ "$ok" = "$count" ] || lt_die "seeding $prefix: $ok of $count products created (statuses: $(sort <<<"$codes" | uniq -c | tr -s ' \n' ' '))"
}

# --- measuring helpers -------------------------------------------------------------
# cpu_snap FILE: CPU ticks so far of every process on the machine (threads
# included), by pid and command name, the machine's busy and idle ticks, and
# the time.
cpu_snap() {
  {
    cat /proc/[0-9]*/stat 2>/dev/null || true
  } | awk '{
      s = index($0, "("); e = 0
      for (i = length($0); i > 0; i--) if (substr($0, i, 1) == ")") { e = i; break }
      comm = substr($0, s + 1, e - s - 1); gsub(/[\t ]/, "_", comm)
      n = split(substr($0, e + 2), f, " ")
      if (n >= 13) printf "%s\t%s\t%d\n", $1, comm, f[12] + f[13]
    }' >"$1.tmp"
  awk '/^cpu / { printf "__busy\t-\t%d\n__idle\t-\t%d\n", $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat >>"$1.tmp"
  printf '__time\t-\t%s\n' "$(date +%s.%N)" >>"$1.tmp"
  mv "$1.tmp" "$1"
}

# cpu_split BEFORE AFTER: "flashcore 0.91, k6 0.55, postgres 0.31, other 0.10
# (rustc 0.08), idle 0.05; machine busy 1.95 (cores, over 9 s)": cores used on
# average between the two snapshots (busy includes the kernel's interrupt and
# softirq time, which no process is charged with), per process (a process started in between counts from
# its start; one that ended in between is missing, so the last snapshot is
# taken while the load generator still runs).
cpu_split() {
  awk -F'\t' -v tck="$CLK_TCK" '
    FNR == NR { b[$1] = $3; next }
    { a[$1] = $3; comm[$1] = $2 }
    END {
      secs = a["__time"] - b["__time"]; if (secs <= 0) secs = 1
      for (p in a) if (p !~ /^__/) {
        d = a[p] - ((p in b) ? b[p] : 0); if (d <= 0) continue
        c = comm[p]; k = c
        if (k ~ /^postgres/) k = "postgres"; else if (k ~ /^redis/) k = "redis"
        else if (k != "flashcore" && k != "k6" && k != "wrk") { k = "other"; oc[c] += d }
        u[k] += d
      }
      top = ""; topv = 0
      for (c in oc) if (oc[c] > topv) { top = c; topv = oc[c] }
      out = ""
      n = split("flashcore k6 wrk postgres redis other", order, " ")
      for (i = 1; i <= n; i++) if (order[i] in u) {
        out = out sprintf("%s%s %.2f", out == "" ? "" : ", ", order[i], u[order[i]] / tck / secs)
        if (order[i] == "other" && top != "") out = out sprintf(" (%s %.2f)", top, topv / tck / secs)
      }
      out = out sprintf(", idle %.2f; machine busy %.2f", (a["__idle"] - b["__idle"]) / tck / secs, (a["__busy"] - b["__busy"]) / tck / secs)
      print out sprintf(" (cores, over %.0f s)", secs)
    }' "$1" "$2"
}

# cpu_per_request SPLIT RATE: flashcore's CPU per request in µs, from a cpu_split line.
cpu_per_request() {
  sed -n 's/^flashcore \([0-9.]*\).*/\1/p' <<<"$1" | awk -v r="$2" '{ if (r > 0) printf "%.0f", $1 * 1e6 / r }'
}

# metrics_snap FILE: every node's /metrics, each line prefixed by the node's name.
metrics_snap() {
  local i
  : >"$1"
  for i in "${!NODE_URLS[@]}"; do
    curl -fsS --max-time 10 "${NODE_URLS[$i]}/metrics" | sed "s/^/${NODE_NAMES[$i]}\t/" >>"$1"
  done
}

# forward_rows PHASE BEFORE AFTER: Markdown rows of the forwarded calls between
# two snapshots (summed over the nodes, by op), and "node=requests" answered.
forward_rows() {
  python3 - "$@" <<'PY'
import re, sys
phase, before, after = sys.argv[1:4]
LINE = re.compile(r'^([^\t]+)\t([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')
def load(path):
    out = {}
    for line in open(path):
        m = LINE.match(line.rstrip('\n'))
        if not m:
            continue
        node, name, labels, value = m.groups()
        try:
            v = float(value)
        except ValueError:
            continue
        out[(node, name, tuple(sorted(LABEL.findall(labels or ''))))] = v
    return out
b, a = load(before), load(after)
d = {k: v - b.get(k, 0.0) for k, v in a.items()}
F, S = 'flashcore_forwarded_requests_total', 'flashcore_forwarded_request_duration_seconds'
calls, outcomes, secs, count, buckets, per_node = {}, {}, {}, {}, {}, {}
for (node, name, labels), v in d.items():
    L = dict(labels)
    if name == F:
        calls[L['op']] = calls.get(L['op'], 0) + v
        outcomes.setdefault(L['op'], {})
        outcomes[L['op']][L['outcome']] = outcomes[L['op']].get(L['outcome'], 0) + v
    elif name == S + '_sum':
        secs[L['op']] = secs.get(L['op'], 0) + v
    elif name == S + '_count':
        count[L['op']] = count.get(L['op'], 0) + v
    elif name == S + '_bucket':
        le = float('inf') if L['le'] == '+Inf' else float(L['le'])
        buckets.setdefault(L['op'], {})
        buckets[L['op']][le] = buckets[L['op']].get(le, 0) + v
    elif name == 'flashcore_http_requests_total':
        per_node[node] = per_node.get(node, 0) + v
def quantile(op, q):
    bs = sorted(buckets.get(op, {}).items())
    n = count.get(op, 0)
    if n <= 0 or not bs:
        return None
    want, prev_le, prev_c = q * n, 0.0, 0.0
    for le, c in bs:
        if c >= want:
            if le == float('inf'):
                return prev_le * 1000
            frac = (want - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return (prev_le + (le - prev_le) * frac) * 1000
        prev_le, prev_c = le, c
    return prev_le * 1000
ms = lambda x: '–' if x is None else (f'{x:.2f}' if x < 10 else f'{x:.0f}')
for op in sorted(calls, key=lambda o: -calls[o]):
    n = calls[op]
    if n <= 0:
        continue
    oc = ', '.join(f'{k} {int(v)}' for k, v in sorted(outcomes[op].items(), key=lambda kv: -kv[1]) if v > 0)
    mean = secs.get(op, 0) / count[op] * 1000 if count.get(op) else None
    total_s = secs.get(op, 0)
    print(f'| {phase} | `{op}` | {int(n)} ({oc}) | {ms(mean)} | {ms(quantile(op, 0.5))} | {ms(quantile(op, 0.99))} | {total_s:.1f} |')
if not any(v > 0 for v in calls.values()):
    print(f'| {phase} | (none) | 0 | | | | |')
print('NODES ' + ' '.join(f'{k}={int(v)}' for k, v in sorted(per_node.items())), file=sys.stderr)
PY
}

# sku_shard SKU: the SKU's shard (FNV-1a 64 over "sku:" + id, as domain/src/shard.rs).
sku_shard() {
  python3 -c '
import sys
h = 0xcbf29ce484222325
for b in ("sku:" + sys.argv[1]).encode():
    h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
print(h % int(sys.argv[2]))' "$1" "$SHARDS"
}

# journal_check DB PREFIX: "orders units skus oversold facts_mismatch totals_missing"
# straight from the tables: units sold per SKU in order_lines against the SKU's
# total (its last total_set fact plus later restocks), and the journal's sold
# stock facts against the order lines.
journal_check() {
  psql "$LT_PG/$1" -v ON_ERROR_STOP=1 -qAt -F' ' -v prefix="$2-%" <<'SQL'
WITH skus AS (SELECT sku FROM products WHERE sku LIKE :'prefix'),
lines AS (SELECT sku, SUM(qty)::bigint AS sold FROM order_lines WHERE sku LIKE :'prefix' GROUP BY sku),
facts AS (SELECT sku, SUM(qty)::bigint AS sold FROM stock_facts WHERE kind = 'sold' AND sku LIKE :'prefix' GROUP BY sku),
last_total AS (
  SELECT DISTINCT ON (sku) sku, pos, qty AS total FROM stock_facts
  WHERE kind = 'total_set' AND sku LIKE :'prefix' ORDER BY sku, pos DESC),
totals AS (
  SELECT t.sku, t.total + COALESCE(SUM(r.qty), 0) AS total FROM last_total t
  LEFT JOIN stock_facts r ON r.sku = t.sku AND r.kind = 'restocked' AND r.pos > t.pos
  GROUP BY t.sku, t.total)
SELECT
  (SELECT COUNT(DISTINCT order_id) FROM order_lines WHERE sku LIKE :'prefix'),
  COALESCE(SUM(l.sold), 0),
  COUNT(*),
  COUNT(*) FILTER (WHERE COALESCE(l.sold, 0) > COALESCE(t.total, 0)),
  COUNT(*) FILTER (WHERE COALESCE(l.sold, 0) <> COALESCE(f.sold, 0)),
  COUNT(*) FILTER (WHERE t.total IS NULL)
FROM skus s
LEFT JOIN lines l USING (sku)
LEFT JOIN facts f USING (sku)
LEFT JOIN totals t USING (sku);
SQL
}

# --- 1. the black-friday mix ---------------------------------------------------------
declare -A MIX # MIX[<key>.<figure>]
# run_mix KEY NAME DB PREFIX: the k6 suite against every running node; fills MIX[KEY.*].
run_mix() {
  local label="$1" name="$2" db="$3" prefix="$4" urls json out rc=0
  urls="$(IFS=,; echo "${NODE_URLS[*]}")"
  out="$LT_WORK/cluster-$label"
  MIX[$label.name]="$name"
  lt_log "$name: black-friday mix, $RATE shoppers/s for ${DURATION} s over ${#NODE_URLS[@]} node(s)"
  metrics_snap "$out.metrics.before"
  cpu_snap "$out.cpu.before"
  BASE_URLS="$urls" BASE_URL="${NODE_URLS[0]}" FLASHCORE_ADMIN_KEY="$LT_ADMIN_KEY" SKU_PREFIX="$prefix" \
    SKUS="$SKUS" STOCK="$STOCK" RATE="$RATE" DURATION="$DURATION" MAX_VUS="$MAX_VUS" REPLAY_P="$REPLAY_P" \
    SUITE_NAME="cluster-$label" RESULTS_DIR="$LT_WORK" \
    k6 run --quiet --no-color loadtests/cluster.js >"$out.k6.log" 2>&1 &
  BG_PID=$!
  # The last CPU snapshot taken while k6 still runs (its own CPU time goes with it).
  while kill -0 "$BG_PID" 2>/dev/null; do
    cpu_snap "$out.cpu.last"
    sleep 1
  done
  wait "$BG_PID" || rc=$?
  BG_PID=""
  nodes_alive || lt_die "$name: a node died during the run"
  metrics_snap "$out.metrics.after"
  json="$out.json"
  if [ ! -s "$json" ] || { [ $rc != 0 ] && [ $rc != 99 ]; }; then
    tail -n 30 "$out.k6.log" >&2
    lt_die "$name: k6 failed (exit $rc)"
  fi
  [ $rc = 0 ] && MIX[$label.thresholds]=met || MIX[$label.thresholds]="missed"
  local m='.k6.metrics' sc='{scenario:cluster_mix}'
  local q
  q="$(jq -r --arg d "http_req_duration$sc" --arg f "http_req_failed$sc" --arg r "http_reqs$sc" --arg it "iterations$sc" "
    [ ($m[\$r].values.count // 0), ($m[\$it].values.count // 0), (.report.dropped_iterations // 0),
      ($m[\$f].values.rate // 0), ($m[\$d].values.med // 0), ($m[\$d].values[\"p(95)\"] // 0), ($m[\$d].values[\"p(99)\"] // 0),
      .report.outcomes.orders_acked, .report.outcomes.units_acked, .report.outcomes.sold_out_409, .report.outcomes.stock_lost_409,
      (.report.vus_max // 0),
      ((.report.routes[] | select(.route == \"POST /v1/carts/{id}/checkout\") | [.p50_ms, .p99_ms]) // [0, 0] | .[]),
      ([.report.post_checks[] | select(.ok | not)] | length),
      (.report.store.units_held // 0)
    ] | @tsv" "$json")"
  local reqs iters dropped failed p50 p95 p99 orders units soldout lost vus co50 co99 badpost held
  read -r reqs iters dropped failed p50 p95 p99 orders units soldout lost vus co50 co99 badpost held <<<"$q"
  MIX[$label.rps]="$(awk -v n="$reqs" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')"
  MIX[$label.ops]="$(awk -v n="$orders" -v s="$DURATION" 'BEGIN { printf "%.1f", n / s }')"
  MIX[$label.its]="$(awk -v n="$iters" -v s="$DURATION" 'BEGIN { printf "%.0f", n / s }')"
  MIX[$label.reqs]="$reqs" MIX[$label.iters]="$iters" MIX[$label.dropped]="$dropped"
  MIX[$label.err]="$(awk -v r="$failed" 'BEGIN { printf "%.2f %%", r * 100 }')"
  MIX[$label.p50]="$(printf '%.1f' "$p50")" MIX[$label.p95]="$(printf '%.1f' "$p95")" MIX[$label.p99]="$(printf '%.1f' "$p99")"
  MIX[$label.co]="$(printf '%.1f / %.1f' "$co50" "$co99")"
  MIX[$label.orders]="$orders" MIX[$label.units]="$units" MIX[$label.vus]="$vus"
  MIX[$label.soldout]="$soldout" MIX[$label.lost]="$lost" MIX[$label.held]="$held"
  MIX[$label.cpu]="$(cpu_split "$out.cpu.before" "$out.cpu.last")"
  MIX[$label.us]="$(cpu_per_request "${MIX[$label.cpu]}" "${MIX[$label.rps]}")"
  # The journal, straight from the tables.
  local j_orders j_units j_skus j_over j_facts j_nototal
  read -r j_orders j_units j_skus j_over j_facts j_nototal <<<"$(journal_check "$db" "$prefix")"
  MIX[$label.journal]="$j_orders orders, $j_units units over $j_skus SKUs; oversold SKUs $j_over; SKUs whose sold facts ≠ order lines $j_facts"
  MIX[$label.j_over]="$j_over"
  [ "$orders" -gt 0 ] || FAILED+=("$name: no order was acknowledged (a run that sold nothing proves nothing)")
  [ "$j_over" = 0 ] || FAILED+=("$name: the journal oversold $j_over SKUs")
  [ "$j_facts" = 0 ] || FAILED+=("$name: $j_facts SKUs' sold stock facts differ from their order lines")
  [ "$j_nototal" = 0 ] || FAILED+=("$name: $j_nototal SKUs have no total in the journal")
  [ "$j_skus" = "$SKUS" ] || FAILED+=("$name: $j_skus of $SKUS SKUs in the products table")
  [ "$j_orders" -ge "$orders" ] || FAILED+=("$name: $orders orders acknowledged but $j_orders journaled")
  [ "$badpost" = 0 ] || FAILED+=("$name: $badpost of k6's post-run store checks failed (see its report)")
  MIX[$label.fwd]="$(forward_rows "mix, $name" "$out.metrics.before" "$out.metrics.after" 2>"$out.nodes")"
  MIX[$label.nodes]="$(sed 's/^NODES //' "$out.nodes")"
  lt_log "$name: ${MIX[$label.rps]} req/s, ${MIX[$label.ops]} orders/s, p99 ${MIX[$label.p99]} ms, errors ${MIX[$label.err]}, $orders orders acknowledged; journal: ${MIX[$label.journal]}"
}

# 1a. one node.
DB1="flashcore_bc1_${LT_ID}"
new_db "$DB1"
start_node node-a "$DB1"
seed "${NODE_URLS[0]}" "CB1-$RUN" "$SKUS" "$STOCK" 5
await_shares
run_mix 1 "1 node" "$DB1" "CB1-$RUN"
stop_nodes
STOP_1="$STOP_REPORT"

# 1b. NODES nodes, the products (and the hot SKU of part 2) seeded through the
# first before the others start.
DBN="flashcore_bcn_${LT_ID}"
new_db "$DBN"
HOT="CBHOT-$RUN"
start_node node-a "$DBN"
seed "${NODE_URLS[0]}" "CBN-$RUN" "$SKUS" "$STOCK" 5
seed "${NODE_URLS[0]}" "$HOT" 1 "$HOT_TOTAL"
HOT="$HOT-0001"
letters=({a..z})
for i in $(seq 1 $((NODES - 1))); do
  start_node "node-${letters[$i]}" "$DBN"
done
await_shares
SHARE_N="$SHARE_VIEW" SHARE_N_SECS="$SHARE_SECS"
run_mix n "$NODES nodes" "$DBN" "CBN-$RUN"

# --- 2. hot-SKU reserve: owner against non-owner ---------------------------------------
shard="$(sku_shard "$HOT")"
owner_name="$(admin "${NODE_URLS[0]}" GET /v1/admin/cluster |
  jq -r --argjson s "$shard" '.shard_map[] | select(.shard == $s) | (.owner // "") | split("#")[0]')"
OWN=-1 OTHER=-1
for i in "${!NODE_NAMES[@]}"; do
  if [ "${NODE_NAMES[$i]}" = "$owner_name" ]; then OWN=$i; elif [ $OTHER = -1 ]; then OTHER=$i; fi
done
[ $OWN -ge 0 ] && [ $OTHER -ge 0 ] || lt_die "no owner for $HOT (shard $shard: '$owner_name')"
lt_log "$HOT is in shard $shard, held by ${NODE_NAMES[$OWN]}; the non-owner is ${NODE_NAMES[$OTHER]}"

make_carts() { # make_carts URL FILE: CARTS carts made through URL (so they live on its node)
  local urls=() i
  for i in $(seq "$CARTS"); do urls+=("$1/v1/carts"); done
  curl -fsS --max-time 60 -X POST "${urls[@]}" | jq -r '"\(.cart_id) \(.token)"' >"$2"
  [ "$(wc -l <"$2")" -eq "$CARTS" ] || lt_die "could not create $CARTS carts through $1"
}

declare -A RES
# run_reserve KEY WHAT URL CARTS_FILE
run_reserve() {
  local key="$1" what="$2" url="$3" carts="$4" out="$LT_WORK/reserve-$1" rc=0
  lt_log "reserve $what: wrk -t$THREADS -c$CONNS -d${RESERVE_DURATION}s $url"
  metrics_snap "$out.metrics.before"
  cpu_snap "$out.cpu.before"
  wrk -t"$THREADS" -c"$CONNS" -d"${RESERVE_DURATION}s" --latency -s loadtests/sidebyside/reserve.lua "$url" \
    -- "$carts" "$HOT" "$THREADS" >"$out.wrk" 2>&1 &
  BG_PID=$!
  while kill -0 "$BG_PID" 2>/dev/null; do
    cpu_snap "$out.cpu.last"
    sleep 1
  done
  wait "$BG_PID" || rc=$?
  BG_PID=""
  nodes_alive || lt_die "reserve $what: a node died during the run"
  metrics_snap "$out.metrics.after"
  grep -q '^SIDEBYSIDE reserve' "$out.wrk" || { cat "$out.wrk" >&2; lt_die "reserve $what: wrk printed no result (exit $rc)"; }
  local line n dur non2xx p50 p99 sockerr
  line="$(grep '^SIDEBYSIDE reserve' "$out.wrk")"
  kvl() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  n="$(kvl requests)" dur="$(kvl duration_us)" non2xx="$(kvl non2xx)" p50="$(kvl p50_us)" p99="$(kvl p99_us)"
  sockerr="$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10; f = 1 } END { if (!f) print 0 }' "$out.wrk")"
  RES[$key.what]="$what"
  RES[$key.rps]="$(awk -v n="$n" -v us="$dur" 'BEGIN { printf "%.0f", n / (us / 1e6) }')"
  RES[$key.p50]="$(awk -v us="$p50" 'BEGIN { printf "%.2f", us / 1000 }')"
  RES[$key.p99]="$(awk -v us="$p99" 'BEGIN { printf "%.2f", us / 1000 }')"
  RES[$key.err]="$(awk -v b="$((non2xx + sockerr))" -v n="$n" 'BEGIN { printf "%.2f %%", n ? b * 100 / n : 100 }')"
  RES[$key.bad]="$((non2xx + sockerr))"
  RES[$key.n]="$n"
  RES[$key.cpu]="$(cpu_split "$out.cpu.before" "$out.cpu.last")"
  RES[$key.us]="$(cpu_per_request "${RES[$key.cpu]}" "${RES[$key.rps]}")"
  RES[$key.fwd]="$(forward_rows "reserve: $what" "$out.metrics.before" "$out.metrics.after" 2>/dev/null)"
  [ "$n" -gt 0 ] || FAILED+=("reserve $what: no request answered")
  awk -v b="$((non2xx + sockerr))" -v n="$n" 'BEGIN { exit !(b * 100 > n) }' &&
    FAILED+=("reserve $what: $((non2xx + sockerr)) of $n requests failed (non-2xx or socket errors)")
  lt_log "reserve $what: ${RES[$key.rps]} req/s, p50 ${RES[$key.p50]} ms, p99 ${RES[$key.p99]} ms, errors ${RES[$key.err]}"
}

make_carts "${NODE_URLS[$OWN]}" "$LT_WORK/carts-owner.txt"
make_carts "${NODE_URLS[$OTHER]}" "$LT_WORK/carts-other.txt"
O="${NODE_NAMES[$OWN]}" X="${NODE_NAMES[$OTHER]}"
run_reserve owner "through the owner ($O; carts on $O)" "${NODE_URLS[$OWN]}" "$LT_WORK/carts-owner.txt"
run_reserve edge "through a non-owner ($X forwards to $O; carts on $O)" "${NODE_URLS[$OTHER]}" "$LT_WORK/carts-owner.txt"
run_reserve cart "cart on a non-owner ($X; carts on $X reserve on $O)" "${NODE_URLS[$OTHER]}" "$LT_WORK/carts-other.txt"
stop_nodes
STOP_N="$STOP_REPORT"

# --- 3. the report ------------------------------------------------------------------------
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- . 2>/dev/null || commit+=" (with uncommitted changes)"
L1=1 LN=n
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.2f×", a / b }'; }
mixrow() { # mixrow LABEL
  local l="$1"
  echo "| black-friday mix, ${MIX[$l.name]} | ${MIX[$l.rps]} req/s | ${MIX[$l.ops]} orders/s | ${MIX[$l.p50]} | ${MIX[$l.p95]} | ${MIX[$l.p99]} | ${MIX[$l.err]} | ${MIX[$l.orders]} (${MIX[$l.units]} units) |"
}
resrow() { # resrow KEY
  local k="$1"
  echo "| hot-SKU reserve/release ${RES[$k.what]} | ${RES[$k.rps]} req/s | – | ${RES[$k.p50]} | – | ${RES[$k.p99]} | ${RES[$k.err]} | – |"
}
report="$results/bench-cluster.md"
{
  echo "# Cluster bench, one run"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $commit, $(nproc) cores, load average $load at the start."
  echo "Release flashcore in cluster mode on one Postgres database ($SHARDS shards$([ "$USE_REDIS" = 1 ] && echo ', Redis shared' || echo ', no Redis'));"
  echo "the load generator shares the cores with the nodes and Postgres, so compare rows of one run."
  echo "Mix: \`loadtests/cluster.js\`, $RATE shoppers/s offered (10 % ramp, then held) for $DURATION s, $SKUS SKUs of $STOCK units,"
  echo "up to $MAX_VUS VUs, replays $REPLAY_P; the $NODES-node run spreads the VUs over the nodes' public URLs."
  echo "Reserve: wrk -t$THREADS -c$CONNS for $RESERVE_DURATION s, \`loadtests/sidebyside/reserve.lua\` over $CARTS carts, one SKU ($HOT, shard $shard, held by $O)."
  echo
  echo "| run | throughput | orders | p50 ms | p95 ms | p99 ms | errors | orders acknowledged |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  mixrow "$L1"
  mixrow "$LN"
  resrow owner
  resrow edge
  resrow cart
  echo
  echo "${MIX[$LN.name]} ÷ 1 node: requests/s $(ratio "${MIX[$LN.rps]}" "${MIX[$L1.rps]}"), orders/s $(ratio "${MIX[$LN.ops]}" "${MIX[$L1.ops]}"), p99 $(ratio "${MIX[$LN.p99]}" "${MIX[$L1.p99]}")."
  echo "Reserve through a non-owner ÷ through the owner: $(ratio "${RES[edge.rps]}" "${RES[owner.rps]}") the requests/s, p50 $(ratio "${RES[edge.p50]}" "${RES[owner.p50]}"); cart on a non-owner: $(ratio "${RES[cart.rps]}" "${RES[owner.rps]}"), p50 $(ratio "${RES[cart.p50]}" "${RES[owner.p50]}")."
  echo
  for l in "$L1" "$LN"; do
    echo "- **mix, ${MIX[$l.name]}**: ${MIX[$l.iters]} shoppers (${MIX[$l.its]}/s, ${MIX[$l.dropped]} dropped, up to ${MIX[$l.vus]} VUs), ${MIX[$l.reqs]} requests;"
    echo "  checkout p50 / p99 ${MIX[$l.co]} ms; add-to-cart 409 out-of-stock ${MIX[$l.soldout]}, checkout 409 stock-lost ${MIX[$l.lost]}, units still held ${MIX[$l.held]};"
    echo "  latency thresholds (p95 100 ms, p99 250 ms per buyer route) ${MIX[$l.thresholds]}; journal: ${MIX[$l.journal]};"
    echo "  requests answered per node: ${MIX[$l.nodes]}; CPU: ${MIX[$l.cpu]}, i.e. flashcore ${MIX[$l.us]} µs per request."
  done
  for k in owner edge cart; do
    echo "- **reserve ${RES[$k.what]}**: ${RES[$k.n]} requests; CPU: ${RES[$k.cpu]}, i.e. flashcore ${RES[$k.us]} µs per request."
  done
  echo "- shards: $SHARE_N once the $NODES nodes had shared them (${SHARE_N_SECS} s after the last start); stop: 1 node: $STOP_1; $NODES nodes: $STOP_N."
  echo
  echo "Forwarded calls (\`flashcore_forwarded_requests_total\`, \`flashcore_forwarded_request_duration_seconds\`: summed over the nodes, by op; quantiles interpolated in the histogram's buckets):"
  echo
  echo "| phase | op | calls (outcomes) | mean ms | p50 ms | p99 ms | seconds in all |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  echo "${MIX[$LN.fwd]}"
  echo "${RES[owner.fwd]}"
  echo "${RES[edge.fwd]}"
  echo "${RES[cart.fwd]}"
  echo
  if [ "${#FAILED[@]}" -eq 0 ]; then
    echo "**Outcome: passed** (orders acknowledged in both runs, none oversold or lost in the journal, the post-run checks and the reserves clean)."
  else
    echo "**Outcome: FAILED**:"
    echo
    for f in "${FAILED[@]}"; do echo "- $f"; done
  fi
} >"$report"
jq -n --arg md "$(cat "$report")" \
  --argjson mix1 "$(jq '.report' "$LT_WORK/cluster-1.json")" --argjson mixn "$(jq '.report' "$LT_WORK/cluster-n.json")" \
  --arg reserve_owner_rps "${RES[owner.rps]}" --arg reserve_edge_rps "${RES[edge.rps]}" --arg reserve_cart_rps "${RES[cart.rps]}" \
  --arg reserve_owner_p99 "${RES[owner.p99]}" --arg reserve_edge_p99 "${RES[edge.p99]}" --arg reserve_cart_p99 "${RES[cart.p99]}" \
  --argjson nodes "$NODES" --argjson failed "$(printf '%s\n' "${FAILED[@]+"${FAILED[@]}"}" | jq -R . | jq -s 'map(select(. != ""))')" \
  '{nodes: $nodes, mix_1_node: $mix1, mix_n_nodes: $mixn,
    reserve: {owner: {rps: $reserve_owner_rps, p99_ms: $reserve_owner_p99}, non_owner: {rps: $reserve_edge_rps, p99_ms: $reserve_edge_p99},
              cart_on_non_owner: {rps: $reserve_cart_rps, p99_ms: $reserve_cart_p99}},
    failed: $failed, markdown: $md}' >"$results/bench-cluster.json"
echo
cat "$report"
echo
lt_log "report: $report"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "bench-cluster FAILED:" >&2
  printf '  %s\n' "${FAILED[@]}" >&2
  exit 1
fi
