"""Helpers shared by the end-to-end tests: what a user sees through the catalogue's REST API,
a C-MOVE of a whole study, and waiting with the services' log tails at hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.e2e.conftest import Archive
from tests.gateway.retrieve_peers import (
    error_comment,
    final_status,
    movescu,
    run_storescp,
)
from tests.peers.datasets import dataset_bytes
from tests.peers.services import ServiceProcess
from tests.peers.wait import wait_until_blocking


def wait_for(pred: Callable[[], object], what: str, timeout_s: float = 120.0,
             services: tuple[ServiceProcess, ...] = ()) -> object:
    """Wait for ``pred``; on failure, show the tails of the ``services``' logs."""
    return wait_until_blocking(
        pred, what, timeout=timeout_s,
        explain=lambda: "\n".join(f"--- {s.service}\n{s.tail()}" for s in services))


class Catalogue:
    """What a user sees through the catalogue's REST API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def study(self, uid: str) -> dict:
        r = self.http.get(f"/api/v1/studies/{uid}")
        return {} if r.status_code == 404 else r.raise_for_status().json()

    def archived(self, uid: str) -> set[tuple[str, str]]:
        return {(x["tier"], x["archive_id"]) for x in self.study(uid).get("study_locations", [])
                if x["verified"]}

    def cached(self, uid: str) -> list[dict]:
        r = self.http.get(f"/api/v1/studies/{uid}/instances", params={"tier": "cache"})
        return [] if r.status_code == 404 else r.raise_for_status().json()

    def jobs(self, **params: str) -> list[dict]:
        r = self.http.get("/api/v1/jobs", params={"limit": 1000, **params})
        return r.raise_for_status().json()["jobs"]

    def timeline(self, uid: str) -> list[dict]:
        return self.http.get(f"/api/v1/studies/{uid}/timeline").raise_for_status().json()["events"]

    def facts(self, uid: str, ce_type: str) -> list[dict]:
        return [e["data"] for e in self.timeline(uid) if e["type"] == ce_type]


def move_study(folder: Path, port: int, archive: Archive, uid: str) -> dict[str, bytes]:
    """movescu of the whole study to a dcmtk storescp on ``port``; what it received."""
    folder.mkdir()
    with run_storescp(folder, port=port) as scp:
        code, out = movescu(archive.dimse_port, "QueryRetrieveLevel=STUDY",
                            f"StudyInstanceUID={uid}")
        assert code == 0 and final_status(out) == 0x0000, (
            f"{final_status(out):#06x} {error_comment(out)}\n{archive.gateway.tail()}")
        return {sop: dataset_bytes(path) for sop, path in scp.received().items()}
