"""The Exporter spec (``dicomvault.io/v1`` ``Exporter``), as a pydantic model.

The model reads the CRD's own keys (camelCase, and dcm4chee's literal web-application property
names such as ``transfer-syntax``) through aliases and exposes pythonic attribute names::

    spec = ExporterSpec.model_validate(cr["spec"])
    spec.web_application.properties.transfer_syntax

``spec.model_dump(by_alias=True, mode="json")`` gives back the CRD form with defaults filled.
Defaults and bounds equal the CRD's; the model also checks what the schema cannot express
(schedule bounds, ``webApplication.name`` equal to the ``stowrs:`` target). Input values are
never echoed in errors (``hide_input_in_errors``), so a token pasted by mistake stays out of logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dicomvault.exporters.schedules import Schedule, in_schedule
from dicomvault.exporters.secrets import SecretKeyRef

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
URI_PATTERN = r"^(stowrs|dicom):.+$"
UID_PATTERN = r"^[0-9]+(\.[0-9]+)*$"
CONSUMER_GROUP_PREFIX = "dicomvault-exporter-"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              hide_input_in_errors=True)


def _no_literal(what: str, shape: str):
    """A before-validator refusing a literal string where a Secret reference belongs."""

    def check(value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"{what} must reference a Secret ({shape}), never hold the value")
        return value

    return check


class SecretRef(_Model):
    """A whole Secret: ``{name: <secret>}``."""

    name: str = Field(..., min_length=1, description="Name of the Secret.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        SecretKeyRef(name=v, key="k")  # same naming rule as a key reference
        return v


class BearerToken(_Model):
    """``bearer-token``: the Secret key holding the token."""

    secret_key_ref: SecretKeyRef = Field(..., description="{name, key} of the token.")


class BasicAuth(_Model):
    """``basic-auth``: the Secret holding the user name and password."""

    secret_ref: SecretRef = Field(..., description="The Secret.")
    username_key: str = Field("username", description="Key of the user name.")
    password_key: str = Field("password", description="Key of the password.")

    @property
    def username(self) -> SecretKeyRef:
        return SecretKeyRef(name=self.secret_ref.name, key=self.username_key)

    @property
    def password(self) -> SecretKeyRef:
        return SecretKeyRef(name=self.secret_ref.name, key=self.password_key)

    @model_validator(mode="after")
    def _keys(self) -> BasicAuth:
        _ = self.username, self.password  # validates the key names
        return self


class WebAppProperties(_Model):
    """dcm4chee web-application properties, under their literal (kebab-case) names."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="forbid",
                              hide_input_in_errors=True)

    chunked: bool = Field(False, description="Chunked transfer encoding of the request body.")
    concurrency: int = Field(1, ge=1, le=64, description="STOW-RS requests in flight at once.")
    transfer_syntax: list[str] = Field(
        default_factory=list, alias="transfer-syntax",
        description="Acceptable transfer syntax UIDs, preferred first; empty = as stored.")
    bearer_token: BearerToken | None = Field(None, alias="bearer-token",
                                             description="Bearer token from a Secret.")
    basic_auth: BasicAuth | None = Field(None, alias="basic-auth",
                                         description="Basic auth from a Secret.")
    allow_any_hostname: bool = Field(False, alias="allow-any-hostname",
                                     description="Skip the TLS host name check.")
    disable_trust_manager: bool = Field(False, alias="disable-trust-manager",
                                        description="Skip TLS certificate verification.")

    _token = field_validator("bearer_token", mode="before")(
        _no_literal("bearer-token", "{secretKeyRef: {name, key}}"))
    _basic = field_validator("basic_auth", mode="before")(
        _no_literal("basic-auth", "{secretRef: {name}, usernameKey, passwordKey}"))

    @field_validator("transfer_syntax")
    @classmethod
    def _uids(cls, v: list[str]) -> list[str]:
        import re

        bad = [uid for uid in v if not re.match(UID_PATTERN, uid) or len(uid) > 64]
        if bad:
            raise ValueError(f"not transfer syntax UIDs: {', '.join(bad)}")
        return v


class WebApplication(_Model):
    """The DICOMweb application a ``stowrs:`` URI names, declared inline."""

    name: str = Field(..., min_length=1, description="Equals the part after 'stowrs:'.")
    url: str = Field(..., pattern=r"^https?://[^\s]+$", description="STOW-RS base URL.")
    properties: WebAppProperties = Field(default_factory=WebAppProperties)


class ExportRule(_Model):
    """Which studies are exported. Empty lists match anything; all given lists must match."""

    calling_ae_titles: list[str] = Field(default_factory=list, alias="callingAETitles",
                                         description="Any of the study's calling AE titles.")
    modalities: list[str] = Field(default_factory=list,
                                  description="Any of the study's modalities.")
    station_names: list[str] = Field(default_factory=list,
                                     description="Any of the study's station names.")
    delay_seconds: int = Field(0, ge=0, description="Export this long after StudyStable.")

    def matches(self, calling_ae_titles: list[str], modalities: list[str],
                station_names: list[str]) -> bool:
        def hit(wanted: list[str], have: list[str]) -> bool:
            return not wanted or bool({w.strip().upper() for w in wanted}
                                      & {h.strip().upper() for h in have})

        return (hit(self.calling_ae_titles, calling_ae_titles)
                and hit(self.modalities, modalities)
                and hit(self.station_names, station_names))


