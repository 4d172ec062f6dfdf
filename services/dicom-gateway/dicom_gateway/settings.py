"""Settings of the gateway: shared sections plus ``gateway`` (DIMSE listener, policies)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field

from dicomvault.service import WorkerSettings


class DuplicatePolicy(StrEnum):
    """What a C-STORE of an already stored SOP Instance UID with *different* bytes answers.

    Identical bytes are always Success with one copy, whatever the policy.
    """

    REJECT = "reject"  # failure 0x0111 (Duplicate SOP Instance); the first copy stays
    REPLACE = "replace"  # the new bytes replace the old copy; InstanceStored published; Success
    KEEP = "keep"  # the first copy stays, the new bytes are dropped; Success (0x0000)


class Modality(BaseModel):
    """One remote application entity of the modalities table (keyed by its AE title)."""

    host: str = Field("", description="Where it listens (C-MOVE destination); '' = nowhere.")
    port: int = Field(0, ge=0, le=65535, description="Its DIMSE port; 0 = not a destination.")
    tls: bool = Field(False, description="C-MOVE sub-associations to it use DICOM TLS "
                      "(our tls_cert_file/tls_key_file as client certificate, tls_ca_file "
                      "to verify it).")
    may_store: bool = Field(True, description="May send C-STORE to us.")
    may_query: bool = Field(True, description="May send C-FIND.")
    may_retrieve: bool = Field(True, description="May send C-MOVE and C-GET.")
    may_request_commitment: bool = Field(True, description="May request storage commitment.")


class GatewaySection(BaseModel):
    """The gateway's DIMSE listener and its policies."""

    ae_title: str = Field("DICOMVAULT", max_length=16, description="Our (called) AE title.")
    dimse_host: str = Field("127.0.0.1", description="DIMSE bind address; 0.0.0.0 in a container.")
    dimse_port: int = Field(11112, ge=0, le=65535, description="DIMSE port; 0 picks a free one.")
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; any other is rejected "
        "(rejected-permanent, calling AE title not recognised).",
    )
    accept_any_calling_ae: bool = Field(
        False, description="Accept every calling AE title (development only; warned at start)."
    )
    duplicate_policy: DuplicatePolicy = Field(
        DuplicatePolicy.REJECT,
        description="Same SOP Instance UID with different bytes: reject (0x0111, first copy "
        "kept), replace (new copy wins, Success) or keep (first copy kept, Success).",
    )
    catalogue_url: str = Field(
        "http://127.0.0.1:8081", description="Base URL of the catalogue REST API (C-FIND, sweep)."
    )
    catalogue_timeout_s: float = Field(
        10.0, gt=0, description="Timeout of one catalogue API request."
    )
    max_pdu: int = Field(0, ge=0, description="Maximum PDU size we receive; 0 = unlimited.")
    max_associations: int = Field(
        32, ge=1, description="Concurrent associations per DIMSE process; more are rejected "
        "(rejected-transient, local limit exceeded).",
    )
    workers: int = Field(
        1, ge=1, le=64,
        description="DIMSE processes sharing the DIMSE port with SO_REUSEPORT. 1 runs DIMSE "
        "inside the service process; N>1 starts N worker processes. One process carries "
        "~500-800 small or ~250-440 CT instances/s over one association (measured on 2 "
        "cores); associations sharing a process wait for each other's writes (docs/gateway.md"
        ", Workers).",
    )
    drain_s: float = Field(
        60.0, ge=0, description="On SIGTERM: how long associations and STOW-RS uploads in "
        "flight may take to finish after readiness turned false and the listeners closed "
        "(then they are aborted). The chart's terminationGracePeriodSeconds follows it.",
    )
    fast_storage: bool = Field(
        True, description="Serve associations that only store (and echo) on the node's asyncio "
        "loop instead of pynetdicom's threads (same checks, statuses and durability; about "
        "twice the rate). Other associations and the TLS port always use pynetdicom.",
    )
    reconcile_interval_s: float = Field(
        60.0, gt=0, description="How often the sweep looks for stored files the catalogue lacks."
    )
    reconcile_window_s: float = Field(
        3600.0, gt=0, description="The periodic sweep looks at files modified this recently; "
        "the start-up sweep looks at every file.",
    )
    reconcile_batch: int = Field(
        500, ge=1, description="SOP Instance UIDs per 'which are unknown?' catalogue request."
    )
    store_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for the broker to take InstanceStored before a "
        "C-STORE fails (and its new file is removed).",
    )
    inline_writes: bool = Field(
        True, description="Write a C-STORE's file on its DIMSE worker's event loop when no "
        "other store of that worker is under way, instead of handing it to a write thread and "
        "back (two thread hand-overs less: ~20 % more instances/s over one association, "
        "measured here). Only for a cache tier on a file system; object storage always uses "
        "the threads. Turn off when the file system can stall for long (a network file "
        "system): a stalled write then holds up that worker's other associations too.",
    )
    inline_max_bytes: int = Field(
        65536, ge=0, description="With inline_writes, a C-STORE whose dataset is at most this "
        "large is written on the loop even while other stores of its worker are under way: "
        "its write and fsync hold the loop for well under a millisecond, less than the thread "
        "hand-overs cost in CPU (small images over 4 associations: 14 % less gateway CPU per "
        "instance, measured here). Larger datasets then go to a write thread. 0: only when no "
        "other store is under way.",
    )
    async_flushes: bool = Field(
        True, description="With inline_writes, a store written on the loop while another "
        "store of its worker is under way awaits its two flushes (the file's fdatasync, the "
        "folder's fsync) through Linux native AIO instead of blocking the loop: the worker "
        "reads, answers and publishes for its other associations while the device works (small "
        "images over 4 associations: ~10 % more instances/s, measured here). A store alone "
        "still flushes blocking: nothing else waits for the loop then, and the hand-over to a "
        "kernel worker and back would only add latency. Without native AIO "
        "(another OS, a seccomp profile refusing io_setup) every flush blocks, as when off.",
    )
    spare_files: bool = Field(
        False, description="With inline_writes, after a C-STORE's response, while the worker "
        "waits for the next request and no other store is under way, make and flush one empty "
        "temp file in the folder of the series just stored: the next instance of that series "
        "is written into it instead of creating (and, on ext4, flushing the folder entry of) "
        "its temp file on the store's critical path. It pays only where creating a file is "
        "slow: on ext4 without a journal shortly after many files were deleted (+3 % small "
        "instances/s over one association there). Elsewhere its extra flush per instance "
        "costs more than it saves (measured here on a machine with fast creates: 5 pairs, "
        "6 % fewer instances/s on average, ~0.1-0.17 ms more CPU per instance), hence off by "
        "default. Same durability either way: the next store still flushes its file and its "
        "folder before the event. Not after O_DIRECT writes or STOW-RS parts.",
    )
    spare_max_age_s: float = Field(
        5.0, gt=0, le=600, description="A spare temp file unused this long is removed (and "
        "its series and study folders when that leaves them empty), so a series that got its "
        "last instance keeps no temp file for long.",
    )
    max_dataset_bytes: int = Field(
        2 * 1024**3, ge=1, description="Largest C-STORE data set the storage fast path "
        "receives (it holds a data set in memory until it is complete). The rest of a larger "
        "one is read and dropped as it comes, and the request is refused with 0xA700 (Out "
        "of Resources) and a comment naming the limit; the association stays usable. Same "
        "default as dicomweb.max_request_bytes (STOW-RS). On associations pynetdicom serves "
        "(storage with Query/Retrieve, the TLS port) a message past it aborts the association.")
    max_inflated_bytes: int = Field(
        1024**3, ge=1, description="Ceiling of a deflated dataset once inflated (the smaller "
        "of this and 200x its received size); above it the object is refused (C-STORE "
        "0xA700, STOW-RS 413) without holding the inflated bytes.")
    min_free_bytes: int = Field(
        1024**3, ge=0, description="Free-space watermark of the cache file system: below it "
        "every store is refused (C-STORE 0xA700, STOW-RS 507) before the disk fills; 0 = off.")
    min_free_percent: float = Field(
        5.0, ge=0, le=100, description="Free-space watermark in percent of the cache file "
        "system; a store is refused when free space is below either watermark; 0 = off.")
    acse_timeout_s: float = Field(30.0, gt=0, description="Association negotiation timeout.")
    dimse_timeout_s: float = Field(60.0, gt=0, description="DIMSE message timeout.")
    network_timeout_s: float = Field(60.0, gt=0, description="Idle network timeout.")
    client_id: str = Field("dicom-gateway", description="Kafka client id of the publisher.")
    # --- remote AEs, retrieve, DICOM TLS (docs/gateway.md "Modalities", "Retrieve", "TLS")
    modalities: dict[str, Modality] = Field(
        default_factory=dict,
        description="Remote AEs by AE title (JSON): host, port, tls, may_store, may_query, "
        "may_retrieve, may_request_commitment. Listed AEs may associate. An AE only in "
        "allowed_calling_aes (or any AE under accept_any_calling_ae) may store and query, "
        "not retrieve, and is no C-MOVE destination.",
    )
    recall_aes: list[str] = Field(
        default_factory=list,
        description="AE titles of remote PACS that send our own studies back (the hsm-archiver's "
        "pacs archives C-MOVE them to us). They may associate and C-STORE; what they send is "
        "recorded as InstanceStored(source='recall') and replaces a cache copy whatever the "
        "duplicate_policy. Query/retrieve rights come from their modalities entry, if any.",
    )
    recall_wait_s: float = Field(
        30.0, ge=0, description="How long a C-MOVE/C-GET waits (sending Pending responses) for "
        "instances that are not in the cache after asking for their recall; then they fail.",
    )
    tls_port: int = Field(0, ge=0, le=65535, description="DICOM TLS port; 0 = no TLS listener.")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain) of the TLS "
                                       "listener, also our client certificate for TLS "
                                       "C-MOVE destinations.")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_ca_file: Path | None = Field(None, description="PEM CA bundle that verifies peers' "
                                     "certificates (clients, TLS destinations).")
    tls_require_client_cert: bool = Field(
        True, description="TLS clients must present a certificate signed by tls_ca_file.")


