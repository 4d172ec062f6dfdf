"""Settings of the audit service: shared sections plus ``audit`` (syslog, aggregation)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from dicomvault.service import ServiceSettings
from dicomvault.settings import DatabaseSettings, HttpSettings


class AuditHttp(HttpSettings):
    """The audit service's HTTP listener: GET /api/v1/audit, /metrics, health."""

    port: int = Field(8087, ge=0, le=65535, description="TCP port; 0 picks a free one.")


class AuditDatabase(DatabaseSettings):
    """Where audit messages are kept (their own table, ``audit_messages``)."""

    url: str = Field(
        "sqlite+aiosqlite:///./var/audit.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path (embedded) or "
        "postgresql+asyncpg://… (production; may be the catalogue's database).")


class AuditSection(BaseModel):
    """What the audit service sends where."""

    syslog_url: str = Field(
        "", description="The audit record repository: tcp://host:514 or tls://host:6514 "
        "(RFC 5425 octet-counted framing). Empty: messages are only kept, never sent.")
    ca_file: Path | None = Field(
        None, description="PEM CA bundle that verifies the tls:// receiver (empty: the system "
        "trust store).")
    cert_file: Path | None = Field(
        None, description="PEM client certificate for the tls:// receiver (IHE ATNA node "
        "authentication), with key_file.")
    key_file: Path | None = Field(None, description="PEM private key of cert_file.")
    app_name: str = Field("dicomvault", description="RFC 5424 APP-NAME of every message.")
    msg_id: str = Field("DICOM+RFC3881", description="RFC 5424 MSGID of every message.")
    hostname: str = Field("", description="RFC 5424 HOSTNAME (empty: this host's name).")
    source_id: str = Field("dicomvault", description="AuditSourceID of every message.")
    enterprise_site_id: str = Field(
        "", description="AuditEnterpriseSiteID of every message (e.g. the hospital).")
    aggregate_s: float = Field(
        2.0, gt=0, description="DICOM Instances Transferred: instances of one study received "
        "in one association or STOW-RS request within this quiet period make one message.")
    aggregate_max_s: float = Field(
        60.0, gt=0, description="Longest an Instances Transferred message waits for more "
        "instances before it is sent anyway.")
    send_batch: int = Field(200, ge=1, description="Most messages sent per round.")
    retry_s: float = Field(1.0, gt=0, description="First delay before reconnecting to an "
                           "unreachable receiver; doubles up to retry_max_s.")
    retry_max_s: float = Field(30.0, gt=0, description="Ceiling of the reconnect delay.")
    group_id: str = Field("audit", description="Consumer group.")
    client_id: str = Field("audit", description="Kafka client id.")
    max_limit: int = Field(1000, ge=1, description="Ceiling of GET /api/v1/audit's limit.")


class AuditSettings(ServiceSettings):
    """Everything the audit service reads from ``DICOMVAULT_*``: the shared sections,
    ``database`` and ``audit``. Bearer tokens (``auth``) on /api/v1: the admin scope."""

    http: AuditHttp = Field(default_factory=AuditHttp,
                            description="GET /api/v1/audit, /metrics and health (port 8087).")
    database: AuditDatabase = Field(default_factory=AuditDatabase,
                                    description="The audit messages' own table.")
    audit: AuditSection = Field(default_factory=AuditSection,
                                description="Syslog receiver, message identity, aggregation.")