class ExportRetry(_Model):
    """Retries of a failing export: initial × multiplier^(attempt-1), capped; then Failed."""

    max_retries: int = Field(5, ge=0, description="Retries after the first attempt.")
    initial_delay_seconds: int = Field(10, ge=0, description="Delay before the first retry.")
    max_delay_seconds: int = Field(600, ge=0, description="Ceiling of the retry delay.")
    backoff_multiplier: float = Field(2.0, ge=1.0, description="Backoff multiplier.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(float(self.max_delay_seconds),
                   self.initial_delay_seconds * self.backoff_multiplier ** max(0, attempt - 1))

    def to_retry_policy(self):
        """The same policy as the jobs engine's ``RetryPolicy``."""
        from dicomvault.jobs import RetryPolicy

        return RetryPolicy(max_retries=self.max_retries,
                           initial_delay_s=float(self.initial_delay_seconds),
                           max_delay_s=float(self.max_delay_seconds),
                           multiplier=self.backoff_multiplier)


class StorageCommitment(_Model):
    """Storage commitment requested after an export (``dicom:``, or ``stowrs:`` naming the
    commitment SCP's AE), through the commitment service."""

    enabled: bool = Field(False, description="Request commitment after a completed export.")
    timeout_seconds: int = Field(300, ge=1, description="How long to wait for N-EVENT-REPORT.")
    remote_ae: str = Field("", alias="remoteAE", max_length=16, pattern=r"^[^\\\x00-\x1f]*$",
                           description="The commitment SCP's AE title (a key of the commitment "
                           "service's modalities table); empty: the AE of a dicom: URI. "
                           "Required for stowrs:.")
    delete_after_commit: bool = Field(
        False, description="Evict the study from the cache after a full commitment, only if "
        "another verified copy exists (never the last copy).")


class ExporterSpec(_Model):
    """``spec`` of an Exporter."""

    exporter_id: str = Field(..., alias="exporterID", pattern=ID_PATTERN,
                             description="Unique id; names the consumer group.")
    uri: str = Field(..., pattern=URI_PATTERN, description="stowrs:<web app> or dicom:<AE>.")
    queue_name: str = Field("Export1", pattern=ID_PATTERN, description="The export queue.")
    ae_title: str = Field("DICOMVAULT", min_length=1, max_length=16,
                          pattern=r"^[^\\\x00-\x1f]*$", description="Our AE title.")
    description: str = Field("", description="Free text.")
    schedules: list[str] = Field(default_factory=list,
                                 description="dcm4chee schedule expressions; empty = always.")
    rules: list[ExportRule] = Field(default_factory=list,
                                    description="Any rule matching exports; none = everything.")
    retry: ExportRetry = Field(default_factory=ExportRetry)
    storage_commitment: StorageCommitment = Field(default_factory=StorageCommitment)
    web_application: WebApplication | None = Field(None, description="Required for stowrs:.")
    suspended: bool = Field(False, description="Stop exporting; queued jobs wait.")

    @field_validator("schedules")
    @classmethod
    def _schedules(cls, v: list[str]) -> list[str]:
        for expression in v:
            Schedule.parse(expression)
        return v

    @model_validator(mode="after")
    def _web_application(self) -> ExporterSpec:
        if self.scheme == "stowrs":
            if self.web_application is None:
                raise ValueError(f"uri {self.uri!r} needs a webApplication named {self.target!r}")
            if self.web_application.name != self.target:
                raise ValueError(f"webApplication.name {self.web_application.name!r} must equal "
                                 f"the part after 'stowrs:' ({self.target!r})")
        if self.scheme == "dicom" and len(self.target) > 16:
            raise ValueError(f"uri {self.uri!r}: an AE title has at most 16 characters")
        sc = self.storage_commitment
        if self.scheme == "stowrs" and sc.enabled and not sc.remote_ae:
            raise ValueError("storageCommitment on a stowrs: exporter needs remoteAE (the "
                             "commitment SCP's AE title)")
        return self

    # Derived values -----------------------------------------------------------------------

    @property
    def scheme(self) -> Literal["stowrs", "dicom"]:
        return self.uri.split(":", 1)[0]  # type: ignore[return-value]

    @property
    def target(self) -> str:
        """The web application name (stowrs:) or the remote AE title (dicom:)."""
        return self.uri.split(":", 1)[1]

    @property
    def consumer_group(self) -> str:
        return f"{CONSUMER_GROUP_PREFIX}{self.exporter_id}"

    @property
    def parsed_schedules(self) -> list[Schedule]:
        return [Schedule.parse(s) for s in self.schedules]

    def in_schedule(self, when: datetime) -> bool:
        """Whether exports may run at ``when`` (no schedules: always)."""
        return in_schedule(self.parsed_schedules, when)

    def matching_rule(self, calling_ae_titles: list[str], modalities: list[str],
                      station_names: list[str]) -> ExportRule | None:
        """The first rule a study matches (no rules: a catch-all rule), or None: not exported."""
        if not self.rules:
            return ExportRule()
        for rule in self.rules:
            if rule.matches(calling_ae_titles, modalities, station_names):
                return rule
        return None

    def secret_refs(self) -> list[SecretKeyRef]:
        """Every Secret key the spec references."""
        props = self.web_application.properties if self.web_application else None
        refs: list[SecretKeyRef] = []
        if props and props.bearer_token:
            refs.append(props.bearer_token.secret_key_ref)
        if props and props.basic_auth:
            refs += [props.basic_auth.username, props.basic_auth.password]
        return refs

    def secret_names(self) -> list[str]:
        """Names of the Secrets the spec references, sorted, each once."""
        return sorted({ref.name for ref in self.secret_refs()})

    def to_crd(self) -> dict[str, Any]:
        """The spec in the CRD's form (aliases, defaults filled, no None values)."""
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)
