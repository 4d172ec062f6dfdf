"""Settings of the stow-exporter: shared sections plus ``exporter``.

The exporters themselves are not settings: they are Exporter custom resources (the CRD's
schema), read from ``DICOMVAULT_EXPORTER__SPEC_FILE`` — one Exporter (a Deployment per
Exporter, as the operator renders it) or a YAML list of them (embedded mode). Secrets named
by the resources are files ``<DICOMVAULT_EXPORTER__SECRETS_DIR>/<secret>/<key>``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from dicomvault.service import WorkerSettings
from dicomvault.settings import HttpSettings


class Modality(BaseModel):
    """Where a ``dicom:<AE title>`` destination listens."""

    host: str = Field(description="Host name or address of the remote AE.")
    port: int = Field(ge=1, le=65535, description="Its DIMSE port.")


class ExporterSection(BaseModel):
    """The exporter's own section (``DICOMVAULT_EXPORTER__*``)."""

    spec_file: Path = Field(
        Path("./exporters.yaml"),
        description="YAML file: one Exporter resource, or a list of them (embedded mode).",
    )
    secrets_dir: Path = Field(
        Path("/var/run/secrets/dicomvault"),
        description="Folder of mounted Secrets: <secret name>/<key> files.",
    )
    catalogue_url: str = Field("http://127.0.0.1:8081", description="Catalogue REST API base URL.")
    request_timeout_s: float = Field(
        60.0, gt=0, description="Timeout of one STOW-RS request or DIMSE association step.")
    catalogue_timeout_s: float = Field(15.0, gt=0, description="Timeout of catalogue calls.")
    ca_file: Path | None = Field(
        None, description="Extra CA bundle (PEM) to trust for https web applications.")
    modalities: dict[str, Modality] = Field(
        default_factory=dict,
        description="AE title -> host/port for dicom: URIs, as JSON "
                    '(e.g. {"PACS": {"host": "10.0.0.5", "port": 104}}).',
    )
    calling_ae_title: str = Field(
        "DICOMVAULT", description="Calling AE title of C-STORE when the Exporter has no aeTitle.")
    tick_s: float = Field(
        1.0, gt=0, description="How often the queue re-checks readiness (suspended exporter).")
    history: int = Field(500, ge=0, description="Finished exports kept for GET /api/v1/exports.")
    schedule_recheck_s: float = Field(
        60.0, gt=0, description="How often a job waiting for a schedule window is looked at "
                                "when no window opens within eight days (otherwise it waits "
                                "until the next window opens).")
    adopt_retry_s: float = Field(
        5.0, gt=0, description="Retry interval of adopting unfinished jobs from the catalogue.")
    client_id: str = Field("stow-exporter", description="Kafka client id.")
    publish_events: bool = Field(True, description="Publish StudyExported / ExportFailed.")


class ExporterSettings(WorkerSettings):
    """The shared sections, HTTP on port 8084, and ``exporter``. Bearer tokens (``auth``): GET
    /api/v1/exporters and /api/v1/exports need the read scope; POST /api/v1/exports (a manual
    export) the admin scope."""

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8084))
    exporter: ExporterSection = Field(default_factory=ExporterSection)
