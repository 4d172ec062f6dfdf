"""Settings of the commitment service (env: DICOMVAULT_COMMITMENT__…, DICOMVAULT_HTTP__PORT, …)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from dicomvault.jobs import RetryPolicy
from dicomvault.service import WorkerSettings
from dicomvault.settings import HttpSettings


class Permissions(BaseModel):
    """What a remote AE may ask of the archive (the full table comes with the AE registry)."""

    model_config = ConfigDict(extra="allow")

    may_request_commitment: bool = Field(
        False, description="May send Storage Commitment requests (N-ACTION) to the archive.")


class Modality(BaseModel):
    """A remote AE: where to reach it and what it may do."""

    model_config = ConfigDict(extra="allow")

    host: str = Field(..., description="Host name or address of the remote AE's DIMSE listener.")
    port: int = Field(..., ge=1, le=65535, description="DIMSE port of the remote AE.")
    permissions: Permissions = Field(default_factory=Permissions,
                                     description="What this AE may ask of the archive.")


class VerifyPolicy(BaseModel):
    """What "committed" means for the SCP. The catalogue record must always exist."""

    storage: bool = Field(True, description="The object is present in storage: the cache file "
                          "exists, or (not cached) an archive tier holds it.")
    size: bool = Field(True, description="The cache file's size equals the catalogued size.")
    checksum: bool = Field(False, description="Re-read the cache file and compare its SHA-256.")
    archived: bool = Field(False, description="Safely archived: on at least one archive tier "
                           "(hsm, optical, pacs), not only in the cache.")


class CommitmentSection(BaseModel):
    """Storage Commitment Push Model (1.2.840.10008.1.20.1), SCP and SCU."""

    ae_title: str = Field("DICOMVAULT", max_length=16, description="Our AE title (the archive's).")
    dimse_host: str = Field("127.0.0.1", description="Bind address of our DIMSE listener.")
    dimse_port: int = Field(11113, ge=0, le=65535, description="DIMSE port (0: a free one).")
    catalogue_url: str = Field("http://127.0.0.1:8081", description="The catalogue REST API.")
    modalities: dict[str, Modality] = Field(
        default_factory=dict,
        description="Remote AEs by AE title: {host, port, permissions}. Associations from AEs "
        "not listed are rejected (calling AE title not recognized).")
    policy: VerifyPolicy = Field(default_factory=VerifyPolicy)
    report_timeout_s: float = Field(
        600.0, gt=0, description="SCU: how long to wait for the N-EVENT-REPORT of one request.")
    report_retry: RetryPolicy = Field(
        default_factory=lambda: RetryPolicy(max_retries=5, initial_delay_s=10, max_delay_s=600),
        description="SCP: retries of an undelivered N-EVENT-REPORT, then the job fails.")
    request_retry: RetryPolicy = Field(
        default_factory=lambda: RetryPolicy(max_retries=3, initial_delay_s=30, max_delay_s=900),
        description="SCU: retries of a request (peer down, no report, instances not committed "
        "— those are re-sent by C-STORE before asking again), then the job fails.")
    unknown_wait_s: float = Field(
        5.0, ge=0,
        description="SCP: how long an instance the catalogue does not know is looked up again "
        "(every 0.25 s) before the report calls it No such object instance (0x0112). A "
        "modality often asks right after its last C-STORE, before the catalogue has applied it "
        "(~0.1-0.3 s with the catalogue's default fetch wait). 0: report at once.")
    same_association: bool = Field(
        True, description="SCP: send the N-EVENT-REPORT on the requesting association while it "
        "is still open; false: always open a new association to the modality.")
    delete_after_commit: bool = Field(
        False, description="SCU default when a request does not say: evict the study from the "
        "cache after a full success, only if another verified copy exists.")
    dimse_timeout_s: float = Field(30.0, gt=0, description="DIMSE response timeout.")
    acse_timeout_s: float = Field(30.0, gt=0, description="Association negotiation timeout.")
    network_timeout_s: float = Field(60.0, gt=0, description="Idle association timeout.")
    concurrency: int = Field(2, ge=1, description="Jobs of each queue run at the same time.")
    recent: int = Field(500, ge=10, description="Transactions kept for GET /api/v1/commitments.")


class CommitmentSettings(WorkerSettings):
    """The shared sections, HTTP on port 8085, and ``commitment``. Bearer tokens (``auth``):
    GET /api/v1/commitments needs the read scope; POST /api/v1/commitments (a commitment
    request) the admin scope."""

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8085))
    commitment: CommitmentSection = Field(default_factory=CommitmentSection)
