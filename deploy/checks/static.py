#!/usr/bin/env python3
"""Static checks of deploy/ (scripts/check-deploy.sh runs each; no network).

    static.py dashboards        dashboard JSON: parses, panels have queries, data source uid
    static.py runbooks          every alert has runbook_url -> deploy/runbooks/<alert>.md, with its three sections
    static.py metric-names      every metric a panel or rule reads is one the Rust code emits (or a recording rule, or `up`)
    static.py secrets [--self-test]   no secret value anywhere under deploy/
    static.py k8s RENDERED.yaml       policy checks of the rendered overlay, and the CRDs kubernetes-validate has no schema for
    static.py compose           compose.yaml: what it mounts and builds exists, secrets are required variables

Each prints what it checked and exits non-zero with the reasons on failure.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

DEPLOY = Path(__file__).resolve().parent.parent
ROOT = DEPLOY.parent
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yaml"))
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RUNBOOK_BASE = "https://github.com/flashcore/flashcore/blob/main/deploy/runbooks/"
SECRET_NAME = "flashcore-secrets"
SECRET_VARS = ("DATABASE_URL", "FLASHCORE_MIGRATE_DATABASE_URL", "REDIS_URL", "FLASHCORE_TOKEN_SECRET", "FLASHCORE_ADMIN_KEY")
RUST_SOURCES = ("actors/src", "http/src", "persistence/src")
PROMETHEUS_BUILTIN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def fail(errors, what):
    if errors:
        for e in errors:
            print(f"  FAIL {e}", file=sys.stderr)
        print(f"{what}: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    return 0


def rules():
    """(file, group, rule) for every rule of deploy/prometheus/rules."""
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield path, group["name"], rule


def panel_queries():
    """(dashboard file, panel title, PromQL) for every dashboard query."""
    for path in DASHBOARDS:
        d = json.loads(path.read_text())
        for p in d.get("panels", []):
            for t in p.get("targets", []):
                yield path.name, p.get("title"), t.get("expr", "")


def provisioned_uid():
    uids = []
    for path in sorted((DEPLOY / "grafana" / "provisioning" / "datasources").glob("*.yaml")):
        for ds in yaml.safe_load(path.read_text()).get("datasources", []):
            if ds.get("type") == "prometheus":
                uids.append(ds.get("uid"))
    return uids


def check_dashboards():
    errors = []
    uids = provisioned_uid()
    if len(uids) != 1 or not uids[0]:
        return fail([f"expected exactly one provisioned Prometheus data source with a uid, found {uids}"], "dashboards")
    uid = uids[0]
    # The dashboard provider reads the directory compose mounts the JSON into.
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    providers = [
        p["options"]["path"]
        for f in sorted((DEPLOY / "grafana" / "provisioning" / "dashboards").glob("*.yaml"))
        for p in yaml.safe_load(f.read_text())["providers"]
    ]
    for path in providers:
        if f"./grafana/dashboards:{path}:ro" not in mounts:
            errors.append(f"dashboard provider path {path} is not where compose mounts deploy/grafana/dashboards")
    if not DASHBOARDS:
        errors.append("no dashboards in deploy/grafana/dashboards")
    seen_uids, panels = set(), 0
    for path in DASHBOARDS:
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            errors.append(f"{path.name}: not JSON: {e}")
            continue
        for key in ("uid", "title", "panels", "schemaVersion"):
            if key not in d:
                errors.append(f"{path.name}: no {key}")
        if d.get("uid") in seen_uids:
            errors.append(f"{path.name}: uid {d.get('uid')} used twice")
        seen_uids.add(d.get("uid"))
        ids = set()
        for p in d.get("panels", []):
            title = p.get("title", "?")
            if p.get("id") in ids:
                errors.append(f"{path.name}: panel id {p.get('id')} used twice")
            ids.add(p.get("id"))
            if not {"x", "y", "w", "h"} <= set(p.get("gridPos", {})):
                errors.append(f"{path.name} / {title}: no gridPos")
            if p.get("type") == "row":
                continue
            panels += 1
            if p.get("datasource", {}).get("uid") != uid:
                errors.append(f"{path.name} / {title}: data source uid {p.get('datasource')} is not {uid!r}")
            targets = p.get("targets") or []
            if not targets:
                errors.append(f"{path.name} / {title}: no targets")
            for t in targets:
                if not t.get("expr", "").strip():
                    errors.append(f"{path.name} / {title}: target {t.get('refId')} has no expr")
                if t.get("datasource", {}).get("uid") != uid:
                    errors.append(f"{path.name} / {title}: target {t.get('refId')} data source is not {uid!r}")
                try:
                    promql.selectors(promql.grafana_to_promql(t.get("expr", "")))
                except (ValueError, IndexError) as e:
                    errors.append(f"{path.name} / {title}: {e}")
    print(f"dashboards: {len(DASHBOARDS)} dashboards, {panels} panels, data source uid {uid!r}")
    return fail(errors, "dashboards")


def check_runbooks():
    errors, alerts = [], set()
    for path, _, rule in rules():
        name = rule.get("alert")
        if not name:
            continue
        alerts.add(name)
        url = rule.get("annotations", {}).get("runbook_url")
        if url != RUNBOOK_BASE + f"{name}.md":
            errors.append(f"{path.name}: {name}: runbook_url {url!r} is not {RUNBOOK_BASE}{name}.md")
        for key in ("summary", "description"):
            if not rule.get("annotations", {}).get(key):
                errors.append(f"{path.name}: {name}: no {key} annotation")
        if rule.get("labels", {}).get("severity") not in ("page", "ticket", "warning"):
            errors.append(f"{path.name}: {name}: severity must be page, ticket or warning")
        book = DEPLOY / "runbooks" / f"{name}.md"
        if not book.exists():
            errors.append(f"{name}: no runbook {book.relative_to(ROOT)}")
            continue
        text = book.read_text()
        if not text.startswith(f"# {name}\n"):
            errors.append(f"{book.name}: must start with '# {name}'")
        for section in ("## What it means", "## What to look at", "## What to do"):
            if section not in text:
                errors.append(f"{book.name}: no '{section}' section")
    for book in sorted((DEPLOY / "runbooks").glob("*.md")):
        if book.stem not in alerts:
            errors.append(f"{book.name}: no alert of that name")
    print(f"runbooks: {len(alerts)} alerts, each with runbook_url and deploy/runbooks/<alert>.md")
    return fail(errors, "runbooks")


def emitted_metrics():
    """Metric names that appear as string literals in the Rust sources."""
    names = set()
    for d in RUST_SOURCES:
        for f in (ROOT / d).rglob("*.rs"):
            names.update(re.findall(r'"(flashcore_[a-z0-9_]+)"', f.read_text()))
    return names


def recorded_names():
    return {rule["record"] for _, _, rule in rules() if "record" in rule}


def base_metric(name, emitted):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in emitted:
            return name[: -len(suffix)]
    return name


def check_metric_names():
    emitted, recorded = emitted_metrics(), recorded_names()
    errors, used = [], set()
    sources = [(f"{f.name}: {r.get('alert') or r.get('record')}", r["expr"]) for f, _, r in rules()]
    sources += [(f"{f} / {t}", promql.grafana_to_promql(e)) for f, t, e in panel_queries()]
    for where, expr in sources:
        for sel in promql.selectors(expr):
            if sel.name is None:
                errors.append(f"{where}: selector without a metric name: {sel}")
                continue
            used.add(sel.name)
            if sel.name in recorded or sel.name in PROMETHEUS_BUILTIN:
                continue
            if base_metric(sel.name, emitted) not in emitted:
                errors.append(f"{where}: {sel.name} is not emitted by {', '.join(RUST_SOURCES)}")
    print(f"metric names: {len(used)} names read by rules and panels; {len(emitted)} emitted by the Rust code")
    unused = sorted(emitted - {base_metric(n, emitted) for n in used})
    if unused:
        print(f"  emitted but on no dashboard or rule: {', '.join(unused)}")
    return fail(errors, "metric names")


# --- secrets ---------------------------------------------------------------

# A password in a URL (scheme://user:password@), unless it is an interpolated
# variable (${VAR}, $VAR, $(cmd)).
URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]*:(?P<pw>[^@\s/'\"]+)@", re.I)
# key = value / key: value for keys that hold secrets.
SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>[A-Za-z0-9_.-]*(?:password|passwd|secret|token|api[_-]?key|admin[_-]?key)[A-Za-z0-9_.-]*)"
    r"[\"']?\s*(?:=|:)\s*(?P<value>[^\s,#}]+)",
    re.I,
)
PRIVATE_KEY = re.compile("-----BEGIN [A-Z ]*" + "PRIVATE KEY-----")
FLASHCORE_API_KEY = re.compile(r"\bfck_[A-Za-z0-9_]{20,}")
AWS_KEY = re.compile(r"\bAKIA[0-9A-Z]{16}\b")


def _is_reference(value):
    v = value.strip("\"'")
    return (
        v == ""
        or v.startswith("$")  # ${VAR}, $VAR, $(cmd)
        or "$(" in v or "${" in v  # generated or interpolated: "fck_$(openssl rand -hex 24)"
        or v.startswith(("./", "/", "~/"))  # a file that holds it (--from-file=KEY=./file)
        or v in ("|", ">", ">-", "|-", "{", "[", "[]", "{}", "null", "~", "true", "false")
        or v.startswith("<")  # <placeholder>
        or re.fullmatch(r"[a-z_.]+(\([^)]*\))?", v) is not None  # a field or call name in code/text
        or v.startswith(("secretKeyRef", "valueFrom"))
    )


def scan_text(name, text):
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in URL_CREDENTIALS.finditer(line):
            if not _is_reference(m.group("pw")):
                problems.append(f"{name}:{n}: credentials in a URL")
        for m in SECRET_ASSIGNMENT.finditer(line) if not name.endswith((".py", ".rs")) else ():
            key, value = m.group("key"), m.group("value")
            if line[: m.start()].endswith(("$", "${")):
                continue  # the name of an interpolated variable: ${POSTGRES_PASSWORD:?...}
            if key.lower().endswith(("_file", "_ref", "keyref", "secretkeyref")) or _is_reference(value):
                continue
            # Names and lengths in prose ("at least 32 characters") are not values.
            if re.fullmatch(r"[A-Za-z][A-Za-z-]*|\d{1,3}", value.strip("\"'.,;)`")):
                continue
            problems.append(f"{name}:{n}: a value for {key}")
        if PRIVATE_KEY.search(line):
            problems.append(f"{name}:{n}: a private key")
        if FLASHCORE_API_KEY.search(line):
            problems.append(f"{name}:{n}: a flashcore API key")
        if AWS_KEY.search(line):
            problems.append(f"{name}:{n}: an AWS access key")
    # A Secret manifest with data is a secret in git, whatever it holds.
    if name.endswith((".yaml", ".yml")):
        try:
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    problems.append(f"{name}: a Secret manifest ({doc.get('metadata', {}).get('name')}); reference it, keep it out of git")
        except yaml.YAMLError:
            pass  # yamllint reports it
    return problems


def check_secrets(self_test=False):
    if self_test:
        planted = {
            "a.env": "DATABASE_URL=postgres://flashcore:" + "hunter2@db/flashcore\n",
            "a2.yaml": "url: redis://:" + "hunter2@redis:6379/0\n",
            "b.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\ndata:\n  k: " + "aHVudGVyMg==\n",
            "c.yaml": "env:\n  GF_SECURITY_ADMIN_PASSWORD: " + "hunter2\n",
            "d.sh": "export FLASHCORE_ADMIN_KEY=" + "0123456789abcdef0123456789abcdef01234567\n",
            "e.pem": "-----BEGIN RSA " + "PRIVATE KEY-----\n",
            "f.md": "curl -H 'Authorization: Bearer fck_" + "abcdefghijklmnopqrstuvwxyz'\n",
        }
        missed = [n for n, t in planted.items() if not scan_text(n, t)]
        clean = {
            "ok.yaml": "DATABASE_URL: postgres://flashcore:${POSTGRES_PASSWORD:?set it}@postgres:5432/flashcore\n"
            "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set}\n"
            "key: FLASHCORE_TOKEN_SECRET\n",
        }
        flagged = [p for n, t in clean.items() for p in scan_text(n, t)]
        if missed or flagged:
            return fail([f"self-test: planted secret not found in {m}" for m in missed] + [f"self-test: false positive {p}" for p in flagged], "secrets self-test")
        print(f"secrets self-test: {len(planted)} planted secrets found, references not flagged")
        return 0
    problems, files = [], 0
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix in (".png", ".jpg", ".pyc"):
            continue
        files += 1
        problems += scan_text(str(path.relative_to(ROOT)), path.read_text(errors="replace"))
    print(f"secrets: {files} files under deploy/ scanned")
    return fail(problems, "secrets")


# --- Kubernetes --------------------------------------------------------------


def check_k8s(rendered):
    text = Path(rendered).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    # The rendered output too: nothing secret may come out of the overlays.
    errors = scan_text(Path(rendered).name, text)

    def one(kind):
        items = by_kind.get(kind, [])
        if len(items) != 1:
            errors.append(f"expected one {kind}, found {len(items)}")
            return None
        return items[0]

    if "Secret" in by_kind:
        errors.append("the rendered manifests contain a Secret; secrets must only be referenced")
    dep, svc, sa, pdb = one("Deployment"), one("Service"), one("ServiceAccount"), one("PodDisruptionBudget")
    sm, pr, cm = one("ServiceMonitor"), one("PrometheusRule"), one("ConfigMap")
    if None in (dep, svc, sa, pdb, sm, pr, cm):
        return fail(errors, "kubernetes")

    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels", {})
    spec = pod["spec"]
    c = spec["containers"][0]

    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    strategy = dep["spec"].get("strategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if dep["spec"].get("replicas") != 1:
        errors.append("Deployment: one replica (only the store's lease owner is ever ready)")
    if strategy.get("type") == "RollingUpdate" and rolling.get("maxUnavailable") in (0, "0", "0%", None):
        errors.append("Deployment: a rolling update must not wait for the new pod to be ready (it stands by until the old one hands off): maxUnavailable 1")
    if not selects(dep["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("Deployment: selector does not match its pod template")
    if sa.get("automountServiceAccountToken") is not False or spec.get("automountServiceAccountToken") is not False:
        errors.append("ServiceAccount and pod must set automountServiceAccountToken: false")
    if spec.get("serviceAccountName") != sa["metadata"]["name"]:
        errors.append("pod does not use the ServiceAccount")
    probe = lambda p: (c.get(p, {}).get("httpGet", {}).get("path"), c.get(p, {}).get("httpGet", {}).get("port"))  # noqa: E731
    if probe("livenessProbe") != ("/health", "http"):
        errors.append(f"livenessProbe must GET /health on port http, is {probe('livenessProbe')}")
    if probe("readinessProbe") != ("/ready", "http"):
        errors.append(f"readinessProbe must GET /ready on port http, is {probe('readinessProbe')}")
    res = c.get("resources", {})
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(res.get(part, {})):
            errors.append(f"container resources.{part} must set cpu and memory")
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    if not psc.get("runAsNonRoot") or sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem"):
        errors.append("pod must run as non-root, without privilege escalation, on a read-only root filesystem")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        errors.append("container must drop ALL capabilities")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != 8080:
        errors.append("container port http must be 8080")

    # Secrets: only by reference, only to flashcore-secrets, never in the ConfigMap.
    env = {e["name"]: e for e in c.get("env", [])}
    for var in SECRET_VARS:
        ref = env.get(var, {}).get("valueFrom", {}).get("secretKeyRef")
        if not ref or ref.get("name") != SECRET_NAME or ref.get("key") != var:
            errors.append(f"{var} must come from secretKeyRef {SECRET_NAME}/{var}")
        if "value" in env.get(var, {}):
            errors.append(f"{var} has a literal value")
        if var in cm.get("data", {}):
            errors.append(f"{var} is in the ConfigMap")
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref.get("name") != SECRET_NAME:
            errors.append(f"{e['name']} references Secret {ref.get('name')}, not {SECRET_NAME}")
    if not any(s.get("configMapRef", {}).get("name") == cm["metadata"]["name"] for s in c.get("envFrom", [])):
        errors.append("container does not take its configuration from the generated ConfigMap")

    # Service, PDB and ServiceMonitor select the pods / the Service.
    if not selects(svc["spec"]["selector"], pod_labels):
        errors.append("Service does not select the pods")
    svc_ports = {p["name"] for p in svc["spec"]["ports"]}
    if not selects(pdb["spec"]["selector"]["matchLabels"], pod_labels):
        errors.append("PodDisruptionBudget does not select the pods")
    if not selects(sm["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels", {})):
        errors.append("ServiceMonitor does not select the Service")
    for ep in sm["spec"].get("endpoints", []):
        if ep.get("port") not in svc_ports or ep.get("path", "/metrics") != "/metrics":
            errors.append(f"ServiceMonitor endpoint {ep} is not the Service's http port and /metrics")
    job = svc["metadata"].get("labels", {}).get(sm["spec"].get("jobLabel", ""), svc["metadata"]["name"])
    if job != "flashcore":
        errors.append(f"the scrape job would be {job!r}; the rules expect job=\"flashcore\"")
    ns = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if len(ns) != 1:
        errors.append(f"resources are in several namespaces: {ns}")

    # NetworkPolicy: a default deny, and flashcore's egress is Postgres, Redis, DNS only.
    nps = by_kind.get("NetworkPolicy", [])
    deny = [n for n in nps if n["spec"].get("podSelector") == {} and set(n["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
            and not n["spec"].get("ingress") and not n["spec"].get("egress")]
    if not deny:
        errors.append("no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)")
    mine = [n for n in nps if n["spec"].get("podSelector", {}).get("matchLabels") and selects(n["spec"]["podSelector"]["matchLabels"], pod_labels)]
    egress = {(p.get("port"), p.get("protocol", "TCP")) for n in mine for r in n["spec"].get("egress", []) for p in r.get("ports", [])}
    if egress != {(5432, "TCP"), (6379, "TCP"), (53, "UDP"), (53, "TCP")}:
        errors.append(f"flashcore egress must be exactly 5432/TCP, 6379/TCP, 53/UDP+TCP; is {sorted(egress, key=str)}")
    if any(not r.get("ports") for n in mine for r in n["spec"].get("egress", [])):
        errors.append("an egress rule without ports allows everything")
    ingress = {(p.get("port"), p.get("protocol", "TCP")) for n in mine for r in n["spec"].get("ingress", []) for p in r.get("ports", [])}
    if ingress != {(8080, "TCP")}:
        errors.append(f"flashcore ingress must be 8080/TCP only; is {ingress}")

    # The PrometheusRule embeds exactly the rule files, and they pass promtool.
    groups = [g for path in RULES for g in yaml.safe_load(path.read_text())["groups"]]
    if pr["spec"].get("groups") != groups:
        errors.append("PrometheusRule groups differ from deploy/prometheus/rules (run deploy/k8s/prometheusrule.py)")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump({"groups": pr["spec"]["groups"]}, f)
        f.flush()
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
        if r.returncode:
            errors.append(f"promtool rejects the PrometheusRule's groups: {r.stdout}{r.stderr}")
    for d in (sm, pr):
        if d["apiVersion"] != "monitoring.coreos.com/v1":
            errors.append(f"{d['kind']}: apiVersion must be monitoring.coreos.com/v1")
    print(f"kubernetes: {len(docs)} rendered objects ({', '.join(sorted(by_kind))}); policies and CRDs checked")
    return fail(errors, "kubernetes")


def check_compose():
    errors = []
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc.get("services", {})
    for name in ("flashcore", "postgres", "redis", "prometheus", "grafana", "otel-collector"):
        if name not in services:
            errors.append(f"no {name} service")
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            errors.append(f"{name}: neither image nor build")
        if ":" in svc.get("image", "") and svc["image"].rsplit(":", 1)[1] in ("latest", ""):
            errors.append(f"{name}: pin the image tag ({svc['image']})")
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith((".", "/")) and not (DEPLOY / src).exists():
                errors.append(f"{name}: mounts {src}, which does not exist under deploy/")
        build = svc.get("build")
        if build:
            ctx = (DEPLOY / build["context"]).resolve()
            if not (ctx / build["dockerfile"]).exists():
                errors.append(f"{name}: no Dockerfile {build['dockerfile']} in context {ctx}")
        for key, value in (svc.get("environment") or {}).items():
            value = str(value)
            if re.search(r"password|secret|admin_key", key, re.I) and not re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value):
                errors.append(f"{name}: {key} must be a required variable ${{VAR:?...}}, not a value")
    fc = services.get("flashcore", {})
    env = fc.get("environment", {})
    if env.get("FLASHCORE_ADDR") != "0.0.0.0:8080":
        errors.append("flashcore must listen on 0.0.0.0:8080 in compose")
    if "/ready" not in fc.get("healthcheck", {}).get("test", []):
        errors.append("flashcore's compose health check must probe /ready (FlashcoreNotReady counts those probes)")
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in prom_cfg["scrape_configs"] if job["job_name"] == "flashcore" for sc in job["static_configs"] for t in sc["targets"]]
    if targets != ["flashcore:8080"]:
        errors.append(f"prometheus.yml job flashcore must scrape flashcore:8080, scrapes {targets}")
    print(f"compose: {len(services)} services; mounts, build and secret variables checked")
    return fail(errors, "compose")


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[0]
    if cmd == "dashboards":
        return check_dashboards()
    if cmd == "runbooks":
        return check_runbooks()
    if cmd == "metric-names":
        return check_metric_names()
    if cmd == "secrets":
        return check_secrets(self_test="--self-test" in argv[1:])
    if cmd == "compose":
        return check_compose()
    if cmd == "k8s" and len(argv) == 2:
        return check_k8s(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
