"""Query benchmark: C-FIND / QIDO-RS catalogue queries over 1,000,000 catalogued instances.

Fills a PostgreSQL database once (bulk COPY of the rows the projection writes, into the schema
of the real Alembic migrations; reused while its row counts match), starts the real catalogue
service process against it (with the embedded broker it consumes from) and times
``POST /api/v1/find`` — the call behind the gateway's C-FIND and QIDO-RS — per query kind.
"server" is the catalogue's own time (its Server-Timing header, measured by its HTTP
middleware around the route); "round trip" adds HTTP on loopback and the client.

    make bench-query                 # or: .venv/bin/python -m benchmarks.query --help
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

from benchmarks.interpreter import describe
from benchmarks.query.cpu import backends, cpu_seconds
from benchmarks.query.fill import Shape, counts, dsn, fill
from benchmarks.query.gateway import Gateway
from benchmarks.query.kinds import KINDS, Sample
from dicomvault.bus.broker import EmbeddedBroker, free_port
from tests.peers.services import ServiceProcess
from tests.peers.tokens import READ, Issuer, auth_env

FLOOR = "GET /healthz (HTTP only, no database: the floor)"
ADMIN_DSN = os.environ.get("DICOMVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def sample(url: str, rnd: random.Random, n: int = 500) -> Sample:
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        studies = await conn.fetch("SELECT study_instance_uid, patient_id, accession_number "
                                   "FROM studies")
        series = await conn.fetch("SELECT study_instance_uid, series_instance_uid FROM series")
    finally:
        await conn.close()
    picked = rnd.sample(list(studies), n)
    return Sample(patient_ids=[r[1] for r in picked], study_uids=[r[0] for r in picked],
                  accessions=[r[2] for r in picked],
                  series=[tuple(r) for r in rnd.sample(list(series), n)])


def measure(base: str, headers: dict, smp: Sample, repeat: int,
            rnd: random.Random) -> list[tuple]:
    """``repeat`` requests of every kind, interleaved round-robin so that the load of other
    processes on the machine spreads over all kinds alike."""
    names = [FLOOR, *KINDS]
    server: dict[str, list[float]] = {name: [] for name in names}
    trip: dict[str, list[float]] = {name: [] for name in names}
    matches: dict[str, list[int]] = {name: [] for name in names}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for kind in KINDS.values():  # warm-up: connections, statement caches
            for _ in range(3):
                client.post("/api/v1/find", json=kind(rnd, smp)).raise_for_status()
        for _ in range(repeat):
            for name in names:
                body = KINDS[name](rnd, smp) if name in KINDS else None
                start = time.perf_counter()
                r = (client.post("/api/v1/find", json=body) if body is not None
                     else client.get("/healthz"))
                trip[name].append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
                server[name].append(float(r.headers["server-timing"].split("dur=")[1]))
                matches[name].append(len(r.json().get("matches", ())))
    return [(name, server[name], trip[name], matches[name]) for name in names]


def cpu_per_request(base: str, headers: dict, smp: Sample, rnd: random.Random, pids: list[int],
                    pg_pids: list[int], n: int = 100) -> dict[str, tuple[float, float]]:
    """Per kind: CPU ms of the catalogue and of PostgreSQL per request (n in a row)."""
    out = {}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for name in [FLOOR, *KINDS]:
            bodies = [KINDS[name](rnd, smp) if name in KINDS else None for _ in range(n)]
            cat0, pg0 = sum(map(cpu_seconds, pids)), sum(map(cpu_seconds, pg_pids))
            for body in bodies:
                (client.post("/api/v1/find", json=body) if body is not None
                 else client.get("/healthz")).raise_for_status()
            cat1, pg1 = sum(map(cpu_seconds, pids)), sum(map(cpu_seconds, pg_pids))
            out[name] = ((cat1 - cat0) * 1000 / n, (pg1 - pg0) * 1000 / n)
    return out


def report(results: list[tuple], cpu: dict[str, tuple[float, float]], shape: Shape,
           load: str) -> None:
    print(f"\ncatalogue POST /api/v1/find on PostgreSQL, {shape.instances:,} instances / "
          f"{shape.studies:,} studies / {shape.patients:,} patients (ms); {os.cpu_count()} "
          f"cores, load average during the run {load}")
    print(f"{'query':56} {'matches':>7} {'server p50':>10} {'p95':>6} {'trip p50':>8} "
          f"{'p95':>6} {'cpu cat':>7} {'cpu pg':>6}")
    for name, server, trip, matches in results:
        print(f"{name:56} {sorted(matches)[len(matches) // 2]:>7} {pct(server, .5):>10.1f} "
              f"{pct(server, .95):>6.1f} {pct(trip, .5):>8.1f} {pct(trip, .95):>6.1f} "
              f"{cpu[name][0]:>7.1f} {cpu[name][1]:>6.1f}")
    print("matches = median page size; server = the catalogue's own time (Server-Timing); "
          "trip = HTTP round trip on loopback;\ncpu = CPU ms per request of the catalogue "
          "process and of its PostgreSQL backends (/proc; 10 ms ticks over 100 requests).\n"
          "Target (issue 12): C-FIND study level and QIDO /studies?PatientID= server p50 <= 10 ms, "
          "p95 <= 50 ms.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database", default="dicomvault_bench_query",
                    help="PostgreSQL database to fill once and reuse")
    ap.add_argument("--instances", type=int, default=Shape.instances)
    ap.add_argument("--studies", type=int, default=Shape.studies)
    ap.add_argument("--patients", type=int, default=Shape.patients)
    ap.add_argument("--repeat", type=int, default=200, help="timed requests per query kind")
    ap.add_argument("--no-gateway", dest="gateway", action="store_false",
                    help="skip the end-to-end figures through the gateway")
    ap.add_argument("--refill", action="store_true", help="fill even if the counts match")
    args = ap.parse_args()
    print(f"python: {describe()}", flush=True)
    shape = Shape(args.patients, args.studies, args.instances)
    url = (ADMIN_DSN.rsplit("/", 1)[0] + "/" + args.database).replace(
        "postgresql://", "postgresql+asyncpg://")
    have = asyncio.run(counts(url))
    if (not args.refill and have is not None and have["patients"] == shape.patients
            and have["studies"] == shape.studies and have["instances"] == shape.instances):
        print(f"reusing database {args.database}: {have}")
    else:
        print(f"filling database {args.database} by bulk COPY of projection rows "
              f"(found {have}) ...", flush=True)
        seconds = asyncio.run(fill(ADMIN_DSN, url, args.database, shape))
        print(f"filled in {seconds:.0f} s")
    rnd = random.Random(7)
    smp = asyncio.run(sample(url, rnd))
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(log_path=work / "tansu.log")
        broker.start()
        port = free_port()
        issuer = Issuer(work)  # bearer tokens checked on every request, as in production
        cat = ServiceProcess("catalogue", {**auth_env(issuer),
            "DICOMVAULT_BUS__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "DICOMVAULT_HTTP__PORT": str(port), "DICOMVAULT_DATABASE__URL": url,
            "DICOMVAULT_LOG__LEVEL": "WARNING", "DICOMVAULT_CATALOGUE__STABLE_AFTER_S": "3600",
        }, work, ready_url=f"http://127.0.0.1:{port}/readyz")
        try:
            started = time.monotonic()
            cat.start(timeout_s=600)  # start-up migrates an older filled database first
            print(f"catalogue ready in {time.monotonic() - started:.1f} s", flush=True)
            load_before = os.getloadavg()[0]
            base, bearer = f"http://127.0.0.1:{port}", issuer.bearer(READ, expires_in=3600)
            results = measure(base, bearer, smp, args.repeat, rnd)
            load_after = os.getloadavg()[0]
            pg_pids = asyncio.run(backends(dsn(ADMIN_DSN), args.database))
            cpu = cpu_per_request(base, bearer, smp, rnd, [cat.process.pid], pg_pids)
            e2e = {}
            if args.gateway:
                with Gateway(work, issuer, broker.bootstrap_servers, base) as gw:
                    e2e = {"QIDO-RS GET /dicomweb/studies?PatientID= (HTTP)":
                           gw.qido(bearer, smp, rnd, args.repeat),
                           "C-FIND study, PatientID (DIMSE, pynetdicom SCU)":
                           gw.cfind(smp, rnd, args.repeat)}
        finally:
            cat.stop()
            broker.stop()
    report(results, cpu, shape, f"{load_before:.1f} -> {load_after:.1f}")
    if e2e:
        print("\nend to end through the gateway (client round trip on loopback, ms)")
        for name, values in e2e.items():
            print(f"{name:56} p50 {pct(values, .5):6.1f}   p95 {pct(values, .95):6.1f}")


if __name__ == "__main__":
    main()
