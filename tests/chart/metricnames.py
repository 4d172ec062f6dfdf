"""Metric names: what the dashboards and alerts use, and what the services declare.

``dashboard_metric_names()`` reads the chart's dashboards (every target ``expr`` and template
variable query) and the PrometheusRule rendered with the alerts on, and returns the metric
names those PromQL expressions select. ``declared_metric_names()`` parses every
services/*/*/metrics.py for prometheus_client constructors and returns the series names they
expose (with the suffixes prometheus_client adds). The lead's live test compares the first set
with the services' real /metrics.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "dicomvault"

_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (a small tokenizer, not a full parser)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)          # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)         # range and subquery windows
    text = re.sub(r"\$\{?[A-Za-z_]\w*\}?", " ", text)  # Grafana variables
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\b\d+(\.\d+)?(ms|[smhdwy])?\b", " ", text)  # numbers and durations
    names = set()
    for m in _IDENT.finditer(text):
        token, rest = m.group(0), text[m.end():].lstrip()
        if token in _KEYWORDS or rest.startswith("("):
            continue  # function call or keyword
        if re.fullmatch(r"\d+[smhdwy]", token) or token.isdigit():
            continue
        names.add(token)
    return names


def dashboard_exprs() -> list[str]:
    exprs: list[str] = []
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board.get("panels", [])):
            exprs += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            if var.get("type") == "query":
                query = query.get("query") if isinstance(query, dict) else query
                m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query or "")
                exprs.append(m.group(1) if m else query)
    return exprs


def _panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def rule_groups() -> list[dict]:
    """The PrometheusRule's groups, rendered with the alerts enabled."""
    import helm_python as helm

    with helm.Chart.load(str(CHART)) as chart:
        # The alerts do not depend on auth; off, it needs no keys or tokens to render.
        out = chart.render({"prometheusRule": {"enabled": True}, "auth": {"enabled": False}},
                           name="dicomvault", namespace="dicomvault")
    doc = yaml.safe_load(out["dicomvault/templates/prometheusrule.yaml"])
    return doc["spec"]["groups"]


def rule_exprs() -> list[str]:
    return [rule["expr"] for group in rule_groups() for rule in group["rules"]]


def dashboard_metric_names() -> set[str]:
    """Every metric name used by a dashboard panel, dashboard variable or alert rule."""
    names: set[str] = set()
    for expr in dashboard_exprs() + rule_exprs():
        names |= promql_metric_names(expr)
    return names


_SUFFIXES = {
    "Counter": ("_total", "_created"),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_count", "_sum", "_created"),
    "Summary": ("", "_count", "_sum", "_created"),
    "Info": ("_info",),
    "Enum": ("",),
}


def declared_metrics() -> dict[str, tuple[str, Path]]:
    """Series name -> (metric type, metrics.py) for every services/*/*/metrics.py."""
    found: dict[str, tuple[str, Path]] = {}
    for path in sorted(ROOT.glob("services/*/*/metrics.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            kind = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
                node.func, "id", None)
            first = node.args[0]
            if kind not in _SUFFIXES or not (
                    isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            base = first.value
            if kind == "Counter":
                base = base.removesuffix("_total")
            for suffix in _SUFFIXES[kind]:
                found[base + suffix] = (kind, path)
    return found


def declared_metric_names() -> set[str]:
    return set(declared_metrics())
