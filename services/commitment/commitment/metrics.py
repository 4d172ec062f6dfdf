"""Prometheus metrics of the commitment service (labels: role scp|scu, never a UID)."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "dicomvault_commitment_requests_total", "Storage commitment requests by role and outcome "
    "(scp: accepted, refused, invalid, reported, report_failed; "
    "scu: committed, partial, failed, timeout).", ["role", "outcome"], registry=REGISTRY)
INSTANCES = Counter(
    "dicomvault_commitment_instances_total", "Instances in reports by role and result.",
    ["role", "result"], registry=REGISTRY)
REPORT_LATENCY = Histogram(
    "dicomvault_commitment_report_latency_seconds", "scp: N-ACTION received to N-EVENT-REPORT delivered; "
    "scu: N-ACTION sent to N-EVENT-REPORT received.", ["role"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
JOBS = Counter("dicomvault_commitment_job_transitions_total", "Job state transitions by queue and state.",
               ["queue", "state"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("dicomvault_commitment_queue_depth", "Unfinished jobs per queue.", ["queue"],
                    registry=REGISTRY)
EVICTED = Counter("dicomvault_commitment_cache_evictions_total",
                  "Studies removed from the cache after a full commitment.", registry=REGISTRY)
AUDIT_DROPPED = Counter(
    "dicomvault_audit_facts_dropped_total", "Audit facts (refused tokens, start/stop) dropped "
    "because the audit buffer was full or the broker did not take them; the request itself "
    "was not delayed.", registry=REGISTRY)
