"""How `dicomvault up` reaches its services over HTTP: the same ``DICOMVAULT_HTTP__*`` and
``DICOMVAULT_CLIENT__*`` settings the services read from the environment it hands them.

With ``DICOMVAULT_HTTP__CERT_FILE`` and ``…__KEY_FILE`` every service's port speaks HTTPS only,
so readiness is polled over ``https://`` and the catalogue URL given to the services is
``https://`` too; ``DICOMVAULT_CLIENT__CA_FILE`` (and ``…__CERT_FILE``/``KEY_FILE`` for mutual
TLS) verifies them, as the services' own catalogue calls do.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from dicomvault.query.client import http_options
from dicomvault.settings import SETTINGS_CONFIG, ClientSettings, HttpSettings


class WebSettings(BaseSettings):
    model_config = SETTINGS_CONFIG

    http: HttpSettings = Field(default_factory=HttpSettings,
                               description="The services' listeners (HTTPS with a certificate).")
    client: ClientSettings = Field(default_factory=ClientSettings,
                                   description="How the services' ports are verified.")

    @property
    def scheme(self) -> str:
        return "https" if self.http.tls else "http"

    def httpx_options(self) -> dict:
        """``verify`` (CA file, client certificate) for httpx; {} for plain HTTP."""
        return {k: v for k, v in http_options(self.client).items() if k == "verify"}
