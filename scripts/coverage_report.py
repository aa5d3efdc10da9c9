#!/usr/bin/env python3
"""The coverage gate: per crate and per critical path, line coverage from an LCOV
export of the instrumented run (scripts/coverage.sh), plus the frontend's stores
and composables from Vitest's json-summary. Prints the summary table, writes it
(Markdown) to --out, and exits 1 when a figure is below its threshold.

Lines inside a `#[cfg(test)] mod … { … }` block are left out: they are the
tests themselves, which always run, and would only inflate the figure of the
file they sit in.
"""

import argparse
import json
import os
import re
import sys

# (what, source paths relative to the repository (a directory ends with /), threshold in %).
# README "Coverage" says why each number is what it is; a threshold is never
# lowered to pass: a short figure gets the tests it lacks.
CRATES = [
    ("flashcore-domain", ["domain/src/"], 85),
    ("flashcore-actors", ["actors/src/"], None),
    ("flashcore-persistence (adapters)", ["persistence/src/"], 70),
    ("flashcore-http (the HTTP edge)", ["http/src/"], 70),
    ("flashcore-http-ports (the HTTP edge)", ["http/ports/src/"], 70),
]
CRITICAL = [
    ("inventory rules (domain)", ["domain/src/inventory.rs"], 90),
    ("cart rules (domain)", ["domain/src/cart.rs"], 90),
    ("SKU actor", ["actors/src/sku.rs"], 90),
    ("cart actor and the checkout protocol", ["actors/src/cart.rs"], 90),
    ("journal writer (group commit)", ["actors/src/journal.rs"], 90),
    ("payments", ["actors/src/payments.rs"], 90),
]
FRONTEND = [
    ("frontend stores", "src/stores/", 80),
    ("frontend composables", "src/composables/", 80),
]

TEST_CFG = re.compile(r"^#\[cfg\((all\()?test\b")


def test_module_lines(path):
    """Line numbers (1-based) of every top-level `#[cfg(test)]` module in `path`."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError:
        return set()
    out = set()
    i = 0
    while i < len(lines):
        if TEST_CFG.match(lines[i]):
            j = i + 1
            while j < len(lines) and lines[j].startswith("#["):
                j += 1
            if j < len(lines) and re.match(r"^(pub(\(\w+\))? )?mod \w+ \{$", lines[j]):
                # rustfmt puts a top-level module's closing brace alone in column 0.
                k = j + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                out.update(range(i + 1, k + 2))
                i = k + 1
                continue
        i += 1
    return out


def read_lcov(path, root):
    """{repository-relative source path: {line: hits}} for the files under `root`."""
    files = {}
    current = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("SF:"):
                src = line[3:]
                src = os.path.realpath(src if os.path.isabs(src) else os.path.join(root, src))
                rel = os.path.relpath(src, root)
                current = None if rel.startswith("..") else files.setdefault(rel, {})
            elif line.startswith("DA:") and current is not None:
                num, hits = line[3:].split(",")[:2]
                current[int(num)] = max(current.get(int(num), 0), int(hits))
            elif line == "end_of_record":
                current = None
    for rel, lines in files.items():
        for n in test_module_lines(os.path.join(root, rel)):
            lines.pop(n, None)
    return files


def figure(files, paths):
    total = covered = 0
    for rel, lines in files.items():
        if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in paths):
            total += len(lines)
            covered += sum(1 for h in lines.values() if h > 0)
    return total, covered


def frontend_figures(summary_path):
    """(what, total, covered, threshold) of the frontend rows, from Vitest's json-summary."""
    if not summary_path or not os.path.exists(summary_path):
        return []
    with open(summary_path, encoding="utf-8") as f:
        summary = json.load(f)
    rows = []
    for what, folder, threshold in FRONTEND:
        total = covered = 0
        for name, data in summary.items():
            if name != "total" and f"/{folder}" in name.replace(os.sep, "/"):
                total += data["lines"]["total"]
                covered += data["lines"]["covered"]
        rows.append((what, total, covered, threshold))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--lcov", required=True)
    ap.add_argument("--frontend")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    root = os.path.realpath(args.root)
    files = read_lcov(args.lcov, root)
    sections = [
        ("Rust crates", [(w, *figure(files, p), t) for w, p, t in CRATES]),
        ("Critical paths", [(w, *figure(files, p), t) for w, p, t in CRITICAL]),
    ]
    front = frontend_figures(args.frontend)
    if front:
        sections.append(("Frontend unit tests (Vitest)", front))

    failures = []
    out = ["| scope | lines | covered | line coverage | threshold | |", "|---|---:|---:|---:|---:|---|"]
    for title, rows in sections:
        out.append(f"| **{title}** | | | | | |")
        for what, total, covered, threshold in rows:
            pct = 100.0 * covered / total if total else 0.0
            if threshold is None:
                verdict, shown = "", "—"
            elif total and pct >= threshold:
                verdict, shown = "ok", f"{threshold} %"
            else:
                verdict, shown = "**below**", f"{threshold} %"
                failures.append(f"{what}: {pct:.1f} % < {threshold} %" if total else f"{what}: no lines measured")
            out.append(f"| {what} | {total} | {covered} | {pct:.1f} % | {shown} | {verdict} |")
    table = "\n".join(out) + "\n"

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("# Line coverage\n\n" + table)
        if failures:
            f.write("\nBelow threshold:\n\n" + "".join(f"- {x}\n" for x in failures))
    print(table, end="")
    print(f"(written to {os.path.relpath(args.out)})")
    if failures:
        print("coverage below threshold:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
