"""The settings every service class starts from: the sections they all repeat.

A service's settings class derives from ``ServiceSettings`` (or ``WorkerSettings`` when it
reads the cache tier and calls the catalogue) and adds its own section, named after it::

    class ArchiverSettings(WorkerSettings):
        http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8082))
        hsm: HsmSection = Field(default_factory=HsmSection)

The environment names stay those of the sections (``DICOMVAULT_BUS__BOOTSTRAP_SERVERS``,
``DICOMVAULT_HTTP__PORT``, ``DICOMVAULT_AUTH__ENABLED``…); only ``http``'s default port is
the service's own, so a service that listens elsewhere overrides that one field.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from dicomvault.auth import AuthSettings
from dicomvault.settings import (
    SETTINGS_CONFIG,
    BusSettings,
    CacheSettings,
    ClientSettings,
    HttpSettings,
    LogSettings,
)


class ServiceSettings(BaseSettings):
    """Broker, logs, the HTTP listener and the bearer tokens on its /api/v1."""

    model_config = SETTINGS_CONFIG

    bus: BusSettings = Field(default_factory=BusSettings, description="Broker and topics.")
    log: LogSettings = Field(default_factory=LogSettings, description="Structured logging.")
    http: HttpSettings = Field(
        default_factory=HttpSettings,
        description="REST API, /metrics and health listener; HTTPS with cert_file and key_file.")
    auth: AuthSettings = Field(
        default_factory=AuthSettings,
        description="Bearer tokens (JWT) on the REST API (/api/v1); /metrics, /healthz and "
        "/readyz stay open. Which scope each route needs: the service's page under docs/.")


class WorkerSettings(ServiceSettings):
    """A service that works on stored studies: it reads (and recalls into) the cache tier
    and asks the catalogue REST API which instances a study has and where."""

    cache: CacheSettings = Field(default_factory=CacheSettings,
                                 description="The cache tier (dicomvault.store.open_cache).")
    client: ClientSettings = Field(
        default_factory=ClientSettings,
        description="Calls to the catalogue: CA bundle (HTTPS) and bearer token file.")
