"""Alerts pass promtool; dashboards and alerts use only metrics the services declare."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import yaml

from tests.chart.conftest import CHART, ROOT
from tests.chart.metricnames import (
    dashboard_exprs,
    dashboard_metric_names,
    declared_metric_names,
    rule_groups,
)

PROMTOOL = "/usr/bin/promtool"


def _promtool_check(tmp_path, groups: list[dict]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_rule_passes_promtool(tmp_path):
    groups = rule_groups()
    alerts = {r["alert"] for g in groups for r in g["rules"]}
    assert {"DicomVaultArchiveQueueStalled", "DicomVaultExportFailuresRising",
            "DicomVaultGatewayRefusingAssociations",
            "DicomVaultHsmNotReady"} <= alerts
    _promtool_check(tmp_path, groups)


def test_dashboard_queries_are_valid_promql(tmp_path):
    """Each panel query, with Grafana's variables filled in, as a recording rule."""
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$namespace", ".*")
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query:{i}", "expr": expr})
    assert rules
    _promtool_check(tmp_path, [{"name": "dashboards", "rules": rules}])


def test_dashboards_and_alerts_use_only_declared_metrics():
    used = dashboard_metric_names()
    assert len(used) >= 10
    unknown = used - declared_metric_names()
    assert not unknown, f"not declared in any services/*/*/metrics.py: {sorted(unknown)}"


def test_metric_name_extraction():
    from tests.chart.metricnames import promql_metric_names

    expr = ('histogram_quantile(0.95, sum by (le, queue) (rate(a_seconds_bucket{ns=~"$x",'
            'q="b c"}[$__rate_interval]))) / on (queue) group_left (x) max(b_total offset 5m)'
            ' unless c > bool 3')
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b_total", "c"}


def test_dashboards_are_generated_and_have_one_row_per_service():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "dashboards.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in sorted((CHART / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        rows = [p for p in board["panels"] if p["type"] == "row"]
        assert rows and board["panels"][0]["type"] == "row", path.name
        assert len({r["title"] for r in rows}) == len(rows)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        assert re.fullmatch(r"dicomvault-[a-z-]+", board["uid"])
