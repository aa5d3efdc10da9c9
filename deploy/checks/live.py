#!/usr/bin/env python3
"""Every dashboard query and every rule against a real Prometheus that scrapes
a real flashcore (after deploy/checks/drill.py), for scripts/check-deploy.sh.

What must hold (deploy/README.md, "What the checks prove"):

1. Every expression (each panel query, each rule) evaluates without error.
   Prometheus loaded the rule files, and every rule's health is "ok".
2. Every panel query returns at least one series.
3. Every recording rule has produced series.
4. Every vector selector in a panel or rule reads real series: its metric
   exists, and each of its label matchers, on its own, matches series of that
   metric (so names, label names and label values are real; the conjunction
   may be empty, e.g. route="/ready" with status="503" on a ready node). This
   is how a condition that is only non-empty while firing (x > threshold) is
   checked: through the series it reads, not through its result. The only
   exemptions are EVENT_ONLY: counters the drill cannot provoke from outside,
   which must then be absent (flashcore creates a counter on its first
   increment) and emitted by the Rust code (static.py metric-names).
5. The alerts the drill provoked are pending or firing; the alerts that
   must be quiet on a healthy node (scrape up, ready, no quarantine) are.
"""

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yaml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))

# Series only a failure creates; the drill cannot make an actor fail over HTTP
# (the Rust tests inject faults in-process), nor make two writers share a
# store. promtool tests cover the alerts that read them, on synthetic series.
EVENT_ONLY = {
    "flashcore_actor_failures_total": "an actor panicked or its handler failed",
    "flashcore_actor_restarts_total": "a supervisor restarted a failed actor",
    "flashcore_actor_quarantines_total": "an entity exceeded its restart intensity",
    # Set when recovery finds a SKU sold beyond its total: two writers on one store.
    "flashcore_sku_oversold_units": "a SKU's journal holds more units sold than its total",
    # Cluster mode only (the drill runs one node and a standby, which share no
    # shards): tests/api/cluster.rs and persistence/tests/cross_node.rs drive them.
    "flashcore_forwarded_requests_total": "a call forwarded to the node holding a shard",
    "flashcore_forwarded_request_duration_seconds_bucket": "a call forwarded to the node holding a shard",
    "flashcore_remote_prepares_settled_total": "a hold prepared for another node's order settled after its deadline",
}

# Provoked by the drill: journal and snapshot store refusing writes, Redis
# stopped, and 5xx checkouts from those (the availability budget burns).
MUST_BE_ACTIVE = [
    "FlashcoreJournalCommitErrors",
    "FlashcoreSnapshotErrors",
    "FlashcoreRedisFallback",
    "FlashcoreCheckoutAvailabilityFastBurn",
    "FlashcoreCheckoutAvailabilitySlowBurn",
]
# Quiet on the drill's node: it is scraped, owns the store, is ready, no actor
# failed and nothing is oversold.
MUST_BE_QUIET = [
    "FlashcoreTargetDown",
    "FlashcoreNotReady",
    "FlashcoreNoStoreOwner",
    "FlashcoreActorQuarantined",
    "FlashcoreActorRestartStorm",
    "FlashcoreOversold",
]


class Prom:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def get(self, path, **params):
        url = f"{self.base}{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)

    def query(self, expr):
        """(error or None, result list)."""
        doc = self.get("/api/v1/query", query=expr)
        if doc.get("status") != "success":
            return f"{doc.get('errorType')}: {doc.get('error')}", []
        return None, doc["data"]["result"]


def unix(rfc3339):
    """Prometheus' lastEvaluation (RFC 3339, nanoseconds) as unix seconds."""
    m = re.fullmatch(r"(.+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", rfc3339)
    base = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return base.timestamp() + float("0." + (m.group(2) or "0"))


