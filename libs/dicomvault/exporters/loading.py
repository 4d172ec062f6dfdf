"""Validation of whole Exporter objects and the embedded-mode exporters file.

The embedded file is a YAML list of Exporter objects exactly as ``kubectl apply`` takes them
(``apiVersion: dicomvault.io/v1``, ``kind: Exporter``, ``metadata``, ``spec``). Each object is
checked against the CRD's openAPIV3Schema (jsonschema) and then the pydantic model; every
problem is reported with the exporter and the field, never with the offending value.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError

from dicomvault.exporters.model import ExporterSpec

GROUP = "dicomvault.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "Exporter"
PLURAL = "exporters"
CRD_FILE = "exporters.dicomvault.io.yaml"


class ExporterConfigError(ValueError):
    """One or more Exporter objects are invalid; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = problems
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{len(problems)} problem(s) in exporters:\n  "
                         + "\n  ".join(problems))


@functools.cache
def crd() -> dict[str, Any]:
    """The Exporter CustomResourceDefinition (a copy of the chart's, shipped in the package)."""
    text = resources.files("dicomvault.exporters").joinpath(CRD_FILE).read_text("utf-8")
    return yaml.safe_load(text)


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version."""
    (version,) = [v for v in crd()["spec"]["versions"] if v["name"] == VERSION]
    return version["schema"]["openAPIV3Schema"]


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(object)"


def _describe(error: jsonschema.ValidationError) -> str:
    """A jsonschema error without the instance value (which may be a pasted secret)."""
    v, want = error.validator, error.validator_value
    if v == "type":
        return f"must be of type {want}"
    if v == "pattern":
        return f"must match the pattern {want}"
    if v == "required":
        return error.message  # names the missing property only
    if v in ("maxLength", "minLength"):
        return f"must have {'at most' if v == 'maxLength' else 'at least'} {want} characters"
    if v in ("minimum", "maximum"):
        return f"must be {'>=' if v == 'minimum' else '<='} {want}"
    if v == "enum":
        return f"must be one of {', '.join(map(str, want))}"
    return f"fails the schema's {v} rule ({want})"


def _pydantic_problems(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = _path(["spec", *err["loc"]])
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{prefix}: {loc}: {msg}" if err["loc"] else f"{prefix}: spec: {msg}")
    return out


def describe_spec_error(exc: ValidationError) -> str:
    """One line per problem of ``ExporterSpec.model_validate`` (for a CR's status message)."""
    return "; ".join(p.removeprefix("x: ") for p in _pydantic_problems(exc, "x"))


def validate_object(obj: Any, index: int = 0) -> tuple[ExporterSpec | None, list[str]]:
    """Check one Exporter object; returns the spec (None when invalid) and the problems."""
    if not isinstance(obj, dict):
        return None, [f"item {index}: must be an Exporter object (a mapping)"]
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), dict) \
        else None
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    exporter_id = spec.get("exporterID") if isinstance(spec, dict) else None
    prefix = f"exporter {name or f'#{index}'!s}" + (f" ({exporter_id})" if exporter_id else "")
    problems = []
    if obj.get("apiVersion") != API_VERSION:
        problems.append(f"{prefix}: apiVersion: must be {API_VERSION}")
    if obj.get("kind") != KIND:
        problems.append(f"{prefix}: kind: must be {KIND}")
    if not name:
        problems.append(f"{prefix}: metadata.name: is required")
    validator = jsonschema.Draft7Validator(openapi_schema())
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        problems.append(f"{prefix}: {_path(err.absolute_path)}: {_describe(err)}")
    if problems:
        return None, problems
    try:
        return ExporterSpec.model_validate(obj["spec"]), []
    except ValidationError as exc:
        return None, _pydantic_problems(exc, prefix)


def load_exporters(objects: Any, source: str = "") -> list[ExporterSpec]:
    """Validate a list of Exporter objects (or one object); raises ExporterConfigError."""
    if objects is None:
        return []
    if isinstance(objects, dict):
        objects = [objects]
    if not isinstance(objects, list):
        raise ExporterConfigError(["the file must hold a YAML list of Exporter objects"], source)
    specs: list[ExporterSpec] = []
    problems: list[str] = []
    names: set[str] = set()
    for i, obj in enumerate(objects):
        spec, errs = validate_object(obj, i)
        problems += errs
        name = obj.get("metadata", {}).get("name") if isinstance(obj, dict) else None
        if name and name in names:
            problems.append(f"exporter {name}: metadata.name: used twice")
        names.add(name)
        if spec is not None:
            if any(s.exporter_id == spec.exporter_id for s in specs):
                problems.append(f"exporter {name} ({spec.exporter_id}): spec.exporterID: "
                                "used by another exporter")
            specs.append(spec)
    if problems:
        raise ExporterConfigError(problems, source)
    return specs


def load_exporters_file(path: str | Path) -> list[ExporterSpec]:
    """Read the embedded-mode exporters file (or an operator-rendered ``exporter.yaml``)."""
    path = Path(path)
    try:
        objects = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExporterConfigError([f"not valid YAML: {exc}"], str(path)) from None
    return load_exporters(objects, str(path))


def exporter_object(name: str, spec: ExporterSpec, namespace: str | None = None) -> dict:
    """An Exporter object holding ``spec`` in its CRD form (what the operator renders)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata,
            "spec": spec.to_crd()}
