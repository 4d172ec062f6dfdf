"""Exporters: the ``dicomvault.io/v1`` ``Exporter`` spec shared by the operator, the
stow-exporter and the embedded mode.

- ``ExporterSpec.model_validate(cr["spec"])`` — the spec, from the CRD's keys.
- ``load_exporters_file(path)`` — the embedded-mode YAML list of Exporter objects (or the
  operator-rendered ``exporter.yaml``), checked against the CRD schema and the model.
- ``resolve_secret(ref, secrets_dir)`` — a referenced Secret key, read from
  ``<secrets_dir>/<secret name>/<key>``.
"""

from dicomvault.exporters.loading import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ExporterConfigError,
    crd,
    describe_spec_error,
    exporter_object,
    load_exporters,
    load_exporters_file,
    openapi_schema,
    validate_object,
)
from dicomvault.exporters.model import (
    CONSUMER_GROUP_PREFIX,
    BasicAuth,
    BearerToken,
    ExporterSpec,
    ExportRetry,
    ExportRule,
    SecretRef,
    StorageCommitment,
    WebApplication,
    WebAppProperties,
)
from dicomvault.exporters.schedules import Schedule, in_schedule
from dicomvault.exporters.secrets import (
    SecretKeyRef,
    SecretNotFoundError,
    resolve_secret,
    secret_path,
)

__all__ = [
    "API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION", "CONSUMER_GROUP_PREFIX",
    "BasicAuth", "BearerToken", "ExportRetry", "ExportRule", "ExporterConfigError",
    "ExporterSpec", "Schedule", "SecretKeyRef", "SecretNotFoundError", "SecretRef",
    "StorageCommitment", "WebAppProperties", "WebApplication",
    "crd", "describe_spec_error", "exporter_object", "in_schedule", "load_exporters",
    "load_exporters_file", "openapi_schema", "resolve_secret", "secret_path", "validate_object",
]