def wait_scraped(prom, after, seconds):
    """Until Prometheus has scraped flashcore after `after` (unix time), and every rule
    group has been evaluated twice since that scrape (recording rules, then the
    alerts that read what they recorded)."""
    deadline = time.monotonic() + seconds
    scraped = None
    while time.monotonic() < deadline:
        if scraped is None:
            _, up = prom.query('timestamp(up{job="flashcore"})')
            if up and float(up[0]["value"][1]) > after:
                scraped = float(up[0]["value"][1])
        else:
            groups = prom.get("/api/v1/rules").get("data", {}).get("groups", [])
            interval = max((g.get("interval", 1) for g in groups), default=1)
            if groups and all(unix(g["lastEvaluation"]) > scraped + interval for g in groups):
                return True
        time.sleep(0.2)
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--after", type=float, required=True, help="unix time the drill ended")
    args = ap.parse_args()
    prom = Prom(args.prometheus)
    errors = []

    if not wait_scraped(prom, args.after, 30):
        print("  FAIL Prometheus did not scrape flashcore after the drill within 30 s", file=sys.stderr)
        return 1

    # Rules as Prometheus loaded them: all of ours, each healthy.
    ours = {}
    for path in RULES:
        for g in yaml.safe_load(path.read_text())["groups"]:
            for r in g["rules"]:
                ours[r.get("alert") or r.get("record")] = (path.name, r)
    loaded = {}
    for g in prom.get("/api/v1/rules")["data"]["groups"]:
        for r in g["rules"]:
            loaded[r["name"]] = r
    for name in ours:
        r = loaded.get(name)
        if r is None:
            errors.append(f"rule {name}: not loaded by Prometheus")
        elif r.get("health") != "ok":
            errors.append(f"rule {name}: health {r.get('health')}: {r.get('lastError')}")

    # Every expression evaluates; every selector reads real series.
    checked = set()

    def check_selectors(where, expr):
        for sel in promql.selectors(expr):
            key = str(sel)
            if key in checked:
                continue
            checked.add(key)
            err, res = prom.query(f"count({sel.name})")
            if err:
                errors.append(f"{where}: {sel.name}: {err}")
                continue
            if not res:
                if sel.name in EVENT_ONLY:
                    continue
                errors.append(f"{where}: metric {sel.name} has no series")
                continue
            for m in sel.matchers:
                err, res = prom.query(f"count({sel.promql([m])})")
                if err or not res:
                    errors.append(f"{where}: no series of {sel.name} match {m[0]}{m[1]}\"{m[2]}\" {err or ''}")

    panels = 0
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for p in d["panels"]:
            for t in p.get("targets", []):
                panels += 1
                where = f"{path.name} / {p['title']} / {t['refId']}"
                expr = promql.grafana_to_promql(t["expr"])
                err, res = prom.query(expr)
                if err:
                    errors.append(f"{where}: {err}")
                elif not res:
                    errors.append(f"{where}: no series")
                check_selectors(where, expr)

    recorded = 0
    for name, (file, r) in ours.items():
        where = f"{file}: {name}"
        err, _ = prom.query(r["expr"])
        if err:
            errors.append(f"{where}: {err}")
        check_selectors(where, r["expr"])
        if "record" in r:
            recorded += 1
            err, res = prom.query(name)
            if err or not res:
                errors.append(f"{where}: the recording rule has no series {err or ''}")

    alerts = {}
    for a in prom.get("/api/v1/alerts")["data"]["alerts"]:
        alerts.setdefault(a["labels"]["alertname"], set()).add(a["state"])
    for name in MUST_BE_ACTIVE:
        if not alerts.get(name, set()) & {"pending", "firing"}:
            errors.append(f"alert {name}: not pending or firing after the drill provoked it")
    for name in MUST_BE_QUIET:
        if alerts.get(name):
            errors.append(f"alert {name}: {sorted(alerts[name])} on a healthy, ready node")

    absent = [m for m in EVENT_ONLY if not prom.query(f"count({m})")[1]]
    print(f"  {panels} panel queries, {len(ours)} rules ({recorded} recording), {len(checked)} distinct selectors checked")
    active = ", ".join(f"{k} ({'/'.join(sorted(v))})" for k, v in sorted(alerts.items()))
    print(f"  active alerts: {active or 'none'}")
    if absent:
        print(f"  not provokable over HTTP, absent as expected: {', '.join(absent)}")
    for e in errors:
        print(f"  FAIL {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
