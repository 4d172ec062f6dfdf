"""Every metric of the optical-burner, declared once (labels: archive, queue, state, outcome;
never a UID or a volume label)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dicomvault.jobs.metrics import QueueMetrics

REGISTRY = CollectorRegistry(auto_describe=True)

VOLUMES = Gauge("dicomvault_optical_volumes", "Logical volumes by state (Open, Closed, Burned, "
                "Verified).", ["archive", "state"], registry=REGISTRY)
OPEN_FILL = Gauge("dicomvault_optical_open_volume_fill_ratio",
                  "Fill level of the open volume (0–1).", ["archive"], registry=REGISTRY)
STUDIES_WRITTEN = Counter("dicomvault_optical_studies_written_total",
                          "Studies (or study parts) written to logical volumes.", ["archive"],
                          registry=REGISTRY)
BYTES_WRITTEN = Counter("dicomvault_optical_written_bytes_total",
                        "Instance bytes written (and read back) to logical volumes.",
                        ["archive"], registry=REGISTRY)
BYTES_BURNED = Counter("dicomvault_optical_burned_bytes_total",
                       "Image bytes burned (every copy counts).", ["archive", "backend"],
                       registry=REGISTRY)
BURN_FAILURES = Counter("dicomvault_optical_burn_failures_total",
                        "Failed burn attempts of one copy.", ["archive", "backend"],
                        registry=REGISTRY)
VERIFY_FAILURES = Counter("dicomvault_optical_verify_failures_total",
                          "Copies whose read-back did not match the manifest.", ["archive"],
                          registry=REGISTRY)
MEDIA_REQUESTS = Gauge("dicomvault_optical_media_requests_open",
                       "Offline volumes a retrieve is waiting for.", ["archive"],
                       registry=REGISTRY)
RECALLED_INSTANCES = Counter("dicomvault_optical_recalled_instances_total",
                             "Instances brought back to the cache from optical volumes.",
                             ["archive"], registry=REGISTRY)
RETRIEVES = Counter("dicomvault_optical_retrieves_total",
                    "Study retrieves by outcome (done, offline, not_found, failed).",
                    ["archive", "outcome"], registry=REGISTRY)
EVENTS = Counter("dicomvault_optical_events_total", "Consumed events by type and outcome.",
                 ["type", "outcome"], registry=REGISTRY)

# The jobs engine's queues (STORE ``<archive id>``, RETRIEVE ``<archive id>-retrieve``).
QUEUE_DEPTH = Gauge("dicomvault_optical_queue_depth", "Unfinished jobs per queue.",
                    ["queue"], registry=REGISTRY)
QUEUE_STATE = Gauge("dicomvault_optical_queue_running",
                    "1 if the queue is RUNNING, 0 if HALTED or STALLED.", ["queue"],
                    registry=REGISTRY)
JOB_DURATION = Histogram("dicomvault_optical_job_duration_seconds",
                         "Duration of one job attempt.", ["queue"], registry=REGISTRY,
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400))
JOB_OUTCOMES = Counter("dicomvault_optical_job_outcomes_total",
                       "Job attempts by outcome (done, retry, failed, waiting, cancelled…).",
                       ["queue", "outcome"], registry=REGISTRY)

AUDIT_DROPPED = Counter(
    "dicomvault_audit_facts_dropped_total", "Audit facts (refused tokens, start/stop) dropped "
    "because the audit buffer was full or the broker did not take them; the request itself "
    "was not delayed.", registry=REGISTRY)

QUEUES = QueueMetrics(QUEUE_DEPTH, QUEUE_STATE, JOB_DURATION, JOB_OUTCOMES)
