#!/usr/bin/env python3
"""A short, bounded drill against a real flashcore, for scripts/check-deploy.sh.

It drives the traffic and the faults that make every metric the dashboards
and alerts read appear in /metrics, and checks flashcore answers each as
documented (README): a flash sale on FLASH-SNEAKER-01 past its stock (no
oversell), declined payments, idempotent replays and a reused key, 404s,
unauthorized admin calls, a per-SKU rate limit, a request past its deadline,
an actor gate past its in-flight bound, a journal that refuses commits and a
snapshot store that refuses writes (Postgres triggers in the drill's own
database), Redis stopped (SIGSTOP), idle carts passivated, lapsed holds, and
a second process on the same store standing by (probed like the owner, so the
NotReady alert must tell a standby from a stuck owner).

Counters in flashcore start at their first increment, and rate() needs two
samples, so each fault lasts until Prometheus has scraped its counter at two
different values (polled with a deadline).

Expects flashcore started with FLASHCORE_RATE_SKU=20:20, FLASHCORE_CART_MAX_INFLIGHT=2,
FLASHCORE_REQUEST_TIMEOUT_MS=1500, FLASHCORE_HOLD_TTL_MS=3000, FLASHCORE_CART_IDLE_SECS=2
(scripts/check-deploy.sh sets them). Every request has a timeout; every loop a bound.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

HOT = "FLASH-SNEAKER-01"
HOT_STOCK = 100


class Drill:
    def __init__(self, args):
        self.base = urllib.parse.urlparse(args.base)
        self.standby = urllib.parse.urlparse(args.standby)
        self.admin = args.admin_key
        self.prom = args.prometheus.rstrip("/")
        self.db = args.database
        self.pg = args.pg
        self.redis_pid = args.redis_pid
        self.local = threading.local()
        self.problems = []
        self.stop_probes = threading.Event()

    # --- HTTP -------------------------------------------------------------

    def conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection(self.base.hostname, self.base.port, timeout=10)
            self.local.conn = c
        return c

    def req(self, method, path, body=None, token=None, key=None, headers=None):
        h = {"accept": "application/json"}
        if body is not None:
            h["content-type"] = "application/json"
        if token:
            h["authorization"] = f"Bearer {token}"
        if key:
            h["idempotency-key"] = key
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                raw = r.read()
                break
            except (http.client.HTTPException, ConnectionError, TimeoutError, OSError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = raw.decode(errors="replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, doc

    def expect(self, what, got, *wanted):
        if got not in wanted:
            self.problems.append(f"{what}: HTTP {got}, expected {' or '.join(map(str, wanted))}")
            return False
        return True

    def new_cart(self):
        s, _, d = self.req("POST", "/v1/carts")
        if not self.expect("create a cart", s, 201):
            raise RuntimeError(f"cannot create carts: {s} {d}")
        return d["cart_id"], d["token"]

    def set_item(self, cart, token, sku, qty, limited=None):
        """PUT a line; a 429 (per-SKU limit) is retried after a short wait."""
        for _ in range(60):
            s, _, d = self.req("PUT", f"/v1/carts/{cart}/items/{sku}", {"quantity": qty}, token=token)
            if s != 429:
                return s, d
            if limited is not None:
                limited.append(1)
            time.sleep(0.1)
        return s, d

    def checkout(self, cart, token, key, payment="tok_visa", email="drill@example.com"):
        return self.req("POST", f"/v1/carts/{cart}/checkout", {"payment": {"token": payment}, "email": email}, token=token, key=key)

    # --- Prometheus ---------------------------------------------------------

    def prom_value(self, query):
        url = f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.load(r)
        result = doc["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_prom(self, what, query, pred, seconds=20):
        """Polls Prometheus until `pred(value)` holds; records a problem at the deadline."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            v = self.prom_value(query)
            if v is not None and pred(v):
                return v
            time.sleep(0.25)
        self.problems.append(f"{what}: Prometheus never saw it ({query})")
        return None

    def wait_rising(self, what, metric, seconds=20, act=None):
        """Until Prometheus has scraped `metric` at two values (so rate() sees an increase),
        calling `act()` between polls to keep the fault's effect coming."""
        deadline = time.monotonic() + seconds
        first = None
        while time.monotonic() < deadline:
            if act:
                act()
            v = self.prom_value(f"sum({metric})")
            if v is not None and first is None:
                first = v
            if first is not None and v is not None and v > first:
                return v
            time.sleep(0.2)
        self.problems.append(f"{what}: Prometheus did not see {metric} rise within {seconds} s")
        return None

    # --- Postgres -------------------------------------------------------------

    def psql(self, sql):
        subprocess.run(
            ["psql", f"{self.pg}/{self.db}", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql],
            check=True, capture_output=True, text=True, timeout=15,
        )

    def fail_table(self, table, name):
        self.psql(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION 'check-deploy drill: {table} refuses writes'; END $$; "
            f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
        )

    def heal_table(self, table, name):
        self.psql(f"DROP TRIGGER IF EXISTS {name} ON {table}; DROP FUNCTION IF EXISTS {name}();")

    # --- phases ----------------------------------------------------------------

    def get_standby(self, path):
        c = http.client.HTTPConnection(self.standby.hostname, self.standby.port, timeout=5)
        try:
            c.request("GET", path, headers={"accept": "application/json"})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw)
            except ValueError:
                return r.status, raw.decode(errors="replace")
        finally:
            c.close()

    def probes(self):
        """What a kubelet does, on both processes: /health and /ready, twice a second."""
        while not self.stop_probes.wait(0.5):
            try:
                self.req("GET", "/health")
                self.req("GET", "/ready")
                self.get_standby("/health")
                self.get_standby("/ready")
            except OSError:
                pass

    def standby_check(self):
        """README "Ownership": a second process on the store stands by: alive, not
        ready, and the API answers 503 standby."""
        for path, want in (("/health", 200), ("/ready", 503), (f"/v1/products/{HOT}", 503)):
            s, d = self.get_standby(path)
            if s != want or (want == 503 and not (isinstance(d, dict) and d.get("code") == "standby")):
                self.problems.append(f"the standby answered {path} with {s} {d}, expected {want}" + (" standby" if want == 503 else ""))

    def browse(self):
        s, _, d = self.req("GET", "/v1/products?limit=50")
        self.expect("list products", s, 200)
        items = d.get("items") or d.get("products") or []
        others = [p["sku"] for p in items if p["sku"] not in (HOT, "UPCOMING-CONSOLE-01") and p.get("available", 0) >= 50]
        if len(others) < 2:
            raise RuntimeError(f"the demo catalog has no two products with stock besides {HOT}: {d}")
        self.other, self.spare = others[0], others[1]
        for _ in range(10):
            self.expect("a product page", self.req("GET", f"/v1/products/{HOT}")[0], 200)
            self.expect("a product page", self.req("GET", f"/v1/products/{self.other}")[0], 200)
            self.expect("the product list", self.req("GET", "/v1/products?limit=20")[0], 200)
        for _ in range(3):
            self.expect("an unknown product", self.req("GET", "/v1/products/NO-SUCH-SKU-404")[0], 404)

    def admin_calls(self):
        self.expect("admin call without a key", self.req("GET", "/v1/admin/actors")[0], 401)
        self.expect("admin call with a wrong key", self.req("GET", "/v1/admin/journal", token="fck_" + "0" * 40)[0], 401)
        self.expect("admin actors", self.req("GET", "/v1/admin/actors", token=self.admin)[0], 200)
        self.expect("admin journal", self.req("GET", "/v1/admin/journal", token=self.admin)[0], 200)
        self.expect("an unknown order", self.req("GET", f"/v1/orders/{uuid.uuid4()}", token=self.admin)[0], 404)
        s, _, _ = self.req("POST", f"/v1/admin/products/{self.other}/stock", {"restock": 5}, token=self.admin)
        self.expect("an admin restock", s, 200)
        cart, _ = self.new_cart()
        self.expect("a cart without its token", self.req("GET", f"/v1/carts/{cart}")[0], 401)

    def flash_sale(self, buyers=55):
        limited, sold, declined, replays = [], [], [], []

        def buyer(i):
            cart, token = self.new_cart()
            s, _ = self.set_item(cart, token, HOT, 2, limited)
            if s == 409:
                return "out-of-stock"
            if not self.expect("add the hot SKU", s, 200):
                return "add-failed"
            if i % 11 == 0:
                s, _, d = self.checkout(cart, token, str(uuid.uuid4()), payment="tok_decline")
                if self.expect("a declined payment", s, 402):
                    declined.append(1)
            key = str(uuid.uuid4())
            s, h, d = self.checkout(cart, token, key)
            if s != 201:
                self.expect("a checkout", s, 201, 409)
                return f"checkout-{s}"
            sold.append(sum(line["quantity"] for line in d["lines"]) if isinstance(d, dict) and "lines" in d else 2)
            if i % 7 == 0:
                s, h, _ = self.checkout(cart, token, key)
                if self.expect("a replayed checkout", s, 201) and h.get("idempotent-replayed") == "true":
                    replays.append(1)
                s, _, _ = self.checkout(cart, token, key, email="other@example.com")
                self.expect("a reused idempotency key", s, 422)
            return "sold"

        with ThreadPoolExecutor(8) as pool:
            outcomes = Counter(pool.map(buyer, range(buyers)))
        # Abandoned carts: their holds lapse after FLASHCORE_HOLD_TTL_MS.
        for _ in range(4):
            cart, token = self.new_cart()
            self.expect("an abandoned cart's line", self.set_item(cart, token, self.spare, 1)[0], 200)
        units = sum(sold)
        s, _, d = self.req("GET", f"/v1/products/{HOT}")
        available = d.get("available") if isinstance(d, dict) else None
        print(f"  flash sale: {dict(outcomes)}; {units} units sold of {HOT_STOCK}, {available} available; "
              f"{len(limited)} answers 429, {len(declined)} declined, {len(replays)} replays")
        if units > HOT_STOCK or available is None or available < 0 or units + available > HOT_STOCK:
            self.problems.append(f"oversell: {units} sold, {available} available of {HOT_STOCK}")
        if outcomes["out-of-stock"] == 0:
            self.problems.append("the flash sale never ran out of stock")
        if not limited:
            self.problems.append("no cart edit was rate limited (FLASHCORE_RATE_SKU=20:20 expected)")
        if not replays:
            self.problems.append("no checkout was replayed with Idempotent-Replayed: true")

    def shed_and_timeout(self):
        cart, token = self.new_cart()
        self.expect("add a line", self.set_item(cart, token, self.other, 1)[0], 200)
        result = {}

        def slow():
            result["checkout"] = self.checkout(cart, token, str(uuid.uuid4()), payment="tok_slow")[0]

        t = threading.Thread(target=slow)
        t.start()
        # While the slow checkout holds the cart actor (2 s), bursts of reads pass
        # its in-flight bound; until one is shed or the checkout is over.
        answers, shed = [], []
        with ThreadPoolExecutor(4) as pool:
            while t.is_alive() and not shed:
                burst = list(pool.map(lambda _: self.req("GET", f"/v1/carts/{cart}", token=token), range(4)))
                answers += [s for s, _, _ in burst]
                shed += [d for s, _, d in burst if s == 503 and isinstance(d, dict) and d.get("code") == "overloaded"]
        t.join(timeout=10)
        print(f"  shed: {len(shed)} of {len(answers)} reads refused 503 overloaded; the tok_slow checkout answered {result.get('checkout')}")
        if not shed:
            self.problems.append(f"no request was shed with 503 overloaded (FLASHCORE_CART_MAX_INFLIGHT=2): {Counter(answers)}")
        self.expect("a checkout past FLASHCORE_REQUEST_TIMEOUT_MS", result.get("checkout"), 503)

    def ready_carts(self, n):
        carts = []
        for _ in range(n):
            cart, token = self.new_cart()
            self.expect("add a line", self.set_item(cart, token, self.other, 1)[0], 200)
            carts.append((cart, token, str(uuid.uuid4())))
        return carts

    def journal_outage(self):
        carts = self.ready_carts(6)
        self.fail_table("orders", "fc_drill_journal")
        try:
            first = carts[0]
            self.expect("a checkout while the journal fails", self.checkout(*first)[0], 503)
            self.wait_prom("the journal error counter", "sum(flashcore_journal_errors_total)", lambda v: v >= 1)
            pending = list(carts[1:])

            def one_more():
                if pending:
                    self.expect("a checkout while the journal fails", self.checkout(*pending.pop())[0], 503)

            self.wait_rising("journal errors", "flashcore_journal_errors_total", act=one_more)
        finally:
            self.heal_table("orders", "fc_drill_journal")
        # README: when the store returns, the same checkout retry succeeds.
        self.expect("the same checkout retried after the journal healed", self.checkout(*carts[0])[0], 201)

    def snapshot_outage(self):
        carts = self.ready_carts(2)
        self.fail_table("snapshots", "fc_drill_snapshots")
        try:
            n = [0]

            def dirty():
                cart, token, _ = carts[n[0] % 2]
                n[0] += 1
                self.set_item(cart, token, self.other, 1 + n[0] % 2)

            self.wait_rising("snapshot errors", "flashcore_snapshot_errors_total", act=dirty)
        finally:
            self.heal_table("snapshots", "fc_drill_snapshots")
        self.wait_rising("snapshots written after the store healed", "flashcore_snapshots_written_total")

    def redis_outage(self):
        carts = self.ready_carts(4)
        os.kill(self.redis_pid, signal.SIGSTOP)
        try:
            state = {}

            def degraded_traffic():
                cart, token, _ = carts[0]
                self.expect("a cart edit with Redis stopped (local limits)", self.set_item(cart, token, self.other, 2)[0], 200)
                c = carts[1 + len(state) % 3]
                s, _, d = self.checkout(*c)
                state[len(state)] = (s, d.get("code") if isinstance(d, dict) else None)

            self.wait_rising("Redis fallback", "flashcore_redis_fallback_total", act=degraded_traffic)
            self.wait_rising("Redis fallback for idempotency", 'flashcore_redis_fallback_total{use="idempotency"}', act=degraded_traffic)
            s, _, d = self.req("GET", "/ready")
            if s != 200 or not isinstance(d, dict) or d.get("shared_state") != "degraded":
                self.problems.append(f"/ready with Redis stopped: {s} {d}, expected 200 with shared_state degraded")
            codes = Counter(state.values())
            if (503, "idempotency-unavailable") not in codes:
                self.problems.append(f"checkouts with Redis stopped did not fail closed: {dict(codes)}")
        finally:
            os.kill(self.redis_pid, signal.SIGCONT)
        # Recovers by itself: a checkout goes through and /ready says ok again.
        deadline = time.monotonic() + 30
        cart, token, key = carts[3]
        while time.monotonic() < deadline:
            s = self.checkout(cart, token, key)[0]
            self.set_item(*carts[0][:2], self.other, 1)
            ready = self.req("GET", "/ready")[2]
            if s == 201 and isinstance(ready, dict) and ready.get("shared_state") == "ok":
                break
            time.sleep(0.3)
        else:
            self.problems.append("flashcore did not recover within 30 s of Redis answering again")

    def passivation(self):
        cart, token = self.new_cart()
        self.expect("add a line", self.set_item(cart, token, self.other, 1)[0], 200)
        self.wait_rising("cart passivation", "flashcore_actor_passivations_total", seconds=20)
        s, _, d = self.req("GET", f"/v1/carts/{cart}", token=token)
        lines = d.get("lines", []) if isinstance(d, dict) else []
        if not self.expect("a passivated cart, read again", s, 200) or not lines:
            self.problems.append(f"a passivated cart came back without its line: {d}")

    def run(self):
        probes = threading.Thread(target=self.probes, daemon=True)
        probes.start()
        steps = [
            ("standby", self.standby_check),
            ("browse", self.browse),
            ("admin and auth", self.admin_calls),
            ("flash sale", self.flash_sale),
            ("shed and timeout", self.shed_and_timeout),
            ("journal outage", self.journal_outage),
            ("snapshot outage", self.snapshot_outage),
            ("Redis outage", self.redis_outage),
            ("passivation", self.passivation),
        ]
        for name, step in steps:
            t0 = time.monotonic()
            step()
            print(f"  {name}: {time.monotonic() - t0:.1f} s")
        self.wait_prom("lapsed holds", "sum(flashcore_holds_expired_total)", lambda v: v >= 1, seconds=15)
        self.stop_probes.set()
        probes.join(timeout=5)
        for p in self.problems:
            print(f"  FAIL {p}", file=sys.stderr)
        return 1 if self.problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="flashcore base URL (the owner)")
    ap.add_argument("--standby", required=True, help="a second flashcore on the same store")
    ap.add_argument("--admin-key", required=True)
    ap.add_argument("--prometheus", required=True, help="Prometheus base URL")
    ap.add_argument("--pg", required=True, help="postgres://user@host:port (no database)")
    ap.add_argument("--database", required=True)
    ap.add_argument("--redis-pid", required=True, type=int)
    return Drill(ap.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
