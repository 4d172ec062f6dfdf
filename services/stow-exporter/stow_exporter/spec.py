"""The Exporter resources, from the shared ``dicomvault.exporters`` model (the CRD's schema).

This module only adapts: the spec file (one Exporter object, as the operator renders it, or
the embedded-mode list) is read by ``load_exporters_file``, which checks the CRD schema and
the model; Secret references are resolved from files by ``resolve_secret``.
"""

from __future__ import annotations

from pathlib import Path

from dicomvault.exporters import (
    ExporterConfigError,
    ExporterSpec,
    SecretKeyRef,
    SecretNotFoundError,
    load_exporters_file,
    resolve_secret,
)

Exporter = ExporterSpec

__all__ = ["Exporter", "ExporterConfigError", "SecretNotFoundError", "SpecError",
           "delay_for", "load_exporters", "read_secret"]


class SpecError(ValueError):
    """An Exporter this process cannot run (the message says why)."""


def load_exporters(path: Path) -> list[Exporter]:
    try:
        return load_exporters_file(path)
    except OSError as exc:
        raise SpecError(f"cannot read exporters from {path}: {exc}") from exc


def delay_for(exporter: Exporter, calling_aes: list[str], modalities: list[str],
              stations: list[str]) -> float | None:
    """Seconds to wait after StudyStable if a rule matches (no rules: all), else None."""
    rule = exporter.matching_rule(calling_aes, modalities, stations)
    return None if rule is None else float(rule.delay_seconds)


def read_secret(secrets_dir: Path, ref: SecretKeyRef) -> str:
    """A referenced Secret key (raises SecretNotFoundError without the value)."""
    return resolve_secret(ref, secrets_dir)
