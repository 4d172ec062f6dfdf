"""Every metric of the audit service, declared once (labels: event name, never a UID)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter("dicomvault_audit_events_total", "Consumed events by type and outcome.",
                 ["type", "outcome"], registry=REGISTRY)
MESSAGES = Counter("dicomvault_audit_messages_total",
                   "Audit messages kept, by audit event (transferred, query, …).", ["event"],
                   registry=REGISTRY)
SENT = Counter("dicomvault_audit_messages_sent_total",
               "Audit messages delivered to the syslog receiver.", registry=REGISTRY)
SEND_FAILURES = Counter("dicomvault_audit_send_failures_total",
                        "Failed attempts to reach or write to the syslog receiver.",
                        registry=REGISTRY)
BACKLOG = Gauge("dicomvault_audit_backlog_messages",
                "Kept audit messages not yet delivered to the syslog receiver.",
                registry=REGISTRY)
RECEIVER_UP = Gauge("dicomvault_audit_receiver_up",
                    "1 if the last attempt to write to the syslog receiver succeeded.",
                    registry=REGISTRY)


def on_record(ce_type: str, outcome: str) -> None:
    EVENTS.labels(ce_type, outcome).inc()
