"""Settings of the optical-burner: shared sections plus ``optical``.

Lists and maps are given as JSON in environment variables, for example::

    DICOMVAULT_OPTICAL__ARCHIVE_ID=OPTICAL1
    DICOMVAULT_OPTICAL__VOLUME_STORE=/var/lib/dicomvault/volumes
    DICOMVAULT_OPTICAL__MEDIA_TYPE=DVD-R
    DICOMVAULT_OPTICAL__RULES='[{"modalities": ["CT", "MR"], "delay_s": 3600}]'
    DICOMVAULT_OPTICAL__RETRY='{"max_retries": 10, "initial_delay_s": 30}'
    DICOMVAULT_OPTICAL__BURNER__BACKEND=command
    DICOMVAULT_OPTICAL__BURNER__COMMAND='xorriso -as cdrecord -v dev={device} {iso}'
    DICOMVAULT_OPTICAL__BURNER__DEVICES='["/dev/sr0"]'
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from dicomvault import rules
from dicomvault.jobs import RetryPolicy
from dicomvault.service import WorkerSettings
from dicomvault.settings import CacheSettings, HttpSettings

MB = 1000 * 1000

# Nominal user-data capacities of the media (decimal units as printed on the discs).
DEFAULT_MEDIA: dict[str, int] = {
    "CD-R": 700 * 1024 * 1024,       # 80 min CD-R: 360,000 sectors × 2048 bytes
    "DVD-R": 4_700 * MB,
    "DVD-R-DL": 8_500 * MB,
    "BD-R": 25_000 * MB,
}
DEFAULT_PREFIX: dict[str, str] = {"CD-R": "CD", "DVD-R": "DVD", "DVD-R-DL": "DVDDL", "BD-R": "BD"}


class Rule(rules.Rule):
    """Which studies go to the optical archive (the StudyStable fields). Empty lists match
    anything; every given list must match one of the study's values (case-insensitive)."""

    name: str = Field("default", description="Rule name, recorded as the job's created_by.")
    delay_s: float = Field(0.0, ge=0, description="Write the study this long after StudyStable.")


class BurnerSettings(BaseModel):
    """The burner back end of this archive."""

    backend: Literal["iso-folder", "command", "robot-hotfolder"] = Field(
        "iso-folder", description="iso-folder: images written to a folder; command: a burning "
                                  "tool per copy; robot-hotfolder: a disc publisher's hot folder.")
    iso_folder: Path = Field(Path("./var/optical/iso"),
                             description="iso-folder: where images are written "
                                         "(<label>-<copy>.iso).")
    command: str = Field("xorriso -as cdrecord -v dev={device} {iso}",
                         description="command: template; placeholders {iso} {device} {label} "
                                     "{copy} {volid}. Split like a shell line, run without a "
                                     "shell.")
    devices: list[str] = Field(["/dev/sr0"],
                               description="command: drives; copy n uses devices[(n-1) % len].")
    readback: str = Field("{device}", description="command: what to read back after burning "
                                                  "(a device or file; a 'stdio:' prefix is "
                                                  "dropped); empty: the image itself.")
    timeout_s: float = Field(3600.0, gt=0, description="command / robot: longest burn of one "
                                                       "copy.")
    hot_folder: Path = Field(Path("./var/optical/hotfolder"),
                             description="robot-hotfolder: the disc publisher's input folder.")
    job_suffix: str = Field(".JRQ", description="robot-hotfolder: suffix of the job file.")
    done_suffix: str = Field(".DON", description="robot-hotfolder: the robot's success file.")
    error_suffix: str = Field(".ERR", description="robot-hotfolder: the robot's error file.")
    poll_s: float = Field(2.0, gt=0, description="robot-hotfolder: how often to look for the "
                                                 "robot's answer.")
    max_attempts: int = Field(3, ge=1, description="Tries of one copy per burn run.")
    retry_backoff_s: float = Field(30.0, ge=0, description="Delay between tries, doubling.")
    retry_after_s: float = Field(600.0, ge=0, description="A Closed volume whose burn failed is "
                                                          "tried again this long after.")


