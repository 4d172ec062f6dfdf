"""Settings of the hsm-archiver: shared sections plus ``hsm`` (catalogue, archives, eviction).

Archives are a list, given as JSON in ``DICOMVAULT_HSM__ARCHIVES``, for example::

    [{"id": "HSM1", "kind": "hsm", "rules": [{"modalities": ["CT"]}],
      "hsm": {"mount_point": "/mnt/hsm", "subdirectory": "vault", "layout": "tar-per-study"}},
     {"id": "PACS1", "kind": "pacs", "rules": [{}],
      "pacs": {"ae_title": "ORTHANC", "host": "10.0.0.5", "port": 4242,
               "move_destination": "DICOMVAULT"}}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from dicomvault import rules
from dicomvault.jobs import RetryPolicy
from dicomvault.service import WorkerSettings
from dicomvault.settings import HttpSettings


class Rule(rules.Rule):
    """Which studies go to an archive. Empty lists match anything; all given lists must match."""

    name: str = Field("default", description="Rule name, recorded as the job's created_by.")
    delay_s: float = Field(0.0, ge=0, description="Store this long after StudyStable.")


class HsmTarget(BaseModel):
    """A mounted file system (migrated to tape by HSM software) and our subdirectory on it."""

    mount_point: Path = Field(..., description="Where the HSM file system is mounted.")
    subdirectory: str = Field("dicomvault", description="Our folder under the mount point.")
    require_mount: bool = Field(True, description="Require os.path.ismount(mount_point); "
                                                  "false only for tests and plain folders.")
    sentinel: str = Field(".dicomvault-archive", description="File in the subdirectory whose "
                                                             "content names this archive id.")
    free_space_min_bytes: int = Field(1 << 30, ge=0,
                                      description="Stall the queue below this much free space.")
    layout: Literal["file-per-instance", "tar-per-study"] = Field(
        "file-per-instance", description="One file per instance, or one tar per study + index.")
    fsync: bool = Field(True, description="fsync every written file and its folder.")
    recall_timeout_s: float = Field(3600.0, gt=0,
                                    description="How long a retrieve waits for slow (tape) files.")
    recall_poll_s: float = Field(5.0, gt=0, description="How often a retrieve looks again.")

    @property
    def folder(self) -> Path:
        return self.mount_point / self.subdirectory


class PacsTarget(BaseModel):
    """An external PACS (Store and Remember): C-STORE to it, C-MOVE back to our gateway."""

    ae_title: str = Field(..., description="The remote AE title.")
    host: str = Field(..., description="The remote host.")
    port: int = Field(104, ge=1, le=65535, description="The remote DIMSE port.")
    calling_ae: str = Field("DICOMVAULT-ARC", description="Our calling AE title.")
    associations: int = Field(2, ge=1, le=16, description="Parallel associations for C-STORE.")
    move_destination: str = Field("DICOMVAULT",
                                  description="AE title the remote PACS moves studies to "
                                              "(our gateway, listed in its recall_aes).")
    timeout_s: float = Field(60.0, gt=0, description="DIMSE / network timeout.")


class ArchiveConfig(BaseModel):
    """One archive: a STORE queue named by ``id`` and a RETRIEVE queue ``<id>-retrieve``."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                    description="Archive id = STORE queue name.")
    kind: Literal["hsm", "pacs"] = Field(..., description="hsm or pacs (Store and Remember).")
    rules: list[Rule] = Field(default_factory=list,
                              description="Studies matching any rule are stored here.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Per-queue retries.")
    concurrency: int = Field(1, ge=1, le=32, description="Jobs run at once per queue.")
    readiness_interval_s: float = Field(5.0, gt=0,
                                        description="How often a stalled queue checks again.")
    hsm: HsmTarget | None = Field(None, description="Required when kind is hsm.")
    pacs: PacsTarget | None = Field(None, description="Required when kind is pacs.")

    @model_validator(mode="after")
    def _target(self) -> ArchiveConfig:
        if self.kind == "hsm" and self.hsm is None:
            raise ValueError(f"archive {self.id}: kind hsm needs an 'hsm' section")
        if self.kind == "pacs" and self.pacs is None:
            raise ValueError(f"archive {self.id}: kind pacs needs a 'pacs' section")
        return self

    @property
    def retrieve_queue(self) -> str:
        return f"{self.id}-retrieve"

    @property
    def tier(self) -> str:
        return self.kind


class EvictionSettings(BaseModel):
    """Removing studies from the cache tier once they are safely elsewhere."""

    enabled: bool = Field(False, description="Run the eviction sweep.")
    min_archive_copies: int = Field(1, ge=1, description="Verified copies on tiers other than "
                                                         "the cache a study needs (never 0).")
    idle_s: float = Field(30 * 86400.0, ge=0, description="Evict only studies not received or "
                                                          "recalled for this long.")
    interval_s: float = Field(300.0, gt=0, description="Time between sweeps.")
    dry_run: bool = Field(False, description="Only log and count what would be evicted.")


class HsmSection(BaseModel):
    """The service's own section."""

    catalogue_url: str = Field("http://127.0.0.1:8081", description="Catalogue REST API.")
    archives: list[ArchiveConfig] = Field(default_factory=list,
                                          description="Archives hosted by this service (JSON).")
    recall_tier_order: list[str] = Field(["hsm", "pacs"],
                                         description="Preferred tiers for a recall, best first.")
    eviction: EvictionSettings = Field(default_factory=EvictionSettings)
    client_id: str = Field("hsm-archiver", description="Consumer group / client id prefix.")
    adopt_retry_s: float = Field(5.0, gt=0,
                                 description="Retry delay of job adoption from the catalogue.")

    @model_validator(mode="after")
    def _unique(self) -> HsmSection:
        names = [a.id for a in self.archives] + [a.retrieve_queue for a in self.archives]
        if len(names) != len(set(names)):
            raise ValueError("archive ids (and their -retrieve queues) must be unique")
        return self


class ArchiverSettings(WorkerSettings):
    """The shared sections, HTTP on port 8082, and ``hsm``. Bearer tokens (``auth``): GET
    /api/v1/archives needs the read scope; any other method under /api/v1 the admin scope."""

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8082))
    hsm: HsmSection = Field(default_factory=HsmSection)
