#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/*.json, flashcore's Grafana dashboards.

The JSON files are what Grafana provisions (deploy/grafana/provisioning); this
script is where they are edited, so every panel has the same data source,
layout and units. `--check` fails when a JSON file differs from what the
script writes (scripts/check-deploy.sh runs it).

Every query names metrics flashcore serves at /metrics (actors/src/metrics.rs,
http/src) or a recording rule of deploy/prometheus/rules/recording.yaml;
scripts/check-deploy.sh evaluates each against a real Prometheus scraping a
real flashcore.

    python3 deploy/grafana/dashboards.py          # write
    python3 deploy/grafana/dashboards.py --check  # compare
"""

import json
import sys
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "flashcore-prometheus"}
OUT = Path(__file__).resolve().parent / "dashboards"

CHECKOUT = 'route="/v1/carts/{cart_id}/checkout"'
# API routes whose latency is an SLO; the SSE stream is not a page.
API = 'route=~"/v1/.+",route!="/v1/products/{sku}/availability"'
RI = "$__rate_interval"


def zero_by_kind(expr):
    """`expr` (by kind), or 0 for every actor kind that exists.

    flashcore creates a counter on its first increment, so failure counters are
    absent on a healthy node; the panel then shows 0 per kind, not "No data".
    """
    return f"{expr}\nor\nsum by (kind) (flashcore_actors_active) * 0"


def target(expr, legend, ref):
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref,
    }


def panel(kind, title, description, targets, unit="short", thresholds=None, base="green", decimals=None, w=8, h=8):
    steps = [{"color": base, "value": None}]
    for value, color in thresholds or []:
        steps.append({"color": color, "value": value})
    defaults = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps},
        "color": {"mode": "palette-classic" if kind == "timeseries" else "thresholds"},
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
            # SLO thresholds are drawn as dashed lines.
            "thresholdsStyle": {"mode": "dashed" if thresholds else "off"},
        }
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
        "_w": w,
        "_h": h,
    }
    if kind == "timeseries":
        p["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        p["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return p


def ts(title, description, targets, **kw):
    return panel("timeseries", title, description, targets, **kw)


def stat(title, description, targets, **kw):
    kw.setdefault("w", 6)
    kw.setdefault("h", 4)
    return panel("stat", title, description, targets, **kw)


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_w": 24, "_h": 1}


def dashboard(uid, title, description, panels):
    x = y = line_h = 0
    out = []
    for i, p in enumerate(panels, start=1):
        w, h = p.pop("_w"), p.pop("_h")
        if x + w > 24 or p["type"] == "row":
            x, y, line_h = 0, y + line_h, 0
        p["id"] = i
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        line_h = max(line_h, h)
        out.append(p)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["flashcore"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [
            {"title": "flashcore", "type": "dashboards", "tags": ["flashcore"], "asDropdown": True, "includeVars": False}
        ],
        "panels": out,
    }


def quantiles(metric, by="", qs=("0.5", "0.95", "0.99")):
    grouping = f"{by}, le" if by else "le"
    return [
        (f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket[{RI}])))", f"p{q[2:].ljust(2, '0')}")
        for q in qs
    ]


FLASH_SALE = dashboard(
    "flashcore-flash-sale",
    "flashcore / Flash sale",
    "Orders, checkout outcomes and latency against the SLOs (deploy/README.md).",
    [
        stat("Orders per second", "flashcore_orders_total: orders placed (each acknowledged after its journal batch committed).",
             [(f"sum(rate(flashcore_orders_total[{RI}]))", "orders/s")], unit="reqps", decimals=1),
        stat("Orders in the time range", "Orders placed over the dashboard's time range.",
             [("sum(increase(flashcore_orders_total[$__range]))", "orders")], decimals=0),
        stat("Checkout success ratio", "Checkout requests answered 201 (an order, or its idempotent replay) over all checkout requests.",
             [(f'sum(rate(flashcore_http_requests_total{{{CHECKOUT},status="201"}}[{RI}]))\n/\n'
               f"sum(rate(flashcore_http_requests_total{{{CHECKOUT}}}[{RI}]))", "success")],
             unit="percentunit", decimals=1),
        stat("Checkout availability, 1 h (SLO 99.9 %)", "1 - the share of checkout requests answered 5xx over the last hour (recording rule).",
             [("1 - flashcore:checkout_availability:error_ratio_rate1h", "availability")],
             unit="percentunit", decimals=2, base="red", thresholds=[(0.999, "green")]),
        ts("Orders per second", "Orders placed per second.",
           [(f"sum(rate(flashcore_orders_total[{RI}]))", "orders/s")], unit="reqps"),
        ts("Checkout outcomes", "Checkout requests by HTTP status: 201 order, 402 declined, 409 stock or limits, 422 bad input or reused key, 429 limited, 503 refused or unavailable.",
           [(f"sum by (status) (rate(flashcore_http_requests_total{{{CHECKOUT}}}[{RI}]))", "{{status}}")], unit="reqps"),
        ts("Checkouts refused, by reason", "flashcore_checkout_failures_total: checkouts the cart actor refused, by problem code.",
           [(f"sum by (reason) (rate(flashcore_checkout_failures_total[{RI}]))", "{{reason}}")], unit="reqps"),
        ts("Checkout error budget burn rate", "Share of checkouts answered 5xx divided by the budget (0.1 %). 14.4 over 1 h and 5 m pages; 1 spends the budget in exactly 30 days.",
           [("flashcore:checkout_availability:error_ratio_rate5m / 0.001", "5m"),
            ("flashcore:checkout_availability:error_ratio_rate1h / 0.001", "1h"),
            ("flashcore:checkout_availability:error_ratio_rate6h / 0.001", "6h")],
           thresholds=[(1, "orange"), (14.4, "red")]),
        ts("Checkouts under 500 ms (SLO: 95 %)", "1 - the share of checkout requests slower than 500 ms (recording rule; 0.5 s is a histogram bucket bound).",
           [("1 - flashcore:checkout_latency:slow_ratio_rate5m", "5m"),
            ("1 - flashcore:checkout_latency:slow_ratio_rate1h", "1h")],
           unit="percentunit", base="red", thresholds=[(0.95, "green")]),
        ts("Requests per second by route", "flashcore_http_requests_total by matched route.",
           [(f"sum by (route) (rate(flashcore_http_requests_total[{RI}]))", "{{route}}")], unit="reqps"),
        ts("p95 latency by route (SLO: checkout 500 ms, product pages 300 ms)",
           "95th percentile of flashcore_http_request_duration_seconds per API route, interpolated within histogram buckets.",
           [(f"histogram_quantile(0.95, sum by (route, le) (rate(flashcore_http_request_duration_seconds_bucket{{{API}}}[{RI}])))", "{{route}}")],
           unit="s", thresholds=[(0.3, "orange"), (0.5, "red")], w=12, h=9),
        ts("p99 latency by route (SLO: 2 s)",
           "99th percentile of flashcore_http_request_duration_seconds per API route, interpolated within histogram buckets.",
           [(f"histogram_quantile(0.99, sum by (route, le) (rate(flashcore_http_request_duration_seconds_bucket{{{API}}}[{RI}])))", "{{route}}")],
           unit="s", thresholds=[(2, "red")], w=12, h=9),
        ts("Holds expired per second", "flashcore_holds_expired_total: cart holds that lapsed and returned their stock.",
           [(f"sum(rate(flashcore_holds_expired_total[{RI}]))", "expired/s")], w=8),
        stat("Oversold units (must be 0)", "flashcore_sku_oversold_units: units a SKU's journal says were sold beyond its total; only two writers on one store can cause it (0 while no SKU has been found oversold).",
             [("max(flashcore_sku_oversold_units) or vector(0)", "oversold")], thresholds=[(1, "red")], decimals=0, w=4, h=8),
        ts("Server errors by route", "Requests answered 5xx, by route and status.",
           [(f'sum by (route, status) (rate(flashcore_http_requests_total{{status=~"5.."}}[{RI}]))', "{{route}} {{status}}")],
           unit="reqps", w=12),
        ts("Circuit breakers by dependency", "flashcore_circuit_state: 0 closed, 1 half-open (one probe in flight), 2 open (calls refused at once: checkout 503 + Retry-After). README, Circuit breakers and budgets.",
           [("max by (dependency) (flashcore_circuit_state)", "{{dependency}}")],
           thresholds=[(1, "orange"), (2, "red")], decimals=0, w=12),
        ts("p95 checkout step time (budgets: FLASHCORE_BUDGET_*_MS)", "95th percentile of flashcore_checkout_step_duration_seconds per step: prepare, payment, journal, commit.",
           [(f"histogram_quantile(0.95, sum by (step, le) (rate(flashcore_checkout_step_duration_seconds_bucket[{RI}])))", "{{step}}")],
           unit="s", w=12),
    ],
)

ACTORS = dashboard(
    "flashcore-actors",
    "flashcore / Actors",
    "SKU and cart actors: how many live, started, stopped, failed, restarted, quarantined, and what their gates refused.",
    [
        ts("Live actors by kind", "flashcore_actors_active.", [("sum by (kind) (flashcore_actors_active)", "{{kind}}")]),
        ts("Starts per second by kind", "flashcore_actor_starts_total: activations and restarts.",
           [(f"sum by (kind) (rate(flashcore_actor_starts_total[{RI}]))", "{{kind}}")]),
        ts("Clean stops and passivations per second", "flashcore_actor_stops_total (passivation, shutdown) and flashcore_actor_passivations_total (idle carts saved and stopped).",
           [(f"sum by (kind) (rate(flashcore_actor_stops_total[{RI}]))", "stops {{kind}}"),
            (f"sum by (kind) (rate(flashcore_actor_passivations_total[{RI}]))", "passivations {{kind}}")]),
        ts("Failures per second by kind", "flashcore_actor_failures_total: actors that panicked or whose handler failed (0 per kind while none has).",
           [(zero_by_kind(f"sum by (kind) (rate(flashcore_actor_failures_total[{RI}]))"), "{{kind}}")],
           thresholds=[(0.01, "red")]),
        ts("Restarts per second by kind", "flashcore_actor_restarts_total: failed actors restarted by their supervisor (0 per kind while none was).",
           [(zero_by_kind(f"sum by (kind) (rate(flashcore_actor_restarts_total[{RI}]))"), "{{kind}}")],
           thresholds=[(0.01, "red")]),
        ts("Quarantines in the time range by kind", "flashcore_actor_quarantines_total: entities past their restart intensity, refused with 503 until the restart period passes.",
           [(zero_by_kind("sum by (kind) (increase(flashcore_actor_quarantines_total[$__range]))"), "{{kind}}")],
           thresholds=[(1, "red")]),
        ts("Gate refusals per second by kind and reason", "flashcore_actor_rejections_total: busy (in-flight bound reached: 503 overloaded) or quarantined.",
           [(f"sum by (kind, reason) (rate(flashcore_actor_rejections_total[{RI}]))", "{{kind}} {{reason}}")],
           w=24),
    ],
)

DURABILITY = dashboard(
    "flashcore-durability",
    "flashcore / Durability",
    "Group commit of the journal and the write-behind snapshot flusher.",
    [
        ts("Journal batches per second", "flashcore_journal_batches_total: batches committed (one transaction each).",
           [(f"sum(rate(flashcore_journal_batches_total[{RI}]))", "batches/s")]),
        ts("Entries per journal batch", "flashcore_journal_batch_entries: orders and stock changes per committed batch.",
           [(f"sum(rate(flashcore_journal_batch_entries_sum[{RI}]))\n/\nsum(rate(flashcore_journal_batch_entries_count[{RI}]))", "mean"),
            (f"histogram_quantile(0.99, sum by (le) (rate(flashcore_journal_batch_entries_bucket[{RI}])))", "p99")]),
        ts("Journal commit latency", "flashcore_journal_commit_duration_seconds: time to commit one batch.",
           quantiles("flashcore_journal_commit_duration_seconds"), unit="s"),
        ts("Journal commit errors per second", "flashcore_journal_errors_total: batches that failed; their checkouts got 503 and sold nothing.",
           [(f"sum(rate(flashcore_journal_errors_total[{RI}])) or vector(0)", "errors/s")], thresholds=[(0.001, "red")]),
        ts("Snapshots written per second", "flashcore_snapshots_written_total: carts and SKUs saved by the write-behind flusher.",
           [(f"sum(rate(flashcore_snapshots_written_total[{RI}]))", "snapshots/s")]),
        ts("Write-behind flush duration", "flashcore_flush_duration_seconds: time one flush took (its interval is FLASHCORE_FLUSH_INTERVAL_MS).",
           quantiles("flashcore_flush_duration_seconds"), unit="s"),
        ts("Snapshot errors per second", "flashcore_snapshot_errors_total: failed flushes (retried; until one succeeds a crash loses the holds changed since the last).",
           [(f"sum(rate(flashcore_snapshot_errors_total[{RI}])) or vector(0)", "errors/s")], thresholds=[(0.001, "red")], w=24),
        ts("Store lease owner by instance", "flashcore_lease_owned: 1 on the one process that holds the store's leases and may sell; standbys show 0 or nothing.",
           [("max by (instance) (flashcore_lease_owned)", "{{instance}}")]),
        ts("Lease acquisitions in the time range", "flashcore_lease_acquisitions_total: a process took the store's leases (start, or take-over from a stopped or dead owner).",
           [("sum by (instance) (increase(flashcore_lease_acquisitions_total[$__range]))", "{{instance}}")]),
        stat("Take-over recovery time", "flashcore_lease_takeover_recovery_duration_seconds: from taking the leases to serving (recovery), mean per process since it started.",
             [("max by (instance) (\n  flashcore_lease_takeover_recovery_duration_seconds_sum\n  / flashcore_lease_takeover_recovery_duration_seconds_count\n)", "{{instance}}")],
             unit="s", w=8, h=8),
    ],
)

EDGE = dashboard(
    "flashcore-edge",
    "flashcore / Edge",
    "Rate limits, load shedding, idempotency, Redis degradation and credential denials.",
    [
        ts("Rate-limited per second by limit", "flashcore_rate_limited_total: 429 rate-limited, by limit (client or sku).",
           [(f"sum by (limit) (rate(flashcore_rate_limited_total[{RI}]))", "{{limit}}")], unit="reqps"),
        ts("Shed per second (503 overloaded)", "flashcore_actor_rejections_total{reason=\"busy\"}: requests refused because an actor's in-flight bound was reached.",
           [(f'sum by (kind) (rate(flashcore_actor_rejections_total{{reason="busy"}}[{RI}]))', "{{kind}}")], unit="reqps"),
        ts("Request timeouts per second", "flashcore_http_timeouts_total: requests past FLASHCORE_REQUEST_TIMEOUT_MS, answered 503 timeout.",
           [(f"sum(rate(flashcore_http_timeouts_total[{RI}])) or vector(0)", "timeouts/s")], unit="reqps"),
        ts("Idempotent replays per second", "flashcore_idempotent_replays_total: retries answered from the stored outcome (Idempotent-Replayed: true).",
           [(f"sum(rate(flashcore_idempotent_replays_total[{RI}]))", "replays/s")], unit="reqps"),
        ts("Redis fallback per second by use", "flashcore_redis_fallback_total: rate limits applied per node, or idempotency failing closed (503), because Redis did not answer.",
           [(f"sum by (use) (rate(flashcore_redis_fallback_total[{RI}]))", "{{use}}")], unit="reqps", thresholds=[(0.001, "red")]),
        ts("Redis errors per second by operation", "flashcore_redis_errors_total: Redis commands that failed or timed out (FLASHCORE_REDIS_TIMEOUT_MS).",
           [(f"sum by (op) (rate(flashcore_redis_errors_total[{RI}]))", "{{op}}")], unit="reqps"),
        ts("Auth denials per second", "flashcore_auth_denied_total: 401 and 403 answers, by reason and route.",
           [(f"sum by (reason, route) (rate(flashcore_auth_denied_total[{RI}]))", "{{reason}} {{route}}")], unit="reqps", w=12),
        ts("Readiness probe answers by instance", "/ready answers (kubelet readiness probe, compose health check): 503 means recovering or shutting down.",
           [(f'sum by (instance, status) (rate(flashcore_http_requests_total{{route="/ready"}}[{RI}]))', "{{instance}} {{status}}")],
           unit="reqps", w=12),
    ],
)

CLUSTER = dashboard(
    "flashcore-cluster",
    "flashcore / Cluster",
    "Shard leases across the nodes: who holds how many shards, moves, renewals, losses and fenced writes (DESIGN §9).",
    [
        ts("Shards owned by instance", "flashcore_shards_owned: shards whose leases the node holds (all of them on a single node; its share in cluster mode).",
           [("max by (instance) (flashcore_shards_owned)", "{{instance}}")]),
        stat("Nodes holding shards", "Instances that hold at least one shard's lease now.",
             [("count(max by (instance) (flashcore_shards_owned) > 0) or vector(0)", "nodes")]),
        ts("Shard moves in the time range", "flashcore_shard_moves_total: times a node's share changed (a node joined or left); each move flushes and recovers the node's new share.",
           [("sum by (instance) (increase(flashcore_shard_moves_total[$__range]))", "{{instance}}")]),
        ts("Lease renewals per second", "flashcore_lease_renewals_total: renewals of the held leases (every third of FLASHCORE_LEASE_TTL_MS).",
           [(f"sum by (instance) (rate(flashcore_lease_renewals_total[{RI}]))", "{{instance}}")]),
        ts("Lease renew failures per second", "flashcore_lease_renew_failures_total: renewals that failed; a node that cannot renew before its deadline stops serving.",
           [(f"sum by (instance) (rate(flashcore_lease_renew_failures_total[{RI}])) or vector(0)", "{{instance}}")],
           thresholds=[(0.001, "red")]),
        ts("Fenced writes per second", "flashcore_fenced_writes_total: writes refused because the writer no longer held the shard's lease (by: node = refused before sending, store = refused by the store's epoch check).",
           [(f"sum by (by) (rate(flashcore_fenced_writes_total[{RI}])) or vector(0)", "{{by}}")], thresholds=[(0.001, "red")]),
        ts("Lease losses in the time range", "flashcore_lease_losses_total: a node lost its leases (deadline passed, taken over, or a write fenced) and dropped its engine.",
           [("sum by (instance) (increase(flashcore_lease_losses_total[$__range])) or vector(0)", "{{instance}}")]),
        ts("Lease acquisitions in the time range", "flashcore_lease_acquisitions_total: a node took leases (its start, a take-over, or its new share after a move).",
           [("sum by (instance) (increase(flashcore_lease_acquisitions_total[$__range]))", "{{instance}}")]),
        ts("Forwarded calls per second", "flashcore_forwarded_requests_total: calls sent to the node holding an entity's shard (a cart's reads, line changes and checkouts; a SKU's reserve, prepare, commit and counts), by op and outcome (ok, refused: the owner's own answer, elsewhere: the shard had moved, failed: the transport).",
           [(f"sum by (op, outcome) (rate(flashcore_forwarded_requests_total[{RI}])) or vector(0)", "{{op}} {{outcome}}")]),
        ts("Forwarded call latency p99", "flashcore_forwarded_request_duration_seconds: the round trip to the owner node, by op (the forwarding cost).",
           [(f"histogram_quantile(0.99, sum by (le, op) (rate(flashcore_forwarded_request_duration_seconds_bucket[{RI}]))) or vector(0)", "{{op}}")], unit="s"),
        ts("Remote prepares settled in the time range", "flashcore_remote_prepares_settled_total: holds prepared for another node's order that this node settled from the journal after the order's deadline (its commit or abort never came: the cart's node died, froze or was cut off).",
           [("sum by (outcome) (increase(flashcore_remote_prepares_settled_total[$__range])) or vector(0)", "{{outcome}}")]),
    ],
)

DASHBOARDS = {
    "flash-sale.json": FLASH_SALE,
    "actors.json": ACTORS,
    "durability.json": DURABILITY,
    "edge.json": EDGE,
    "cluster.json": CLUSTER,
}


def render(d):
    return json.dumps(d, indent=2, ensure_ascii=False) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, d in DASHBOARDS.items():
        path = OUT / name
        text = render(d)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale dashboards (run python3 deploy/grafana/dashboards.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
