"""Every metric of the operator, declared once (labels: low-cardinality, never a name or UID)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECONCILIATIONS = Counter(
    "dicomvault_operator_reconciliations_total",
    "Exporter reconciliations, by cause and result (ok, invalid, error).",
    ["cause", "result"], registry=REGISTRY)
RECONCILE_DURATION = Histogram(
    "dicomvault_operator_reconcile_duration_seconds",
    "Time to render and apply one Exporter's children.", registry=REGISTRY)
QUEUE_POLLS = Counter(
    "dicomvault_operator_queue_polls_total",
    "Reads of queue counts from the catalogue, by result (ok, unavailable).",
    ["result"], registry=REGISTRY)
EXPORTERS = Gauge(
    "dicomvault_operator_exporters",
    "Exporters seen at the last queue-count sweep.", registry=REGISTRY)
