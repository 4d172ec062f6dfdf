"""Helpers shared by the operator's tests: the example Exporter and reading its status conditions."""

from __future__ import annotations

from .conftest import ROOT

EXAMPLE = ROOT / "examples/exporter.yaml"


def condition(exporter: dict | None, kind: str) -> dict:
    for c in ((exporter or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c
    return {}
