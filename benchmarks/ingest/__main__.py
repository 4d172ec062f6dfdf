"""Ingest benchmark: dcmtk storescu into the DICOM Vault gateway and into Orthanc.

Same generated data for both (small 64×64 images and 512×512 CT slices), same machine, one
run, durable writes on both sides (the gateway fsyncs every file and waits for the broker;
Orthanc runs with SyncStorageArea). Prints instances/s, MB/s, the gateway/Orthanc ratio and
the C-STORE-response-to-catalogued latency (p50/p95) of the gateway.

    make bench                       # or: .venv/bin/python -m benchmarks.ingest --help
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom.uid import generate_uid

from benchmarks.ingest.orthanc import Orthanc
from dicomvault.bus.broker import EmbeddedBroker, free_port
from tests.peers.datasets import ROOT, make_instance
from tests.peers.services import ServiceProcess

STORESCU = "/usr/bin/storescu"


@dataclass
class Result:
    target: str
    dataset: str
    associations: int
    instances: int
    seconds: float
    megabytes: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.instances / self.seconds

    @property
    def mbps(self) -> float:
        return self.megabytes / self.seconds


def generate(folder: Path, count: int, size: int, parts: int = 4) -> tuple[list[Path], float]:
    """``count`` instances in one study, spread over ``parts`` sub-folders; returns (folders, MB)."""
    study, series = generate_uid(ROOT), generate_uid(ROOT)
    folders = [folder / f"part{i}" for i in range(parts)]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(count):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=i + 1, size=size,
                           modality="CT")
        path = folders[i % parts] / f"i{i:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        total += path.stat().st_size
    return folders, total / 1e6


def send(aec: str, port: int, folders: list[Path], associations: int) -> float:
    """Run storescu with 1 association (every file) or N in parallel (a part each)."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    groups = [folders] if associations == 1 else [[f] for f in folders[:associations]]
    start = time.perf_counter()
    procs = [subprocess.Popen([STORESCU, "-aec", aec, "-aet", "BENCH", "+sd", "+r", "-nh",
                               "127.0.0.1", str(port), *map(str, group)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for group in groups]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"storescu failed: {err[-2000:]}")
    return time.perf_counter() - start


class Vault:
    """Broker + catalogue (SQLite) + gateway, fresh data folder per run."""

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
                  "DICOMVAULT_LOG__LEVEL": "WARNING"}
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

    def catalogued(self) -> int:
        with sqlite3.connect(self.db) as db:
            return db.execute("select count(*) from instances").fetchone()[0]

    def latencies_ms(self) -> list[float]:
        """recorded_at (catalogue commit) − ce_time (the gateway's event, just before its ack)."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute("select ce_time, recorded_at from journal "
                              "where ce_type = 'dicomvault.instance.stored.v1'").fetchall()
        out = []
        for ce_time, recorded in rows:
            a, b = _dt(ce_time), _dt(recorded)
            out.append((b - a).total_seconds() * 1000)
        return out

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


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--small", type=int, default=2000, help="64×64 instances")
    ap.add_argument("--large", type=int, default=300, help="512×512 CT instances")
    ap.add_argument("--workers", type=int, default=2, help="gateway DIMSE worker processes")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dicomvault-bench-"))
    graveyard: list[Path] = []
    results: list[Result] = []
    try:
        print(f"generating data in {work} …", flush=True)
        sets = {"small 64x64": generate(work / "small", args.small, 64),
                "CT 512x512": generate(work / "large", args.large, 512)}
        counts = {"small 64x64": args.small, "CT 512x512": args.large}
        run = 0
        for name, (folders, mb) in sets.items():
            for assoc in (1, 4):
                run += 1
                orth = Orthanc(work / f"orthanc{run}").start()
                try:
                    secs = send(orth.aet, orth.dicom_port, folders, assoc)
                    assert orth.count() == counts[name], "Orthanc lost instances"
                finally:
                    orth.stop()
                graveyard.append(work / f"orthanc{run}")
                results.append(Result("orthanc", name, assoc, counts[name], secs, mb))
                print(_row(results[-1]), flush=True)

                vault = Vault(work / f"vault{run}", args.workers).start()
                try:
                    secs = send("DICOMVAULT", vault.dimse, folders, assoc)
                    deadline = time.monotonic() + 120
                    while vault.catalogued() < counts[name] and time.monotonic() < deadline:
                        time.sleep(0.2)
                    lat = vault.latencies_ms()
                    assert vault.catalogued() == counts[name], "catalogue is missing instances"
                finally:
                    vault.stop()
                graveyard.append(work / f"vault{run}")
                results.append(Result(f"gateway (workers={args.workers})", name, assoc,
                                      counts[name], secs, mb, pct(lat, 0.5), pct(lat, 0.95)))
                print(_row(results[-1]), flush=True)
        report(results)
    finally:
        if not args.keep:
            # Delete after measuring: deleting big folders just before a timed run slows this disk.
            for g in graveyard:
                shutil.rmtree(g, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


def _row(r: Result) -> str:
    lat = (f"{r.latency_p50_ms:8.1f} {r.latency_p95_ms:8.1f}" if r.latency_p50_ms is not None
           else f"{'-':>8} {'-':>8}")
    return (f"{r.target:<22} {r.dataset:<12} {r.associations:>5} {r.instances:>6} "
            f"{r.seconds:8.2f} {r.rate:9.1f} {r.mbps:8.1f} {lat}")


def report(results: list[Result]) -> None:
    print()
    print(f"{'target':<22} {'data':<12} {'assoc':>5} {'inst':>6} {'seconds':>8} {'inst/s':>9} "
          f"{'MB/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for r in results:
        print(_row(r))
    print()
    print("gateway / Orthanc (instances/s):")
    for name in dict.fromkeys(r.dataset for r in results):
        for assoc in (1, 4):
            o = next(r for r in results if r.target == "orthanc" and r.dataset == name
                     and r.associations == assoc)
            g = next(r for r in results if r.target != "orthanc" and r.dataset == name
                     and r.associations == assoc)
            print(f"  {name:<12} {assoc} assoc: {g.rate / o.rate:5.2f}")
    print("\nlatency = catalogue commit time − the gateway's InstanceStored time (just before its "
          "C-STORE response)")


if __name__ == "__main__":
    main()
