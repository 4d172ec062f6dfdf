"""Settings of the operator: shared sections plus ``operator`` (what it watches and what every
exporter Deployment it renders needs). ``DICOMVAULT_OPERATOR__NAMESPACE``,
``DICOMVAULT_OPERATOR__IMAGE``, ``DICOMVAULT_OPERATOR__EXPORTER_ENV='{"DICOMVAULT_LOG__LEVEL": "DEBUG"}'``…
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from dicomvault.service import ServiceSettings
from dicomvault.settings import ClientSettings, HttpSettings


class OperatorSection(BaseModel):
    """The operator's own section."""

    namespace: str = Field("default", description="Namespace whose Exporters are reconciled.")
    clusterwide: bool = Field(False, description="Reconcile Exporters of every namespace instead "
                                                 "(needs the ClusterRole variant of the RBAC).")
    api_server: str = Field("", description="Kubernetes API URL without credentials (tests); "
                                            "empty: the pod's service account, else kubeconfig.")
    image: str = Field("dicomvault:latest", description="Image of the exporter Deployments.")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="imagePullPolicy of the exporter containers.")
    image_pull_secrets: list[str] = Field(default_factory=list,
                                          description="imagePullSecrets of the exporter pods.")
    service_account: str = Field("", description="ServiceAccount of the exporter pods "
                                                 "(they need no API access; empty: default).")
    catalogue_url: str = Field("http://dicomvault-catalogue:8081",
                               description="Catalogue REST API, for the exporters and queue counts.")
    cache_claim_name: str = Field("", description="PVC of the cache tier, mounted read-only "
                                                  "into exporter pods; empty: no volume.")
    cache_mount_path: str = Field("/var/lib/dicomvault/cache",
                                  description="Where the cache PVC is mounted (DICOMVAULT_CACHE__ROOT).")
    secrets_mount_base: str = Field("/var/run/secrets/dicomvault",
                                    description="Referenced Secrets are mounted at <base>/<name>.")
    exporter_http_port: int = Field(8084, ge=1, le=65535,
                                    description="HTTP port of the stow-exporter (metrics, health).")
    exporter_env: dict[str, str] = Field(default_factory=dict,
                                         description="Extra environment of every exporter pod.")
    exporter_tls_secret: str = Field(
        "", description="Secret with the HTTPS certificate, key and CA (the chart's "
                        "tls.secretName); mounted into every exporter pod: its HTTP port "
                        "speaks HTTPS and it verifies the catalogue with the CA. Empty: plain HTTP.")
    exporter_tls_cert_key: str = Field("tls.crt", description="Certificate key in that Secret.")
    exporter_tls_key_key: str = Field("tls.key", description="Private key key in that Secret.")
    exporter_tls_ca_key: str = Field("ca.crt", description="CA bundle key in that Secret "
                                                           "(empty: the system trust store).")
    exporter_token_secret: str = Field(
        "", description="Secret with the exporters' bearer token for the catalogue (a JWT with "
                        "the read scope), mounted as client.token_file. Empty: no token.")
    exporter_token_key: str = Field("token", description="Key of the token in that Secret.")
    exporter_auth_enabled: bool = Field(
        True, description="Bearer tokens on the exporter pods' /api/v1 (GET: read scope, POST "
                          "/api/v1/exports: admin scope); false renders "
                          "DICOMVAULT_AUTH__ENABLED=false (the chart's auth.enabled).")
    exporter_auth_key_secret: str = Field(
        "", description="Secret with the identity provider's keys (the chart's auth.keySecret), "
                        "mounted into every exporter pod, which verifies tokens with it. Empty: "
                        "no keys (with auth on every /api/v1 request is refused).")
    exporter_auth_key_key: str = Field("jwks.json", description="Key of the keys file in that "
                                                                "Secret.")
    exporter_auth_key_format: Literal["jwks", "pem"] = Field(
        "jwks", description="jwks (a JWKS document) or pem (one public key).")
    exporter_auth_issuer: str = Field("", description="Required 'iss' claim (empty: not "
                                                      "checked).")
    exporter_auth_audience: str = Field("dicomvault", description="Required 'aud' claim.")
    resources: dict[str, Any] = Field(
        default_factory=lambda: {"requests": {"cpu": "50m", "memory": "128Mi"},
                                 "limits": {"memory": "512Mi"}},
        description="resources of the exporter containers.")
    queue_poll_interval_s: float = Field(30.0, ge=0, description="How often queue counts are read "
                                                                 "from the catalogue; 0 disables.")
    request_timeout_s: float = Field(15.0, gt=0, description="Timeout of Kubernetes/catalogue calls.")


class OperatorSettings(ServiceSettings):
    """The shared sections, HTTP on port 8086, ``client`` (its queue-count calls to the
    catalogue) and ``operator``. Its HTTP port serves only /metrics, /healthz and /readyz,
    which stay open: it has no /api/v1, so ``auth`` is there (from the base) but checks
    nothing."""

    http: HttpSettings = Field(default_factory=lambda: HttpSettings(port=8086))
    operator: OperatorSection = Field(default_factory=OperatorSection)
    client: ClientSettings = Field(
        default_factory=ClientSettings,
        description="Calls to the catalogue: CA bundle (HTTPS) and bearer token file.")
