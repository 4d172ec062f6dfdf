"""Prometheus metrics of the gateway, declared once (labels are statuses and reasons, never UIDs).

With ``workers > 1`` each DIMSE worker process counts in its own copy of this registry and
serves it on a private loopback port; the service process serves ``/metrics`` as the sum of
its own registry and every worker's (``workers.AggregateCollector``).
"""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

ASSOCIATIONS = Counter(
    "dicomvault_gateway_associations_total",
    "Association requests by result (accepted, rejected) and reason of rejection "
    "(calling_ae_not_recognised, local_limit_exceeded, other; '' when accepted).",
    ["result", "reason"], registry=REGISTRY)
WORKER_ASSOCIATIONS = Gauge(
    "dicomvault_gateway_worker_associations",
    "Connections each DIMSE worker holds now (workers > 1; -1 while it starts, drains or is "
    "down): how evenly the least-busy-first accept spreads the associations.",
    ["worker"], registry=REGISTRY)
CSTORE_REQUESTS = Counter(
    "dicomvault_gateway_cstore_requests_total", "C-STORE requests answered, by status (0x0000, 0xA700, …).",
    ["status"], registry=REGISTRY)
RECEIVED_BYTES = Counter(
    "dicomvault_gateway_received_bytes_total", "Bytes of C-STORE datasets received (Part 10 size).",
    registry=REGISTRY)
STORE_DURATION = Histogram(
    "dicomvault_gateway_store_duration_seconds",
    "C-STORE dataset fully received to response status decided (write, fsync, publish).",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STORE_PHASE = Histogram(
    "dicomvault_gateway_store_phase_seconds",
    "Where a C-STORE's or STOW-RS part's time goes, by phase: receive (first PDU of the request "
    "to its last, storage fast path only), checks (framing, header, UIDs, SHA-256), write (the "
    "durable write: temp file, fsync, rename, folder fsync), publish (InstanceStored until the "
    "broker's acknowledgement).", ["phase"], registry=REGISTRY,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
# The phases' series, looked up once: every store observes three or four of them.
PHASE = {phase: STORE_PHASE.labels(phase) for phase in ("receive", "checks", "write", "publish")}
CSTORE_SUCCESS = CSTORE_REQUESTS.labels("0x0000")  # the common case, without a labels() lookup
DUPLICATES = Counter(
    "dicomvault_gateway_duplicates_total", "Stores of an already stored SOP Instance UID, by outcome "
    "(identical, rejected, replaced, kept, recalled).", ["outcome"], registry=REGISTRY)
CFIND_QUERIES = Counter(
    "dicomvault_gateway_cfind_queries_total", "C-FIND queries by final status.", ["status"],
    registry=REGISTRY)
RECONCILE_REEMITTED = Counter(
    "dicomvault_gateway_reconcile_reemitted_total",
    "InstanceStored events re-emitted by the sweep for files the catalogue did not know.",
    registry=REGISTRY)
RECOVERED_FILES = Counter(
    "dicomvault_gateway_recovered_files_total",
    "Temp files of batched writes a crash left (cache.folder_flush): named (a complete file "
    "put back under its final name) or dropped (a write cut short).",
    ["outcome"], registry=REGISTRY)
RECONCILE_SWEEPS = Counter(
    "dicomvault_gateway_reconcile_sweeps_total", "Reconciliation sweeps by outcome (ok, failed).",
    ["outcome"], registry=REGISTRY)
PUBLISH_FAILURES = Counter(
    "dicomvault_gateway_publish_failures_total", "InstanceStored events the broker did not take, by source "
    "(dimse, dicomweb, reconcile, recall).", ["source"], registry=REGISTRY)
RETRIEVE_REQUESTS = Counter(
    "dicomvault_gateway_retrieve_requests_total", "C-MOVE and C-GET requests by operation (move, get) and "
    "final status (0x0000, 0xB000, 0xA702, 0xA801, …).", ["operation", "status"],
    registry=REGISTRY)
RETRIEVE_SUBOPERATIONS = Counter(
    "dicomvault_gateway_retrieve_suboperations_total", "C-STORE sub-operations of C-MOVE/C-GET by "
    "operation and outcome (completed, failed, warning; failed includes instances not in the "
    "cache when the recall wait ended).", ["operation", "outcome"], registry=REGISTRY)
RECALL_REQUESTS = Counter(
    "dicomvault_gateway_recall_requests_total", "RecallRequested events published for studies a retrieve "
    "found (partly) off the cache, by outcome (published, failed).", ["outcome"],
    registry=REGISTRY)
OPERATIONS_REFUSED = Counter(
    "dicomvault_gateway_operations_refused_total", "DIMSE operations refused by the modalities table "
    "(0xC124), by operation (store, query, retrieve).", ["operation"], registry=REGISTRY)
TRANSCODES = Counter(
    "dicomvault_gateway_transcodes_total", "Objects converted on retrieve to a transfer syntax the receiver "
    "accepts, by interface (dimse: C-MOVE/C-GET; dicomweb: WADO-RS, WADO-URI, frames) and "
    "outcome (converted, failed).", ["interface", "outcome"], registry=REGISTRY)
LOW_SPACE_REFUSALS = Counter(
    "dicomvault_gateway_low_space_refusals_total", "Stores refused (0xA700, STOW-RS 507) because the "
    "cache file system was below its free-space watermark (min_free_bytes/min_free_percent).",
    registry=REGISTRY)
AUDIT_DROPPED = Counter(
    "dicomvault_gateway_audit_facts_dropped_total", "Audit facts (queries, retrieves, refused "
    "associations and tokens) dropped because the audit buffer was full or the broker did not "
    "take them; the action itself was not delayed.", registry=REGISTRY)
COMMITMENT_REQUESTS = Counter(
    "dicomvault_gateway_commitment_requests_total", "Storage Commitment requests (N-ACTION) received on "
    "the DIMSE port, by outcome: accepted (handed to the commitment service, 0x0000), refused "
    "(0x0124, the modalities table), invalid (0x0123, 0x0117, 0x0115), unavailable (0x0213, "
    "the broker did not take it).", ["outcome"], registry=REGISTRY)
