#!/usr/bin/env python3
"""Checks deploy/grafana/weir.json, the Grafana dashboard (python3 standard library only).

Always: the file is a Grafana dashboard JSON model whose panels (rows' nested panels
included) all query the `${datasource}` variable, with unique ids, and whose every
`$variable` is defined. Then, as asked:

  --metrics FILE   every weir_* metric an expression names is one weir exports. FILE has one
                   `NAME TYPE` line per family (the `# TYPE` lines of a real scrape; the e2e
                   test crates/weir/tests/grafana.rs writes it from a running weir). A
                   histogram must be used as NAME_bucket, NAME_sum or NAME_count.
  --promtool       every expression parses as PromQL: with Grafana's variables replaced by
                   concrete values, they become recording rules in a temporary rules file
                   checked by `promtool check rules` (.ci/ops-checks.sh runs this). And
                   every 5xx ratio evaluates (`promtool test rules`) to 0, not to no
                   data, over traffic that had no 5xx (its numerator has no series).

Exits 1 naming every problem found.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATASOURCE_UID = "${datasource}"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's global variables, with values Prometheus accepts where Grafana would put them.
BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# $name, ${name}, ${name:format}, [[name]] (Grafana's interpolation syntaxes).
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
METRIC = re.compile(r"\bweir_[a-z0-9_]+")
LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", re.S)


def walk_panels(panels):
    """Every panel, the ones nested in (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def expressions(dashboard):
    """(where, PromQL expression) for every query the dashboard runs."""
    out = []
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr", "").strip():
                out.append((f"panel {panel.get('title')!r} {target.get('refId')}", target["expr"]))
    for ann in dashboard.get("annotations", {}).get("list", []):
        if ann.get("expr", "").strip():
            out.append((f"annotation {ann.get('name')!r}", ann["expr"]))
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query or ""
        # label_values(SELECTOR, label): the selector is PromQL.
        m = LABEL_VALUES.match(query)
        out.append((f"variable ${var.get('name')}", m.group(1) if m else query))
    return out


def check_structure(dashboard, problems):
    if not isinstance(dashboard, dict) or not isinstance(dashboard.get("panels"), list):
        problems.append("not a dashboard: no top-level panels list")
        return
    if not isinstance(dashboard.get("schemaVersion"), int):
        problems.append("schemaVersion missing")
    variables = dashboard.get("templating", {}).get("list", [])
    ds = [v for v in variables if v.get("name") == "datasource"]
    if not ds or ds[0].get("type") != "datasource" or ds[0].get("query") != "prometheus":
        problems.append("no `datasource` variable of type datasource querying prometheus")
    seen = set()
    for panel in walk_panels(dashboard["panels"]):
        title = panel.get("title")
        if panel.get("id") in seen:
            problems.append(f"panel {title!r}: duplicate id {panel.get('id')}")
        seen.add(panel.get("id"))
        if "gridPos" not in panel:
            problems.append(f"panel {title!r}: no gridPos")
        if panel.get("type") == "row":
            continue
        if not panel.get("targets"):
            problems.append(f"panel {title!r}: no queries")
        for item in [panel] + panel.get("targets", []):
            uid = (item.get("datasource") or {}).get("uid")
            if uid != DATASOURCE_UID:
                problems.append(f"panel {title!r}: datasource {uid!r}, not {DATASOURCE_UID}")
    for var in variables:
        if var.get("type") == "query" and (var.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            problems.append(f"variable ${var.get('name')}: datasource is not {DATASOURCE_UID}")


def substitute(expr, names, where, problems):
    """`expr` with Grafana's variables replaced: built-ins by durations, the dashboard's own
    (label matchers) by `.*`; an undefined variable is a problem (a typo Grafana would send
    to Prometheus verbatim)."""

    def value(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name in BUILTINS:
            return BUILTINS[name]
        if name in names:
            return ".*"
        problems.append(f"{where}: undefined variable ${name}")
        return ".*"

    return VARIABLE.sub(value, expr)


def read_families(path):
    families = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                families[parts[0]] = parts[1] if len(parts) > 1 else "untyped"
    return families


def check_metrics(exprs, families, problems):
    used = set()
    for where, expr in exprs:
        for name in METRIC.findall(expr):
            kind = families.get(name)
            if kind == "histogram":
                problems.append(f"{where}: histogram {name} used without _bucket/_sum/_count")
                continue
            if kind is not None:
                used.add(name)
                continue
            base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
            if base is not None and families.get(base) == "histogram":
                used.add(base)
                continue
            problems.append(f"{where}: {name} is not a metric weir exports")
    unused = sorted(f for f in families if f.startswith("weir_") and f not in used)
    print(f"metrics: {len(used)} weir families used" + (f"; not shown: {', '.join(unused)}" if unused else ""))


def check_promtool(exprs, promtool, problems):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "grafana-rules.yml")
        with open(path, "w") as f:
            f.write("groups:\n  - name: grafana\n    rules:\n")
            for n, (where, expr) in enumerate(exprs):
                # A JSON string is a valid YAML double-quoted scalar.
                f.write(f"      # {where}\n")
                f.write(f"      - record: grafana:expr_{n}\n        expr: {json.dumps(expr)}\n")
        run = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        sys.stdout.write(run.stdout)
        if run.returncode != 0:
            problems.append(f"promtool check rules failed:\n{run.stderr.strip()}")
            for n in sorted({int(n) for n in re.findall(r"grafana:expr_(\d+)", run.stderr)}):
                where, expr = exprs[n]
                problems.append(f"  grafana:expr_{n} is {where}: {expr}")


def check_ratios_without_5xx(exprs, promtool, problems):
    """Every `code=~"5.."` ratio is 0 over an hour of 200s only: Prometheus has no 5xx
    series then, and a bare `5xx / all` would show "No data" instead of 0."""
    ratios = [(w, e) for w, e in exprs if 'code=~"5.."' in e and " / " in e]
    if not ratios:
        problems.append('no 5xx ratio (code=~"5..") found to evaluate')
        return
    series = 'weir_http_requests_total{instance="i", listener="web", pool="web", backend="b", code="200"}'
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "empty-rules.yml")
        with open(rules, "w") as f:
            f.write("groups: []\n")
        path = os.path.join(tmp, "grafana-ratios.test.yml")
        with open(path, "w") as f:
            f.write(f"rule_files: [{json.dumps(rules)}]\nevaluation_interval: 1m\ntests:\n")
            f.write(f"  - interval: 1m\n    input_series:\n      - series: {json.dumps(series)}\n")
            f.write("        values: 0+60x70\n    promql_expr_test:\n")
            for where, expr in ratios:
                # The labels a `sum by (...)` keeps; none for a bare `sum(...)`.
                by = re.match(r"\(?\s*sum by \(([^)]*)\)", expr)
                keep = [l.strip() for l in by.group(1).split(",")] if by else []
                labels = "{" + ", ".join(f'{l}="{"web" if l in ("listener", "pool") else "?"}"' for l in keep) + "}"
                f.write(f"      # {where}\n      - expr: {json.dumps(expr)}\n        eval_time: 1h\n")
                f.write(f"        exp_samples:\n          - labels: {json.dumps(labels)}\n            value: 0\n")
        run = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True)
        if run.returncode != 0:
            problems.append("a 5xx ratio is not 0 without 5xx (No data in Grafana?):\n"
                            + (run.stdout + run.stderr).strip())
        else:
            print(f"5xx ratios: {len(ratios)} evaluate to 0 without 5xx")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dashboard", default=os.path.join(HERE, "weir.json"))
    ap.add_argument("--metrics", help="file of `NAME TYPE` lines: the families weir exports")
    ap.add_argument("--promtool", nargs="?", const="promtool", default=None,
                    help="parse every expression with promtool (optionally its path)")
    args = ap.parse_args()

    problems = []
    try:
        with open(args.dashboard) as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"{args.dashboard}: {e}")
    check_structure(dashboard, problems)
    names = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    exprs = [(w, substitute(e, names, w, problems)) for w, e in expressions(dashboard)]
    print(f"{args.dashboard}: {len(exprs)} expressions")
    if args.metrics:
        check_metrics(exprs, read_families(args.metrics), problems)
    if args.promtool:
        check_promtool(exprs, args.promtool, problems)
        check_ratios_without_5xx(exprs, args.promtool, problems)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        sys.exit(1)
    print("dashboard ok")


if __name__ == "__main__":
    main()
