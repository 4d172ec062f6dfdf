"""Prometheus metrics of the catalogue, declared once, in the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "dicomvault_catalogue_events_consumed_total",
    "Events handled by the catalogue policy, by CloudEvents type and outcome "
    "(applied, duplicate, journal_only, dead_lettered).",
    ["type", "outcome"], registry=REGISTRY,
)
PROJECTION_LAG = Histogram(
    "dicomvault_catalogue_projection_lag_seconds",
    "Time from an event's ce_time to its durable journal row (recorded_at - ce_time).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
    registry=REGISTRY,
)
JOURNAL_ROWS = Gauge(
    "dicomvault_catalogue_journal_rows", "Rows in the journal (highest sequence number seen).",
    registry=REGISTRY,
)
STABLE_EMITTED = Counter(
    "dicomvault_catalogue_study_stable_emitted_total", "StudyStable events published by the emitter.",
    registry=REGISTRY,
)
API_DURATION = Histogram(
    "dicomvault_catalogue_api_request_duration_seconds", "REST API request duration, by route and status.",
    ["route", "method", "status"], registry=REGISTRY,
)

JOB_COMMANDS = Counter(
    "dicomvault_catalogue_job_commands_total",
    "Queue and job commands of the REST API, by command and answer "
    "(202 published, 404, 409, 422, unavailable).",
    ["command", "status"], registry=REGISTRY,
)


def on_record(ce_type: str, outcome: str) -> None:
    """ConsumerLoop hook: counts what the loop itself decided (dead letters)."""
    if outcome == "dead_lettered":
        EVENTS.labels(ce_type, outcome).inc()
COMMIT_FAILURES = Counter(
    "dicomvault_catalogue_commit_failures_total", "Event commits that failed for lack of space, by reason "
    "(disk_full); the event is retried, never dead-lettered.", ["reason"], registry=REGISTRY)
COMMIT_BLOCKED = Gauge(
    "dicomvault_catalogue_commit_blocked", "1 while the catalogue cannot commit (disk full): new "
    "instances are not visible to queries until space is freed.", registry=REGISTRY)
AUDIT_DROPPED = Counter(
    "dicomvault_audit_facts_dropped_total", "Audit facts (refused tokens, start/stop) dropped "
    "because the audit buffer was full or the broker did not take them; the request itself "
    "was not delayed.", registry=REGISTRY)