class OpticalSection(BaseModel):
    """The service's own section: one optical archive."""

    archive_id: str = Field("OPTICAL1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                            description="Archive id recorded in StudyArchived.archive_id.")
    volume_store: Path = Field(Path("./var/optical/volumes"),
                               description="Persistent folder holding one folder per logical "
                                           "volume (instance files, manifest, image).")
    media: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MEDIA),
                                  description="Media types and capacities in bytes (JSON map).")
    media_type: str = Field("DVD-R", description="Media type of new volumes (a key of media).")
    label_prefix: str = Field("", pattern=r"^[A-Z0-9]{0,10}$",
                              description="Label prefix; empty: CD, DVD, DVDDL or BD by media "
                                          "type. Labels are <prefix>-<6 digits>.")
    reserve_bytes: int = Field(4 * MB, ge=0, description="Space per medium kept for the file "
                                                         "system, DICOMDIR and README.")
    per_instance_overhead_bytes: int = Field(1024, ge=0,
                                             description="Space counted per instance for its "
                                                         "DICOMDIR and directory records.")
    close_after_s: float = Field(7 * 86400.0, gt=0,
                                 description="Close an open volume this long after its first "
                                             "study.")
    close_fill_ratio: float = Field(0.98, gt=0, le=1,
                                    description="Close an open volume filled beyond this ratio.")
    copies: int = Field(1, ge=1, le=16, description="Copies burned per volume (2: off-site).")
    burner: BurnerSettings = Field(default_factory=BurnerSettings)
    rock_ridge: bool = Field(True, description="Add Rock Ridge names to the image (ISO 9660 "
                                               "level-1 names are always there).")
    joliet: bool = Field(False, description="Add a Joliet tree to the image.")
    index_htm: bool = Field(True, description="Add an INDEX.HTM listing the studies.")
    mount_path: Path = Field(Path("/media/dicomvault"),
                             description="Where offline volumes are mounted: <mount_path>/<label> "
                                         "or the disc itself at <mount_path> (its DICOMDIR "
                                         "File-set ID names the volume).")
    catalogue_url: str = Field("http://127.0.0.1:8081", description="Catalogue REST API.")
    rules: list[Rule] = Field(default_factory=list,
                              description="Studies matching any rule are written (JSON list).")
    client_id: str = Field("optical-burner", description="Consumer group / client id prefix.")
    sweep_s: float = Field(5.0, gt=0, description="How often volume ages and unfinished "
                                                  "burns are looked at (the volume sweep).")
    retry: RetryPolicy = Field(default_factory=RetryPolicy,
                               description="Retries of the STORE and RETRIEVE jobs.")
    media_recheck_s: float = Field(300.0, gt=0,
                                   description="How often a RETRIEVE job waiting for an "
                                               "offline volume runs again (each run is a job "
                                               "event); a mounted disc is noticed sooner, by "
                                               "the sweep.")
    recall_tier_order: list[str] = Field(
        ["hsm", "pacs", "optical"],
        description="Preferred tiers for a recall, best first (the same list as the "
                    "hsm-archiver's): a RecallRequested is recalled from optical only when no "
                    "tier ranked ahead of optical holds a verified copy.")
    adopt_retry_s: float = Field(5.0, gt=0,
                                 description="Retry delay of job adoption from the catalogue.")
    stale_request_grace_s: float = Field(
        30.0, ge=0, description="How long a media request the catalogue shows may have no "
                                "RETRIEVE job waiting for it before the sweep withdraws it "
                                "(longer than the catalogue takes to apply a withdrawal).")

    @model_validator(mode="after")
    def _media(self) -> OpticalSection:
        if self.media_type not in self.media:
            raise ValueError(f"media_type {self.media_type!r} is not in media {list(self.media)}")
        if self.media[self.media_type] <= self.reserve_bytes:
            raise ValueError("the medium's capacity must exceed reserve_bytes")
        return self

    @property
    def store_queue(self) -> str:
        return self.archive_id

    @property
    def retrieve_queue(self) -> str:
        return f"{self.archive_id}-retrieve"

    @property
    def capacity(self) -> int:
        return self.media[self.media_type]

    @property
    def prefix(self) -> str:
        return self.label_prefix or DEFAULT_PREFIX.get(self.media_type, "VOL")


class OpticalCacheSettings(CacheSettings):
    """The cache tier this service reads studies from and recalls them into."""


class OpticalSettings(WorkerSettings):
    """The shared sections, HTTP on port 8083, and ``optical``. Bearer tokens (``auth``): GET
    /api/v1/* (volumes, media requests, queues, jobs) needs the read scope; the POSTs (close,
    burn, release, retrieve) and DELETE of a volume the admin scope."""

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8083))
    cache: OpticalCacheSettings = Field(default_factory=OpticalCacheSettings)
    optical: OpticalSection = Field(default_factory=OpticalSection)