class DicomWebSection(BaseModel):
    """DICOMweb (STOW-RS, QIDO-RS, WADO-RS) under /dicomweb on the HTTP port."""

    base_url: str = Field(
        "", description="Public base URL of /dicomweb used in RetrieveURL (e.g. behind a "
        "proxy: https://pacs.example.org/dicomweb); empty: taken from the request.")
    max_request_bytes: int = Field(
        2 * 1024**3, ge=1, description="Largest STOW-RS request body; larger ones get 413.")
    default_limit: int = Field(
        1000, ge=1, description="QIDO-RS matches per response when the request sets no limit.")
    max_limit: int = Field(10_000, ge=1, description="Largest QIDO-RS limit accepted.")
    max_url_bytes: int = Field(
        8192, ge=256, description="Longest request line (path + query); longer: 414.")
    max_header_bytes: int = Field(
        16384, ge=1024, description="Largest request header section; larger: 431.")
    recall_retry_after_s: int = Field(
        60, ge=1, description="Retry-After of a WADO-RS 503 for a study not in the cache tier "
        "(a recall has been requested).")
    bulkdata_threshold_bytes: int = Field(
        1024, ge=0, description="WADO-RS /metadata: binary values longer than this are sent as "
        "a BulkDataURI (…/bulkdata/{tag-path}) instead of inline; Pixel Data always is.")


