"""Fixtures of the chart tests: the chart loaded with the real Helm SDK and its renderings."""

from __future__ import annotations

import copy
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tests.chart.metricnames import CHART, ROOT

NAMESPACE = "dicomvault"
RELEASE = "dicomvault"
VARIANTS = ["default"] + sorted(p.name.removesuffix("-values.yaml")
                                for p in (CHART / "ci").glob("*-values.yaml"))


# What README.md's install command adds to the default values: bearer tokens are on by
# default, so the issuer's keys and every catalogue caller's own token are required (the render
# fails without them, tests/chart/test_required_auth.py). The "default" variant is these.
INSTALL_VALUES = {
    "auth": {"keySecret": "dicomvault-idp-keys"},
    **{key: {"tokenSecret": f"dicomvault-token-{component}"} for key, component in (
        ("gateway", "gateway"), ("hsmArchiver", "hsm-archiver"),
        ("opticalBurner", "optical-burner"), ("stowExporter", "stow-exporter"),
        ("commitment", "commitment"), ("operator", "operator"))},
}


def install_values(**overrides: dict) -> dict:
    """INSTALL_VALUES with some top-level keys' maps merged over (one level deep)."""
    values = copy.deepcopy(INSTALL_VALUES)
    for key, value in overrides.items():
        values[key] = {**values.get(key, {}), **value}
    return values


def variant_values(variant: str) -> dict:
    if variant == "default":
        return install_values()
    return yaml.safe_load((CHART / "ci" / f"{variant}-values.yaml").read_text()) or {}


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def renders(chart) -> dict[str, dict[str, str]]:
    """variant -> {template path: rendered text}, for default values and every ci/ file."""
    return {v: chart.render(variant_values(v), name=RELEASE, namespace=NAMESPACE)
            for v in VARIANTS}


def manifests(rendered: dict[str, str]) -> list[tuple[str, dict]]:
    """(template path, object) for every object rendered (NOTES.txt excluded)."""
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        out += [(path, doc) for doc in yaml.safe_load_all(text) if doc]
    return out


def crd_files() -> list[Path]:
    """Every CustomResourceDefinition file under crds/ (the folder Helm installs first)."""
    files = []
    for path in sorted((CHART / "crds").glob("*.y*ml")):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        if any(d.get("kind") == "CustomResourceDefinition" for d in docs):
            files.append(path)
    return files


__all__ = ["CHART", "ROOT", "NAMESPACE", "RELEASE", "VARIANTS", "INSTALL_VALUES", "manifests",
           "crd_files", "install_values", "variant_values"]
