"""Ingest benchmark: the DICOM Vault gateway against Orthanc, same data, same machine, one run.

Each data set (small 64×64 images, 512×512 CT slices) is sent to Orthanc and to the archive
three ways: dcmtk storescu over 1 association, over 4 in parallel, and STOW-RS in requests of
50 instances. Writes are durable on both sides (the gateway fsyncs every file and waits for
the broker's acknowledgement before Success; Orthanc runs with SyncStorageArea). Printed:
instances/s, MB/s, CPU milliseconds per instance (Orthanc's process; the archive's broker +
catalogue + gateway with its workers, until the catalogue holds every instance), the
gateway/Orthanc ratio, the C-STORE-response-to-catalogued latency (p50/p95) and where a
store's time goes in the gateway (receive, checks, write, publish: means per instance), and
how much of the machine's CPU sat idle during each run (computing or waiting?).

This machine's speed drifts by ±15 % from one minute to the next (every process's CPU time per
instance rises and falls together), more than most changes we measure. So each data set and
mode runs ``--rounds`` times (default 2), Orthanc and the archive alternately, and the report
gives the total over the rounds (instances / seconds, CPU / instances, pooled latencies) and
each round's own ratio, which shows the spread.

    make bench                       # or: .venv/bin/python -m benchmarks.ingest --help
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import generate_uid

from benchmarks.ingest import stow
from benchmarks.ingest.cpu import cpu_seconds, idle_share, machine_jiffies
from benchmarks.ingest.orthanc import Orthanc
from benchmarks.ingest.vault import PHASES, Vault
from benchmarks.interpreter import describe
from tests.peers.datasets import ROOT, make_instance

STORESCU = "/usr/bin/storescu"
STOW_BATCH = 50
MODES = ("dimse x1", "dimse x4", f"stow x{STOW_BATCH}")


@dataclass
class Result:
    target: str
    dataset: str
    mode: str
    instances: int
    seconds: float
    megabytes: float
    cpu_seconds: float
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    cpu_split: dict[str, float] = field(default_factory=dict)  # seconds per process
    idle: float = 0.0  # share of the machine's CPU time idle while sending
    latencies: list[float] = field(default_factory=list, repr=False)
    rounds: int = 1

    @property
    def rate(self) -> float:
        return self.instances / self.seconds

    @property
    def mbps(self) -> float:
        return self.megabytes / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds / self.instances * 1000


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


def deliver(mode: str, aet: str, port: int, stow_url: str, folders: list[Path],
            requests: list[tuple[str, bytes]]) -> float:
    if mode == "dimse x1":
        return send(aet, port, folders, 1)
    if mode == "dimse x4":
        return send(aet, port, folders, 4)
    return stow.send(stow_url, requests)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_orthanc(work: Path, name: str, mode: str, folders: list[Path], count: int, mb: float,
                requests: list) -> Result:
    orth = Orthanc(work).start()
    try:
        pid = orth.process.pid
        before, jiffies = cpu_seconds(pid), machine_jiffies()
        secs = deliver(mode, orth.aet, orth.dicom_port, orth.stow_url, folders, requests)
        idle = idle_share(jiffies, machine_jiffies())
        cpu = cpu_seconds(pid) - before
        assert orth.count() == count, "Orthanc lost instances"
    finally:
        orth.stop()
    return Result("orthanc", name, mode, count, secs, mb, cpu, idle=idle)


def run_vault(work: Path, workers: int, name: str, mode: str, folders: list[Path], count: int,
              mb: float, requests: list) -> Result:
    vault = Vault(work, workers).start()
    try:
        pids = vault.pids()
        before, jiffies = [cpu_seconds(pid) for pid in pids], machine_jiffies()
        secs = deliver(mode, "DICOMVAULT", vault.dimse, vault.stow_url, folders, requests)
        idle = idle_share(jiffies, machine_jiffies())
        deadline = time.monotonic() + 120
        while vault.catalogued() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        split = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        cpu = sum(split)
        lat = vault.latencies_ms()
        phases = vault.phases_ms()
        assert vault.catalogued() == count, "catalogue is missing instances"
    finally:
        vault.stop()
    return Result(f"gateway (workers={workers})", name, mode, count, secs, mb, cpu,
                  pct(lat, 0.5), pct(lat, 0.95), phases,
                  dict(zip(("broker", "catalogue", "gateway"), split, strict=True)), idle, lat)


def combine(rounds: list[Result]) -> Result:
    """One result for several rounds of the same target, data and mode: instances and seconds
    summed (the rate over all of them), CPU summed, latencies pooled, phases and idle averaged
    (every round sends the same instances)."""
    first, n = rounds[0], len(rounds)
    lat = [v for r in rounds for v in r.latencies]
    phases = {p: sum(r.phases.get(p, 0.0) for r in rounds) / n for p in first.phases}
    split = {k: sum(r.cpu_split.get(k, 0.0) for r in rounds) for k in first.cpu_split}
    return Result(first.target, first.dataset, first.mode, sum(r.instances for r in rounds),
                  sum(r.seconds for r in rounds), sum(r.megabytes for r in rounds),
                  sum(r.cpu_seconds for r in rounds),
                  pct(lat, 0.5) if lat else None, pct(lat, 0.95) if lat else None, phases,
                  split, sum(r.idle for r in rounds) / n, lat, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--small", type=int, default=2000, help="64×64 instances (0: none)")
    ap.add_argument("--large", type=int, default=300, help="512×512 CT instances (0: none)")
    ap.add_argument("--workers", type=int, default=2, help="gateway DIMSE worker processes")
    ap.add_argument("--modes", default=",".join(MODES),
                    help=f"comma-separated subset of: {', '.join(MODES)}")
    ap.add_argument("--rounds", type=int, default=2,
                    help="runs of each data set and mode per target, Orthanc and the archive "
                         "alternately")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.small < 0 or args.large < 0 or args.small + args.large == 0:
        ap.error("--small and --large must not be negative, and not both 0")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    work = Path(tempfile.mkdtemp(prefix="dicomvault-bench-"))
    graveyard: list[Path] = []
    results: list[Result] = []
    per_round: dict[tuple[str, str], list[float]] = {}  # (data, mode): ratio of each round
    try:
        print(f"python: {describe()}", flush=True)
        print(f"generating data in {work} …", flush=True)
        sets = {name: (generate(work / folder, count, size), count)
                for name, folder, count, size in (("small 64x64", "small", args.small, 64),
                                                  ("CT 512x512", "large", args.large, 512))
                if count > 0}  # 0 leaves a set out
        print(_header(), flush=True)
        run = 0
        for name, ((folders, mb), count) in sets.items():
            files = sorted(p for f in folders for p in f.iterdir())
            requests = stow.bodies(files, STOW_BATCH) if any(m.startswith("stow") for m in modes) \
                else []
            for mode in modes:
                rounds: dict[str, list[Result]] = {"orthanc": [], "vault": []}
                for _ in range(args.rounds):
                    run += 1
                    rounds["orthanc"].append(run_orthanc(work / f"orthanc{run}", name, mode,
                                                         folders, count, mb, requests))
                    print(_row(rounds["orthanc"][-1]), flush=True)
                    graveyard.append(work / f"orthanc{run}")
                    rounds["vault"].append(run_vault(work / f"vault{run}", args.workers, name,
                                                     mode, folders, count, mb, requests))
                    print(_row(rounds["vault"][-1]), flush=True)
                    graveyard.append(work / f"vault{run}")
                results.append(combine(rounds["orthanc"]))
                results.append(combine(rounds["vault"]))
                per_round[(name, mode)] = [g.rate / o.rate for o, g in
                                           zip(rounds["orthanc"], rounds["vault"], strict=True)]
        report(results, modes, per_round)
    finally:
        if not args.keep:
            # Delete after measuring: deleting big folders just before a timed run slows this disk.
            for g in graveyard:
                shutil.rmtree(g, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


def _header() -> str:
    return (f"{'target':<20} {'data':<12} {'mode':<9} {'inst':>5} {'seconds':>7} {'inst/s':>7} "
            f"{'MB/s':>6} {'CPU ms':>6} {'p50 ms':>7} {'p95 ms':>7} {'idle %':>6}")


def _row(r: Result) -> str:
    lat = (f"{r.latency_p50_ms:7.1f} {r.latency_p95_ms:7.1f}" if r.latency_p50_ms is not None
           else f"{'-':>7} {'-':>7}")
    return (f"{r.target:<20} {r.dataset:<12} {r.mode:<9} {r.instances:>5} {r.seconds:7.2f} "
            f"{r.rate:7.1f} {r.mbps:6.1f} {r.cpu_ms:6.2f} {lat} {r.idle * 100:6.0f}")


def report(results: list[Result], modes: list[str],
           per_round: dict[tuple[str, str], list[float]]) -> None:
    rounds = max(r.rounds for r in results)
    print(f"\nall rounds together ({rounds} per target, data and mode):")
    print(_header())
    for r in results:
        print(_row(r))
    print("\ngateway / Orthanc, instances/s over all rounds (each round's own ratio), and CPU ms "
          "per instance, gateway : Orthanc:")
    for name in dict.fromkeys(r.dataset for r in results):
        for mode in modes:
            o = next(r for r in results if r.target == "orthanc" and r.dataset == name
                     and r.mode == mode)
            g = next(r for r in results if r.target != "orthanc" and r.dataset == name
                     and r.mode == mode)
            each = " ".join(f"{r:.2f}" for r in per_round[(name, mode)])
            print(f"  {name:<12} {mode:<9} {g.rate / o.rate:5.2f}   ({each})   "
                  f"{g.cpu_ms:.2f} : {o.cpu_ms:.2f}")
    print("\nwhere a gateway store's time goes (mean ms per instance), and the archive's CPU ms "
          "per instance by process:")
    names = ("broker", "catalogue", "gateway")
    print(f"  {'data':<12} {'mode':<9} " + " ".join(f"{p:>8}" for p in PHASES) + "   |"
          + " ".join(f"{n:>9}" for n in names))
    for r in results:
        if r.target != "orthanc":
            print(f"  {r.dataset:<12} {r.mode:<9} " + " ".join(
                f"{r.phases[p]:8.2f}" if p in r.phases else f"{'-':>8}" for p in PHASES)
                + "   |" + " ".join(f"{r.cpu_split.get(n, 0) / r.instances * 1000:9.2f}"
                                    for n in names))
    print("\nlatency = catalogue commit time − the gateway's InstanceStored time (just before its "
          "C-STORE response); CPU = user+system seconds of Orthanc, or of the archive's broker, "
          "catalogue and gateway (with workers) until every instance is catalogued; idle % = "
          "the machine's CPU time idle or waiting for I/O while the instances were sent (a "
          "run with idle left waits on something; it is not CPU-bound)")


if __name__ == "__main__":
    main()
