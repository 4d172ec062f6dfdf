"""Secret references and their resolution from files.

An Exporter never holds a credential, only a reference to a Kubernetes Secret key. Whoever
uses the credential reads it from ``<secrets_dir>/<secret name>/<key>``: in Kubernetes the
operator mounts every referenced Secret at ``/var/run/secrets/dicomvault/<secret name>``; in
embedded mode the files live under ``./var/secrets/<secret name>/<key>``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Kubernetes object names (DNS-1123 subdomain) and Secret data keys: neither can hold a "/" or
# be "..", so a reference always resolves inside the secrets folder.
SECRET_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"


class SecretKeyRef(BaseModel):
    """One key of a Secret: ``{name: <secret>, key: <key>}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str = Field(..., max_length=253, pattern=SECRET_NAME_PATTERN,
                      description="Name of the Secret (same namespace as the Exporter).")
    key: str = Field(..., max_length=253, pattern=SECRET_KEY_PATTERN,
                     description="Key inside the Secret.")

    @field_validator("key")
    @classmethod
    def _not_dots(cls, v: str) -> str:
        if v in (".", ".."):
            raise ValueError("a Secret key cannot be '.' or '..'")
        return v


class SecretNotFoundError(LookupError):
    """The referenced secret file is absent or unreadable (the message names the path only)."""


def secret_path(ref: SecretKeyRef, secrets_dir: str | Path) -> Path:
    """Where the value of ``ref`` is expected under ``secrets_dir``."""
    return Path(secrets_dir) / ref.name / ref.key


def resolve_secret(ref: SecretKeyRef, secrets_dir: str | Path) -> str:
    """The value of ``ref``, read from ``<secrets_dir>/<name>/<key>``.

    One trailing newline (``\\n`` or ``\\r\\n``, as editors and ``echo`` leave them) is removed;
    nothing else is changed. Raises SecretNotFoundError, whose message never holds the value.
    """
    path = secret_path(ref, secrets_dir)
    try:
        value = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretNotFoundError(
            f"secret {ref.name!r} key {ref.key!r}: cannot read {path} ({type(exc).__name__})"
        ) from None
    if value.endswith("\r\n"):
        return value[:-2]
    if value.endswith("\n"):
        return value[:-1]
    return value
