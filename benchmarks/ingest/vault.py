"""The archive under benchmark: broker + catalogue (SQLite) + gateway, fresh data folder per run,
with what the report needs: process ids for CPU time, the catalogue's journal for latencies,
the gateway's /metrics for where a store's time goes."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.events import types
from tests.peers.services import ServiceProcess

PHASES = ("receive", "checks", "write", "publish")


class Vault:
    def __init__(self, workdir: Path, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.broker = EmbeddedBroker(log_path=workdir / "tansu.log")
        self.dimse = free_port()
        self.http = free_port()
        self.cat_port = free_port()
        self.db = workdir / "catalogue.db"
        self.procs: list[ServiceProcess] = []

    def start(self) -> Vault:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        common = {"DICOMVAULT_BUS__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
                  "DICOMVAULT_CACHE__ROOT": str(self.workdir / "cache"),
                  "DICOMVAULT_LOG__LEVEL": "WARNING", "DICOMVAULT_AUTH__ENABLED": "false"}
        cat = ServiceProcess("catalogue", {
            **common, "DICOMVAULT_HTTP__PORT": str(self.cat_port),
            "DICOMVAULT_DATABASE__URL": f"sqlite+aiosqlite:///{self.db}",
            "DICOMVAULT_CATALOGUE__STABLE_AFTER_S": "3600",
        }, self.workdir, ready_url=f"http://127.0.0.1:{self.cat_port}/readyz")
        gw = ServiceProcess("gateway", {
            **common, "DICOMVAULT_HTTP__PORT": str(self.http),
            "DICOMVAULT_GATEWAY__DIMSE_PORT": str(self.dimse),
            "DICOMVAULT_GATEWAY__ACCEPT_ANY_CALLING_AE": "true",
            "DICOMVAULT_GATEWAY__CATALOGUE_URL": f"http://127.0.0.1:{self.cat_port}",
            "DICOMVAULT_GATEWAY__WORKERS": str(self.workers),
            "DICOMVAULT_GATEWAY__RECONCILE_INTERVAL_S": "3600",
        }, self.workdir, ready_url=f"http://127.0.0.1:{self.http}/readyz")
        self.procs = [cat.start(), gw.start()]
        return self

    @property
    def stow_url(self) -> str:
        return f"http://127.0.0.1:{self.http}/dicomweb/studies"

    def pids(self) -> list[int]:
        """Broker, catalogue, gateway (its DIMSE workers are its children)."""
        procs = [self.broker.process] + [p.process for p in self.procs]
        return [p.pid for p in procs if p is not None]

    def catalogued(self) -> int:
        with sqlite3.connect(self.db) as db:
            return db.execute("select count(*) from instances").fetchone()[0]

    def latencies_ms(self) -> list[float]:
        """recorded_at (catalogue commit) − ce_time (the gateway's event, just before its ack)."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute("select ce_time, recorded_at from journal where ce_type = ?",
                              (types.INSTANCE_STORED,)).fetchall()
        return [(_dt(b) - _dt(a)).total_seconds() * 1000 for a, b in rows]

    def phases_ms(self) -> dict[str, float]:
        """Mean milliseconds per store in each phase (dicomvault_gateway_store_phase_seconds)."""
        text = httpx.get(f"http://127.0.0.1:{self.http}/metrics", timeout=10).text
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "dicomvault_gateway_store_phase_seconds":
                continue
            for s in family.samples:
                phase = s.labels.get("phase", "")
                if s.name.endswith("_sum"):
                    sums[phase] = sums.get(phase, 0.0) + s.value
                elif s.name.endswith("_count"):
                    counts[phase] = counts.get(phase, 0.0) + s.value
        return {p: sums[p] / counts[p] * 1000 for p in PHASES if counts.get(p)}

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.broker.stop()


def _dt(value) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.now().astimezone().tzinfo).astimezone()
