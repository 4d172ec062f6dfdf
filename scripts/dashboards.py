"""Generate the Grafana dashboards of the Helm chart (charts/dicomvault/dashboards/*.json).

    .venv/bin/python scripts/dashboards.py          # rewrite the JSON files
    .venv/bin/python scripts/dashboards.py --check  # exit 1 if a file is not up to date

Dashboards are code: each is a list of rows, one row per service, RED panels first (rate,
errors, duration), then saturation (queues, space). Every query uses only metrics declared in
a service's metrics.py; tests/chart/test_dashboards.py checks that. Panels waiting for a
service's metrics are listed in WAITING and added here once the metrics exist.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "charts" / "dicomvault" / "dashboards"
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"

# Panels not drawn yet because their service does not expose the metrics (yet).
WAITING = {
    "ingest (gateway)": "STOW-RS instances/s (DICOMweb metrics not declared yet)",
    "Kafka consumer lag": "lag per consumer group and partition (needs a consumer-lag gauge in "
                          "the bus library, or Strimzi's Kafka Exporter accepted as a source)",
}


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    stack: bool = False


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variable_metric: str  # a metric of this dashboard whose namespace label feeds $namespace
    rows: list[Row]
    tags: list[str] = field(default_factory=lambda: ["dicomvault"])


def q(text: str) -> str:
    """Fill the common selectors: {NS} becomes the namespace matcher, {R} the rate window."""
    return text.replace("{NS}", NS).replace("{R}", RATE)


def hist(metric: str, by: str, quantile: float, extra: str = "") -> str:
    sel = f"{NS}{',' + extra if extra else ''}"
    return (f"histogram_quantile({quantile}, sum by (le, {by}) "
            f"(rate({metric}_bucket{{{sel}}}[{RATE}])))")


# --- rows, one per service -----------------------------------------------------------------

def job_queue_row(title: str, prefix: str) -> Row:
    """The panels of a service whose queues run on the shared jobs engine (``<prefix>_job_
    outcomes_total``, ``_job_duration_seconds``, ``_queue_depth``, ``_queue_running``)."""
    return Row(title, [
        Panel("Job attempts/s by outcome", [(q(
            f"sum by (outcome) (rate({prefix}_job_outcomes_total{{{{NS}}}}[{{R}}]))"),
            "{{outcome}}")], "ops", stack=True),
        Panel("Failed jobs/s by queue", [(q(
            f'sum by (queue) (rate({prefix}_job_outcomes_total{{{{NS}},outcome="failed"}}[{{R}}]))'),
            "{{queue}}")], "ops"),
        Panel("Job duration p95 by queue", [
            (hist(f"{prefix}_job_duration_seconds", "queue", 0.95), "{{queue}}")], "s"),
        Panel("Queue depth (unfinished jobs)", [(q(
            f"max by (queue) ({prefix}_queue_depth{{{{NS}}}})"), "{{queue}}")], "short"),
        Panel("Queue running (1) / halted or stalled (0)", [(q(
            f"max by (queue) ({prefix}_queue_running{{{{NS}}}})"), "{{queue}}")], "short"),
    ])


def archiver_queue_row() -> Row:
    return job_queue_row("hsm-archiver queues", "dicomvault_archiver")


def optical_queue_row() -> Row:
    return job_queue_row("optical-burner queues (STORE, RETRIEVE)", "dicomvault_optical")


def exporter_queue_row() -> Row:
    return Row("stow-exporter queues", [
        Panel("Studies finished/s by exporter and outcome", [(q(
            "sum by (exporter, outcome) (rate(dicomvault_exporter_studies_total{{NS}}[{R}]))"),
            "{{exporter}} {{outcome}}")], "ops"),
        Panel("Failures/s by exporter and reason", [(q(
            "sum by (exporter, reason) (rate(dicomvault_exporter_failures_total{{NS}}[{R}]))"),
            "{{exporter}} {{reason}}")], "ops"),
        Panel("Request duration p95 by exporter", [
            (hist("dicomvault_exporter_request_duration_seconds", "exporter", 0.95),
             "{{exporter}}")], "s"),
        Panel("Exports pending by state", [(q(
            "sum by (exporter, state) (dicomvault_exporter_queue_depth{{NS}})"),
            "{{exporter}} {{state}}")], "short", stack=True),
        Panel("Retries scheduled/s", [(q(
            "sum by (exporter) (rate(dicomvault_exporter_retries_total{{NS}}[{R}]))"),
            "{{exporter}}")], "ops"),
    ])


def commitment_queue_row() -> Row:
    return Row("commitment queues", [
        Panel("Job transitions/s by state", [(q(
            "sum by (queue, state) (rate(dicomvault_commitment_job_transitions_total{{NS}}[{R}]))"),
            "{{queue}} {{state}}")], "ops"),
        Panel("Failed jobs/s", [(q(
            'sum by (queue) (rate(dicomvault_commitment_job_transitions_total{{NS},state=~"failed|cancelled"}[{R}]))'),
            "{{queue}}")], "ops"),
        Panel("Queue depth", [(q("max by (queue) (dicomvault_commitment_queue_depth{{NS}})"), "{{queue}}")]),
    ])


def hsm_row() -> Row:
    return Row("hsm-archiver", [
        Panel("Instances archived/s by archive", [(q(
            "sum by (archive) (rate(dicomvault_archiver_archived_instances_total{{NS}}[{R}]))"),
            "{{archive}}")], "ops"),
        Panel("Failed store and retrieve jobs/s", [(q(
            'sum by (queue) (rate(dicomvault_archiver_job_outcomes_total{{NS},outcome="failed"}[{R}]))'),
            "{{queue}}")], "ops"),
        Panel("Job duration p50 / p95", [
            (hist("dicomvault_archiver_job_duration_seconds", "queue", 0.5), "p50 {{queue}}"),
            (hist("dicomvault_archiver_job_duration_seconds", "queue", 0.95), "p95 {{queue}}")],
            "s"),
        Panel("Archive ready", [(q("min by (archive) (dicomvault_archiver_archive_ready{{NS}})"),
                                 "{{archive}}")], "bool_yes_no", kind="stat",
              description="1: the last readiness check passed (mount, sentinel, writable, "
                          "free space); 0: the archive's queue is stalled."),
        Panel("HSM free space", [(q("min by (archive) (dicomvault_archiver_hsm_free_bytes{{NS}})"),
                                  "{{archive}}")], "bytes"),
        Panel("Bytes archived/s", [(q(
            "sum by (archive) (rate(dicomvault_archiver_archived_bytes_total{{NS}}[{R}]))"),
            "{{archive}}")], "Bps"),
        Panel("Instances recalled/s", [(q(
            "sum by (archive) (rate(dicomvault_archiver_recalled_instances_total{{NS}}[{R}]))"),
            "{{archive}}")], "ops"),
        Panel("Cache evictions/s by result", [(q(
            "sum by (result) (rate(dicomvault_archiver_evictions_total{{NS}}[{R}]))"),
            "{{result}}")], "ops"),
        Panel("Bytes evicted from the cache/s", [(q(
            "sum (rate(dicomvault_archiver_evicted_bytes_total{{NS}}[{R}]))"), "evicted")], "Bps"),
        Panel("Events consumed/s by outcome", [(q(
            "sum by (type, outcome) (rate(dicomvault_archiver_events_total{{NS}}[{R}]))"),
            "{{type}} {{outcome}}")], "ops"),
    ])


def commitment_row() -> Row:
    return Row("commitment", [
        Panel("Requests/s by role and outcome", [(q(
            "sum by (role, outcome) (rate(dicomvault_commitment_requests_total{{NS}}[{R}]))"),
            "{{role}} {{outcome}}")], "ops"),
        Panel("Failed requests/s", [(q(
            'sum by (role, outcome) (rate(dicomvault_commitment_requests_total{{NS},outcome=~"refused|invalid|.*failed|timeout|partial"}[{R}]))'),
            "{{role}} {{outcome}}")], "ops"),
        Panel("Requests on the gateway's DIMSE port/s by outcome", [(q(
            "sum by (outcome) (rate(dicomvault_gateway_commitment_requests_total{{NS}}[{R}]))"),
            "{{outcome}}")], "ops"),
        Panel("N-ACTION to N-EVENT-REPORT p50 / p95", [
            (hist("dicomvault_commitment_report_latency_seconds", "role", 0.5), "p50 {{role}}"),
            (hist("dicomvault_commitment_report_latency_seconds", "role", 0.95), "p95 {{role}}")], "s"),
        Panel("Instances in reports/s by result", [(q(
            "sum by (role, result) (rate(dicomvault_commitment_instances_total{{NS}}[{R}]))"),
            "{{role}} {{result}}")], "ops"),
        Panel("Queue depth", [(q("max by (queue) (dicomvault_commitment_queue_depth{{NS}})"), "{{queue}}")]),
        Panel("Studies evicted after commitment/s", [(q(
            "sum (rate(dicomvault_commitment_cache_evictions_total{{NS}}[{R}]))"), "evicted")], "ops"),
    ])


def exporter_row() -> Row:
    return Row("stow-exporter", [
        Panel("Instances delivered/s by outcome", [(q(
            "sum by (exporter, outcome) (rate(dicomvault_exporter_instances_total{{NS}}[{R}]))"),
            "{{exporter}} {{outcome}}")], "ops"),
        Panel("Failures/s by reason", [(q(
            "sum by (exporter, reason) (rate(dicomvault_exporter_failures_total{{NS}}[{R}]))"),
            "{{exporter}} {{reason}}")], "ops"),
        Panel("Request duration p50 / p95", [
            (hist("dicomvault_exporter_request_duration_seconds", "exporter", 0.5),
             "p50 {{exporter}}"),
            (hist("dicomvault_exporter_request_duration_seconds", "exporter", 0.95),
             "p95 {{exporter}}")], "s"),
        Panel("Bytes sent/s", [(q(
            "sum by (exporter) (rate(dicomvault_exporter_sent_bytes_total{{NS}}[{R}]))"),
            "{{exporter}}")], "Bps"),
        Panel("Requests in flight", [(q(
            "sum by (exporter) (dicomvault_exporter_requests_in_flight{{NS}})"), "{{exporter}}")]),
        Panel("Events consumed/s by outcome", [(q(
            "sum by (type, outcome) (rate(dicomvault_exporter_events_total{{NS}}[{R}]))"),
            "{{type}} {{outcome}}")], "ops"),
    ])


def operator_row() -> Row:
    return Row("operator", [
        Panel("Reconciliations/s by cause and result", [(q(
            "sum by (cause, result) (rate(dicomvault_operator_reconciliations_total{{NS}}[{R}]))"),
            "{{cause}} {{result}}")], "ops"),
        Panel("Failed reconciliations/s", [(q(
            'sum by (cause) (rate(dicomvault_operator_reconciliations_total{{NS},result=~"invalid|error"}[{R}]))'),
            "{{cause}}")], "ops"),
        Panel("Reconcile duration p95", [(q(
            "histogram_quantile(0.95, sum by (le) (rate(dicomvault_operator_reconcile_duration_seconds_bucket{{NS}}[{R}])))"),
            "p95")], "s"),
        Panel("Exporters", [(q("max (dicomvault_operator_exporters{{NS}})"), "exporters")],
              kind="stat"),
        Panel("Catalogue queue-count reads/s by result", [(q(
            "sum by (result) (rate(dicomvault_operator_queue_polls_total{{NS}}[{R}]))"),
            "{{result}}")], "ops"),
    ])


def gateway_row() -> Row:
    return Row("gateway", [
        Panel("Instances stored/s (C-STORE success)", [(q(
            'sum (rate(dicomvault_gateway_cstore_requests_total{{NS},status="0x0000"}[{R}]))'), "stored")],
            "ops"),
        Panel("C-STORE failures/s by status", [(q(
            'sum by (status) (rate(dicomvault_gateway_cstore_requests_total{{NS},status!="0x0000"}[{R}]))'),
            "{{status}}")], "ops"),
        Panel("Store duration p50 / p95 / p99", [
            (q("histogram_quantile(0.5, sum by (le) (rate(dicomvault_gateway_store_duration_seconds_bucket{{NS}}[{R}])))"), "p50"),
            (q("histogram_quantile(0.95, sum by (le) (rate(dicomvault_gateway_store_duration_seconds_bucket{{NS}}[{R}])))"), "p95"),
            (q("histogram_quantile(0.99, sum by (le) (rate(dicomvault_gateway_store_duration_seconds_bucket{{NS}}[{R}])))"), "p99")],
            "s"),
        Panel("Where a store's time goes (p50 per phase)", [(q(
            "histogram_quantile(0.5, sum by (le, phase) "
            "(rate(dicomvault_gateway_store_phase_seconds_bucket{{NS}}[{R}])))"), "{{phase}}")], "s"),
        Panel("Associations/s by result and reason", [(q(
            "sum by (result, reason) (rate(dicomvault_gateway_associations_total{{NS}}[{R}]))"),
            "{{result}} {{reason}}")], "ops"),
        Panel("Associations held per DIMSE worker (-1: starting, draining or down)", [(q(
            "max by (pod, worker) (dicomvault_gateway_worker_associations{{NS}})"), "{{pod}} {{worker}}")],
            "short"),
        Panel("Bytes received/s", [(q("sum (rate(dicomvault_gateway_received_bytes_total{{NS}}[{R}]))"),
                                    "received")], "Bps"),
        Panel("C-FIND queries/s by status", [(q(
            "sum by (status) (rate(dicomvault_gateway_cfind_queries_total{{NS}}[{R}]))"), "{{status}}")],
            "ops"),
        Panel("Duplicate stores/s by outcome", [(q(
            "sum by (outcome) (rate(dicomvault_gateway_duplicates_total{{NS}}[{R}]))"), "{{outcome}}")],
            "ops"),
        Panel("Event publish failures/s", [(q(
            "sum by (source) (rate(dicomvault_gateway_publish_failures_total{{NS}}[{R}]))"), "{{source}}")],
            "ops"),
        Panel("Reconciliation: events re-emitted, files recovered /s", [
            (q("sum (rate(dicomvault_gateway_reconcile_reemitted_total{{NS}}[{R}]))"),
             "re-emitted"),
            (q("sum by (outcome) (rate(dicomvault_gateway_recovered_files_total{{NS}}[{R}]))"),
             "files after a crash: {{outcome}}")], "ops"),
    ])


def catalogue_row() -> Row:
    return Row("catalogue", [
        Panel("Events handled/s by outcome", [(q(
            "sum by (outcome) (rate(dicomvault_catalogue_events_consumed_total{{NS}}[{R}]))"),
            "{{outcome}}")], "ops", stack=True),
        Panel("Events dead-lettered/s by type", [(q(
            'sum by (type) (rate(dicomvault_catalogue_events_consumed_total{{NS},outcome="dead_lettered"}[{R}]))'),
            "{{type}}")], "ops"),
        Panel("Projection lag p50 / p95 (ce_time to journal)", [
            (q("histogram_quantile(0.5, sum by (le) (rate(dicomvault_catalogue_projection_lag_seconds_bucket{{NS}}[{R}])))"), "p50"),
            (q("histogram_quantile(0.95, sum by (le) (rate(dicomvault_catalogue_projection_lag_seconds_bucket{{NS}}[{R}])))"), "p95")],
            "s"),
        Panel("REST API p95 by route", [
            (hist("dicomvault_catalogue_api_request_duration_seconds", "route", 0.95), "{{route}}")], "s"),
        Panel("Journal rows", [(q("max (dicomvault_catalogue_journal_rows{{NS}})"), "rows")]),
        Panel("StudyStable emitted/s", [(q(
            "sum (rate(dicomvault_catalogue_study_stable_emitted_total{{NS}}[{R}]))"), "emitted")], "ops"),
    ])


def optical_row() -> Row:
    return Row("optical-burner", [
        Panel("Studies written to volumes/s", [(q(
            "sum by (archive) (rate(dicomvault_optical_studies_written_total{{NS}}[{R}]))"),
            "{{archive}}")], "ops"),
        Panel("Burn and verify failures/s", [
            (q("sum by (archive, backend) (rate(dicomvault_optical_burn_failures_total{{NS}}[{R}]))"),
             "burn {{archive}} {{backend}}"),
            (q("sum by (archive) (rate(dicomvault_optical_verify_failures_total{{NS}}[{R}]))"),
             "verify {{archive}}")], "ops"),
        Panel("Volumes by state", [(q(
            "sum by (archive, state) (dicomvault_optical_volumes{{NS}})"),
            "{{archive}} {{state}}")]),
        Panel("Open volume fill", [(q(
            "max by (archive) (dicomvault_optical_open_volume_fill_ratio{{NS}})"), "{{archive}}")],
            "percentunit"),
        Panel("Bytes written / burned /s", [
            (q("sum by (archive) (rate(dicomvault_optical_written_bytes_total{{NS}}[{R}]))"),
             "written {{archive}}"),
            (q("sum by (archive) (rate(dicomvault_optical_burned_bytes_total{{NS}}[{R}]))"),
             "burned {{archive}}")], "Bps"),
        Panel("Media requests open (offline volumes)", [(q(
            "sum by (archive) (dicomvault_optical_media_requests_open{{NS}})"), "{{archive}}")]),
        Panel("Retrieves/s by outcome", [(q(
            "sum by (archive, outcome) (rate(dicomvault_optical_retrieves_total{{NS}}[{R}]))"),
            "{{archive}} {{outcome}}")], "ops"),
    ])

def audit_row() -> Row:
    return Row("audit", [
        Panel("Audit messages kept/s by event", [(q(
            "sum by (event) (rate(dicomvault_audit_messages_total{{NS}}[{R}]))"), "{{event}}")],
            "ops"),
        Panel("Messages sent to syslog/s and send failures/s", [
            (q("sum (rate(dicomvault_audit_messages_sent_total{{NS}}[{R}]))"), "sent"),
            (q("sum (rate(dicomvault_audit_send_failures_total{{NS}}[{R}]))"), "failures")],
            "ops"),
        Panel("Not yet delivered (backlog)", [(q(
            "max (dicomvault_audit_backlog_messages{{NS}})"), "backlog")]),
        Panel("Syslog receiver reachable", [(q(
            "min (dicomvault_audit_receiver_up{{NS}})"), "up")], kind="stat"),
        Panel("Audit facts dropped by the gateway/s", [(q(
            "sum (rate(dicomvault_gateway_audit_facts_dropped_total{{NS}}[{R}]))"), "dropped")], "ops",
            description="Queries, retrieves and refusals whose audit fact the gateway could "
                        "not buffer or publish (the action itself went on)."),
        Panel("Events consumed/s by outcome", [(q(
            "sum by (outcome) (rate(dicomvault_audit_events_total{{NS}}[{R}]))"),
            "{{outcome}}")], "ops"),
    ])


DASHBOARDS = [
    Dashboard("dicomvault-ingest", "DICOM Vault / Ingest",
              "The gateway: associations, instances and bytes received, failures by status, "
              "store latency.", "dicomvault_gateway_cstore_requests_total", [gateway_row()]),
    Dashboard("dicomvault-catalogue", "DICOM Vault / Catalogue",
              "Events applied to the journal, projection lag, REST API latency.",
              "dicomvault_catalogue_events_consumed_total", [catalogue_row()]),
    Dashboard("dicomvault-optical", "DICOM Vault / Optical media",
              "Logical volumes, burning and verification.", "dicomvault_optical_volumes",
              [optical_row()]),
    Dashboard("dicomvault-queues", "DICOM Vault / Queues and jobs",
              "Job queues of every archive, exporter and commitment: outcomes, failures, "
              "durations, depth.", "dicomvault_archiver_queue_depth",
              [archiver_queue_row(), optical_queue_row(), exporter_queue_row(),
               commitment_queue_row()]),
    Dashboard("dicomvault-hsm", "DICOM Vault / HSM and PACS tiers",
              "Archive tiers of the hsm-archiver: throughput, readiness, free space, recalls, "
              "cache eviction.", "dicomvault_archiver_archive_ready", [hsm_row()]),
    Dashboard("dicomvault-commitment", "DICOM Vault / Storage commitment",
              "Storage Commitment SCP and SCU: requests, failures, report latency.",
              "dicomvault_commitment_requests_total", [commitment_row()]),
    Dashboard("dicomvault-exports", "DICOM Vault / Exports",
              "STOW-RS and C-STORE exporters and the operator that runs them.",
              "dicomvault_operator_exporters", [exporter_row(), operator_row()]),
    Dashboard("dicomvault-audit", "DICOM Vault / Audit trail",
              "DICOM audit messages (PS3.15 A.5) kept and sent to the syslog receiver; audit "
              "facts the gateway dropped.", "dicomvault_audit_messages_total", [audit_row()]),
]


# --- JSON --------------------------------------------------------------------------------

def _panel_json(panel: Panel, pid: int, x: int, y: int) -> dict:
    targets = [{"datasource": {"type": "prometheus", "uid": "${datasource}"}, "expr": expr,
                "legendFormat": legend, "refId": chr(ord("A") + i), "range": True}
               for i, (expr, legend) in enumerate(panel.targets)]
    out: dict = {
        "id": pid, "type": panel.kind, "title": panel.title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if panel.description:
        out["description"] = panel.description
    if panel.kind == "timeseries":
        out["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "fillOpacity": 10, "lineWidth": 1, "showPoints": "never",
            "stacking": {"group": "A", "mode": "normal" if panel.stack else "none"}}
    else:
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                            "values": False},
                          "colorMode": "background", "graphMode": "none"}
    return out


def render(d: Dashboard) -> dict:
    panels: list[dict] = []
    pid, y = 1, 0
    for row in d.rows:
        panels.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, panel in enumerate(row.panels):
            panels.append(_panel_json(panel, pid, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(row.panels) + 2) // 3) * 8
    return {
        "uid": d.uid, "title": d.title, "description": d.description, "tags": d.tags,
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"}, "timezone": "",
        "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Data source", "current": {}, "hide": 0, "refresh": 1},
            {"name": "namespace", "type": "query", "label": "Namespace",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": f"label_values({d.variable_metric}, namespace)",
                       "refId": "namespace"},
             "definition": f"label_values({d.variable_metric}, namespace)",
             "includeAll": True, "multi": True, "current": {}, "hide": 0, "refresh": 2,
             "sort": 1},
        ]},
        "panels": panels,
    }


def texts() -> dict[str, str]:
    return {f"{d.uid}.json": json.dumps(render(d), indent=2, sort_keys=True) + "\n"
            for d in DASHBOARDS}


def main(argv: list[str]) -> int:
    wanted = texts()
    if "--check" in argv:
        stale = [n for n, t in wanted.items()
                 if not (OUT / n).exists() or (OUT / n).read_text() != t]
        extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in wanted)
        for n in stale + extra:
            print(f"out of date: {OUT / n} (run scripts/dashboards.py)")
        return 1 if stale or extra else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.json"):
        if p.name not in wanted:
            p.unlink()
    for name, text in wanted.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
