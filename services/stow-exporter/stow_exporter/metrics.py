"""Metrics of the stow-exporter, declared once. Labels: exporter id, outcome, reason, state."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

STUDIES = Counter(
    "dicomvault_exporter_studies_total", "Studies finished, by outcome (exported, failed).",
    ["exporter", "outcome"], registry=REGISTRY)
INSTANCES = Counter(
    "dicomvault_exporter_instances_total",
    "Instances delivered, by outcome (stored, warning, failed).",
    ["exporter", "outcome"], registry=REGISTRY)
SENT_BYTES = Counter(
    "dicomvault_exporter_sent_bytes_total", "Bytes of DICOM objects sent.",
    ["exporter"], registry=REGISTRY)
FAILURES = Counter(
    "dicomvault_exporter_failures_total",
    "Failed attempts and instances, by reason (http_5xx, timeout, tls, auth, refused, …).",
    ["exporter", "reason"], registry=REGISTRY)
RETRIES = Counter(
    "dicomvault_exporter_retries_total", "Export attempts scheduled for retry.",
    ["exporter"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "dicomvault_exporter_request_duration_seconds",
    "Duration of one STOW-RS request or one C-STORE association.",
    ["exporter"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
IN_FLIGHT = Gauge(
    "dicomvault_exporter_requests_in_flight", "STOW-RS requests or associations in flight.",
    ["exporter"], registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "dicomvault_exporter_queue_depth",
    "Exports not finished, by state (delayed, waiting_schedule, queued, in_progress, "
    "retrying, suspended).",
    ["exporter", "state"], registry=REGISTRY)
CONSUMED = Counter(
    "dicomvault_exporter_events_total", "Events consumed, by type and outcome.",
    ["type", "outcome"], registry=REGISTRY)
AUDIT_DROPPED = Counter(
    "dicomvault_audit_facts_dropped_total", "Audit facts (refused tokens, start/stop) dropped "
    "because the audit buffer was full or the broker did not take them; the request itself "
    "was not delayed.", registry=REGISTRY)
