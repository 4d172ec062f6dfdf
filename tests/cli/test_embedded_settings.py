"""`dicomvault up --data-dir X`: every path each service resolves from the environment the
supervisor hands it lies under X, whatever the current directory; a path the user set
explicitly wins; with HTTPS settings the services are given an https:// catalogue URL."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from dicomvault_cli.embedded import EmbeddedOptions, plan


def settings_class(package: str) -> type[BaseSettings]:
    module = importlib.import_module(f"{package}.settings")
    (cls,) = [c for c in vars(module).values() if isinstance(c, type)
              and issubclass(c, BaseSettings) and c.__module__ == module.__name__]
    return cls


def paths_of(value: object, where: str = "") -> list[tuple[str, Path]]:
    """Every file-system path in a settings tree (Path fields and SQLite URLs)."""
    if isinstance(value, Path):
        return [(where, value)]
    if isinstance(value, str) and value.startswith("sqlite"):
        return [(where, Path(value.split(":///", 1)[1]))]
    if isinstance(value, BaseModel):
        return [p for name in type(value).model_fields
                for p in paths_of(getattr(value, name), f"{where}.{name}".lstrip("."))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in paths_of(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in paths_of(v, f"{where}[{i}]")]
    return []


def resolved(child, monkeypatch: pytest.MonkeyPatch, user: dict[str, str]) -> BaseSettings:
    """The settings the child service builds from the environment it is started with."""
    for name in list(os.environ):
        if name.startswith("DICOMVAULT_"):
            monkeypatch.delenv(name)
    for name, value in child.environment(user).items():
        if name.startswith("DICOMVAULT_"):
            monkeypatch.setenv(name, value)
    return settings_class(child.package)()


def test_every_service_path_lies_under_the_data_dir(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    children = plan(EmbeddedOptions(data_dir=Path("../data"), exporters_file=tmp_path / "x.yml"),
                    "127.0.0.1:9092")
    assert {c.name for c in children} >= {"catalogue", "gateway", "hsm-archiver",
                                          "optical-burner", "commitment", "stow-exporter",
                                          "audit"}
    seen = set()
    for child in children:
        settings = resolved(child, monkeypatch, {})
        for where, path in paths_of(settings):
            seen.add(f"{child.name}:{where}")
            if where in ("exporter.spec_file",):  # the file the user passed (--exporters)
                continue
            assert path.is_absolute(), (child.name, where, path)
            assert path.resolve().is_relative_to(data.resolve()), (child.name, where, path)
    # The audit saw the paths that used to land in the current directory.
    assert {"optical-burner:optical.burner.iso_folder", "optical-burner:optical.burner.hot_folder",
            "optical-burner:optical.volume_store", "catalogue:database.url",
            "gateway:cache.root", "stow-exporter:exporter.secrets_dir",
            "audit:database.url"} <= seen


def test_a_path_the_user_set_wins_and_https_reaches_the_services(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    children = {c.name: c for c in plan(EmbeddedOptions(data_dir=tmp_path / "data"),
                                        "127.0.0.1:9092", scheme="https")}
    optical = resolved(children["optical-burner"], monkeypatch, {
        "DICOMVAULT_OPTICAL__BURNER__ISO_FOLDER": "/srv/iso",
        "DICOMVAULT_HTTP__PORT": "1"})  # the supervisor's own settings are not overridable
    assert optical.optical.burner.iso_folder == Path("/srv/iso")
    assert optical.optical.burner.hot_folder == (tmp_path / "data" / "optical-hotfolder")
    assert optical.http.port == children["optical-burner"].port
    for name in ("gateway", "hsm-archiver", "optical-burner", "commitment"):
        settings = resolved(children[name], monkeypatch, {})
        section = {"gateway": "gateway", "hsm-archiver": "hsm", "optical-burner": "optical",
                   "commitment": "commitment"}[name]
        assert getattr(settings, section).catalogue_url == "https://127.0.0.1:8081", name


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 2), (16, 4)])
def test_the_gateway_gets_a_dimse_worker_per_cpu_up_to_four(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpus: int, workers: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)))
    children = {c.name: c for c in plan(EmbeddedOptions(data_dir=tmp_path), "127.0.0.1:9092")}
    assert resolved(children["gateway"], monkeypatch, {}).gateway.workers == workers
    # The user's own setting wins.
    mine = resolved(children["gateway"], monkeypatch, {"DICOMVAULT_GATEWAY__WORKERS": "3"})
    assert mine.gateway.workers == 3
