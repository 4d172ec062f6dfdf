"""Settings sections shared by every service.

Each service has one pydantic-settings class (``env_prefix="DICOMVAULT_"``, nested sections
separated by ``__``), built from these sections plus its own. So
``DICOMVAULT_BUS__BOOTSTRAP_SERVERS`` is read by every service and
``DICOMVAULT_GATEWAY__AE_TITLE`` only by the gateway. Settings are passed as arguments,
never read from module globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from dicomvault.store.s3store import S3Settings

SETTINGS_CONFIG = SettingsConfigDict(
    env_prefix="DICOMVAULT_",
    env_nested_delimiter="__",
    extra="ignore",
)


class TopicNames(BaseModel):
    """Kafka topic names (the defaults are the v1 contract names)."""

    instances: str = Field("dicomvault.instances.v1", description="InstanceStored events.")
    studies: str = Field("dicomvault.studies.v1", description="Study-scoped facts, keyed by Study UID.")
    jobs: str = Field("dicomvault.jobs.v1", description="Job lifecycle events.")
    job_commands: str = Field("dicomvault.job-commands.v1", description="Commands to job owners.")
    dlq: str = Field("dicomvault.dlq.v1", description="Records that kept failing, with the error.")
    volumes: str = Field("dicomvault.volumes.v1",
                         description="Optical volume facts (VolumeClosed, MediaRequested, …).")
    audit: str = Field("dicomvault.audit.v1",
                       description="Audit facts without another event (queries, retrieves, "
                       "refused associations and logins, start/stop), for the audit service.")

    def all(self) -> list[str]:
        return [self.instances, self.studies, self.jobs, self.job_commands, self.dlq,
                self.volumes, self.audit]


class BusSettings(BaseModel):
    """Connection to the Kafka-compatible broker and the consumer loop's policy."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port…]")
    topics: TopicNames = Field(default_factory=TopicNames)
    partitions: int = Field(4, ge=1, description="Partitions for topics this service creates.")
    replication_factor: int = Field(1, ge=1, description="Replication factor for created topics.")
    request_timeout_s: float = Field(15.0, gt=0, description="Producer send / metadata timeout.")
    max_attempts: int = Field(5, ge=1, description="Tries of a failing record before the DLQ.")
    retry_backoff_s: float = Field(0.2, gt=0, description="First retry delay; doubles each try.")
    retry_backoff_max_s: float = Field(10.0, gt=0, description="Ceiling of the retry delay.")
    health_check_interval_s: float = Field(
        5.0, gt=0, description="How often a consumer checks that the broker did not restart empty."
    )
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer group session timeout.")
    offset_gap_grace_s: float = Field(
        5.0, ge=0, description="How long a consumer waits for offsets a fetch skipped (the "
        "embedded broker can show a partition's records out of order when several producers "
        "write to it) before it steps over them as deleted; 0 never waits.")


class HttpSettings(BaseModel):
    """An HTTP listener (REST API, /metrics, health); HTTPS with ``cert_file`` + ``key_file``."""

    host: str = Field("127.0.0.1", description="Bind address; 0.0.0.0 in a container.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    cert_file: Path | None = Field(
        None, description="PEM certificate chain; with key_file the port speaks HTTPS only.")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    key_password_file: Path | None = Field(
        None, description="File holding the private key's password, if it is encrypted.")
    client_ca_file: Path | None = Field(
        None, description="PEM CA bundle that verifies client certificates (mutual TLS); "
        "clients without one are still served unless require_client_cert.")
    require_client_cert: bool = Field(
        False, description="Refuse TLS clients without a certificate signed by client_ca_file "
        "(note: Kubernetes probes present none).")

    @property
    def tls(self) -> bool:
        """Whether this listener speaks HTTPS."""
        return self.cert_file is not None and self.key_file is not None


class ClientSettings(BaseModel):
    """How this service calls the archive's own HTTP services (the catalogue REST API)."""

    ca_file: Path | None = Field(
        None, description="PEM CA bundle that verifies the archive's HTTPS services "
        "(empty: the system trust store).")
    token_file: Path | None = Field(
        None, description="Bearer token (a JWT the site's identity provider minted for this "
        "service, e.g. a mounted Kubernetes Secret) sent on every catalogue request; re-read "
        "when the file changes; never logged.")
    cert_file: Path | None = Field(
        None, description="PEM client certificate for mutual TLS (with key_file).")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")


class LogSettings(BaseModel):
    """Structured logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(True, description="JSON lines (true) or human-readable console.")


class DatabaseSettings(BaseModel):
    """The catalogue database."""

    url: str = Field(
        "sqlite+aiosqlite:///./var/catalogue.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://…",
    )
    url_file: Path | None = Field(
        None, description="Read the URL from this file instead (a mounted Kubernetes Secret)."
    )
    echo: bool = False

    def resolved_url(self) -> str:
        if self.url_file is not None:
            return self.url_file.read_text().strip()
        return self.url


class CacheSettings(BaseModel):
    """The online cache tier, where the gateway writes what it receives
    (``dicomvault.store.open_cache`` opens it)."""

    backend: Literal["fs", "s3"] = Field(
        "fs", description="fs (local or shared file system) or s3 (S3-compatible storage).")
    root: Path = Field(Path("./var/cache"), description="Root folder of the cache tier (fs).")
    fsync: bool = Field(True, description="fsync every object and its folder before acking (fs).")
    direct_io_min_bytes: int = Field(
        131072, ge=0,
        description="Objects at least this large are written with O_DIRECT, straight from an "
        "aligned buffer to the device instead of through newly allocated page-cache pages (fs "
        "with fsync on; 0: never). Measured here: a 525 kB CT slice 1.7 instead of 3.0 ms per durable write, "
        "2.1 MB 3.0 instead of 7.8 ms; at 16 kB the page cache is cheaper. A file system that "
        "refuses O_DIRECT is written through the page cache.")
    folder_flush: Literal["auto", "each", "batched"] = Field(
        "auto",
        description="How a new file's final name is made durable (fs with fsync on). each: "
        "the folder is flushed after every file's rename, before the store completes (two "
        "device flushes per file). batched: the file is flushed once under a temp name that "
        "carries its SHA-256 and final name, the final name is a hard link, and each folder is "
        "flushed once per folder_flush_delay_ms for all names made in it; after a crash the "
        "gateway's reconcile sweep puts every complete temp file back under its final name "
        "(docs/gateway.md). auto: batched where the cache is on ext3/ext4, XFS, btrfs or F2FS "
        "(which write a new file's folder entry with the file's own fsync), else each.")
    folder_flush_delay_ms: int = Field(
        50, ge=0, le=10_000,
        description="batched folder_flush: how long names are gathered before their folder "
        "is flushed (and their temp names removed).")
    s3: S3Settings = Field(default_factory=S3Settings,
                           description="Object storage, used when backend is s3.")
