"""Every metric of the hsm-archiver, declared once (labels: queue or archive id, never a UID)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dicomvault.jobs.metrics import QueueMetrics

REGISTRY = CollectorRegistry(auto_describe=True)

QUEUE_DEPTH = Gauge("dicomvault_archiver_queue_depth", "Unfinished jobs per queue.",
                    ["queue"], registry=REGISTRY)
QUEUE_STATE = Gauge("dicomvault_archiver_queue_running",
                    "1 if the queue is RUNNING, 0 if HALTED or STALLED.", ["queue"],
                    registry=REGISTRY)
JOB_DURATION = Histogram("dicomvault_archiver_job_duration_seconds",
                         "Duration of one job attempt.", ["queue"], registry=REGISTRY,
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400))
JOB_OUTCOMES = Counter("dicomvault_archiver_job_outcomes_total",
                       "Job attempts by outcome (done, retry, failed, waiting, cancelled…).",
                       ["queue", "outcome"], registry=REGISTRY)
HSM_FREE = Gauge("dicomvault_archiver_hsm_free_bytes", "Free space in the HSM subdirectory.",
                 ["archive"], registry=REGISTRY)
ARCHIVE_READY = Gauge("dicomvault_archiver_archive_ready",
                      "1 if the archive passed its last readiness check, else 0.", ["archive"],
                      registry=REGISTRY)
ARCHIVED_BYTES = Counter("dicomvault_archiver_archived_bytes_total",
                         "Bytes written (and verified) to an archive.", ["archive"],
                         registry=REGISTRY)
ARCHIVED_INSTANCES = Counter("dicomvault_archiver_archived_instances_total",
                             "Instances written (and verified) to an archive.", ["archive"],
                             registry=REGISTRY)
RECALLED_INSTANCES = Counter("dicomvault_archiver_recalled_instances_total",
                             "Instances brought back to the cache from an archive.",
                             ["archive"], registry=REGISTRY)
EVICTIONS = Counter("dicomvault_archiver_evictions_total",
                    "Cache evictions by result (evicted, dry_run, kept_copies).", ["result"],
                    registry=REGISTRY)
EVICTED_BYTES = Counter("dicomvault_archiver_evicted_bytes_total",
                        "Bytes removed from the cache tier.", registry=REGISTRY)
EVENTS = Counter("dicomvault_archiver_events_total", "Consumed events by type and outcome.",
                 ["type", "outcome"], registry=REGISTRY)

AUDIT_DROPPED = Counter(
    "dicomvault_audit_facts_dropped_total", "Audit facts (refused tokens, start/stop) dropped "
    "because the audit buffer was full or the broker did not take them; the request itself "
    "was not delayed.", registry=REGISTRY)

QUEUES = QueueMetrics(QUEUE_DEPTH, QUEUE_STATE, JOB_DURATION, JOB_OUTCOMES)