class ViewerSection(BaseModel):
    """The OHIF viewer served at /viewer (docs/viewer.md)."""

    dist_dir: Path | None = Field(
        None, description="Folder of the OHIF build (`make viewer` puts it in .ohif/dist; "
        "/opt/dicomvault/ohif in the image). Unset: no /viewer.")
    dicomweb_url: str = Field(
        "", description="The DICOMweb URL the viewer's browser uses; empty: "
        "dicomweb.base_url, else taken from the request.")
    oidc: list[dict] = Field(
        default_factory=list, description="OHIF's `oidc` section (JSON list: authority, "
        "client_id, redirect_uri, response_type, scope…): with auth.enabled the viewer signs "
        "users in there and sends the access token to /dicomweb.")


class HttpsSection(BaseModel):
    """Deprecated: TLS on the gateway's HTTP port now lives in ``http`` like every service's
    (``DICOMVAULT_HTTP__CERT_FILE``…). Still honoured when ``http`` names no certificate,
    with a warning at start-up."""

    cert_file: Path | None = Field(
        None, description="Deprecated: use http.cert_file (DICOMVAULT_HTTP__CERT_FILE).")
    key_file: Path | None = Field(
        None, description="Deprecated: use http.key_file (DICOMVAULT_HTTP__KEY_FILE).")
    key_password_file: Path | None = Field(
        None, description="Deprecated: use http.key_password_file.")


class GatewaySettings(WorkerSettings):
    """Everything the gateway reads from ``DICOMVAULT_*``: the shared sections (``http``:
    /metrics, /healthz, /readyz and /dicomweb on the default port 8080; ``cache``: the tier it
    writes to; ``auth``: bearer tokens on /dicomweb), ``gateway``, ``dicomweb``, ``viewer``
    and the deprecated ``https``."""

    gateway: GatewaySection = Field(
        default_factory=GatewaySection, description="DIMSE listener and its policies."
    )
    dicomweb: DicomWebSection = Field(
        default_factory=DicomWebSection, description="DICOMweb under /dicomweb."
    )
    viewer: ViewerSection = Field(
        default_factory=ViewerSection, description="The OHIF viewer at /viewer.")
    https: HttpsSection = Field(
        default_factory=HttpsSection, description="Deprecated: TLS settings moved to http."
    )
