"""The real catalogue service (``dicomvault run catalogue``) for the archivers' tests
(hsm-archiver, optical-burner, operator).

It consumes the test's topics into a SQLite catalogue and serves its REST API; the tests
read what it projected through that API (studies, locations, jobs, queues) and the facts it
journalled straight from its journal table (the system of record), in consumption order.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx

import catalogue  # noqa: F401 - registers the contract types
from dicomvault.bus.broker import free_port
from dicomvault.events import TYPES
from dicomvault.settings import BusSettings
from tests.peers.services import ServiceProcess, catalogue_env


class CatalogueService:
    """One catalogue subprocess; the read helpers are synchronous, for ``wait_until``."""

    def __init__(self, bus: BusSettings, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.db = folder / "catalogue.db"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = catalogue_env(
            bus, f"sqlite+aiosqlite:///{self.db}", port,
            DICOMVAULT_BUS__SESSION_TIMEOUT_MS=str(bus.session_timeout_ms),
            DICOMVAULT_HTTP__HOST="127.0.0.1",
            # Commands come through an authenticating proxy here (X-Forwarded-User names the
            # caller); tests/catalogue/test_job_commands.py covers bearer tokens.
            DICOMVAULT_AUTH__ENABLED="false",
            # The tests announce StudyStable themselves: the catalogue's own emitter stays
            # quiet.
            DICOMVAULT_CATALOGUE__STABLE_AFTER_S="86400",
            DICOMVAULT_LOG__LEVEL="INFO")
        self.process = ServiceProcess("catalogue", env, folder, ready_url=f"{self.url}/readyz")
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> CatalogueService:
        self.process.start(timeout_s=90)
        return self

    def stop(self) -> None:
        self._http.close()
        self.process.stop()

    def _get(self, path: str, **params) -> httpx.Response:
        return self._http.get(path, params=params)

    # --- what the REST API says ----------------------------------------------------------
    @property
    def jobs(self) -> dict[str, dict]:
        """Every job, oldest first."""
        r = self._get("/api/v1/jobs", limit=1000)
        r.raise_for_status()
        return {j["job_id"]: j for j in r.json()["jobs"]}

    def queue_jobs(self, queue: str) -> list[dict]:
        """The queue's jobs, oldest first."""
        r = self._get("/api/v1/jobs", queue=queue, limit=1000)
        r.raise_for_status()
        return r.json()["jobs"]

    def job_states(self, queue: str) -> list[str]:
        return [j["state"] for j in self.queue_jobs(queue)]

    @property
    def queues(self) -> dict[str, dict]:
        r = self._get("/api/v1/queues")
        r.raise_for_status()
        return {q["name"]: q for q in r.json()["queues"]}

    def cached(self, study_uid: str) -> list[dict]:
        """The study's instances the catalogue knows on the cache tier."""
        r = self._get(f"/api/v1/studies/{study_uid}/instances", tier="cache")
        return [] if r.status_code == 404 else r.raise_for_status().json()

    def study_locations(self, study_uid: str) -> list[dict]:
        r = self._get(f"/api/v1/studies/{study_uid}")
        return [] if r.status_code == 404 else r.raise_for_status().json()["study_locations"]

    def media_requests(self) -> list[tuple[str, list[str]]]:
        """The optical media requests: (volume label, studies waiting for it)."""
        r = self._get("/api/v1/media-requests")
        r.raise_for_status()
        return [(m["label"], m["studies"]) for m in r.json()["media_requests"]]

    def post(self, path: str, user: str = "admin", **body) -> httpx.Response:
        return self._http.post(path, json=body or None, headers={"X-Forwarded-User": user})

    # --- what it journalled ---------------------------------------------------------------
    def of_type(self, cls) -> list:
        """The payloads of every journalled fact of that message type, in journal order."""
        names = [n for n, c in TYPES.items() if c is cls]
        if not names or not self.db.exists():
            return []
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute(
                f"SELECT payload FROM journal WHERE ce_type IN ({','.join('?' * len(names))})"
                " ORDER BY seq", names).fetchall()
        out = []
        for (payload,) in rows:
            msg = cls()
            msg.ParseFromString(payload)
            out.append(msg)
        return out
