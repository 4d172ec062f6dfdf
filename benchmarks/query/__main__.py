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

from benchmarks.query.fill import Shape, counts, dsn, fill
from benchmarks.query.kinds import KINDS, Sample
from dicomvault.bus.broker import EmbeddedBroker, free_port
from tests.peers.services import ServiceProcess
from tests.peers.tokens import READ, Issuer, auth_env

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
    out = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for name, kind in KINDS.items():
            for _ in range(3):  # warm-up: connection, plan cache
                client.post("/api/v1/find", json=kind(rnd, smp)).raise_for_status()
            server, trip, matches = [], [], []
            for _ in range(repeat):
                body = kind(rnd, smp)
                start = time.perf_counter()
                r = client.post("/api/v1/find", json=body)
                trip.append((time.perf_counter() - start) * 1000)
                r.raise_for_status()
                server.append(float(r.headers["server-timing"].split("dur=")[1]))
                matches.append(len(r.json()["matches"]))
            out.append((name, server, trip, matches))
    return out


def report(results: list[tuple], shape: Shape) -> None:
    print(f"\ncatalogue POST /api/v1/find on PostgreSQL, {shape.instances:,} instances / "
          f"{shape.studies:,} studies / {shape.patients:,} patients (ms)")
    print(f"{'query':58} {'matches':>8} {'server p50':>10} {'p95':>7} {'trip p50':>9} {'p95':>7}")
    for name, server, trip, matches in results:
        print(f"{name:58} {sorted(matches)[len(matches) // 2]:>8} {pct(server, .5):>10.1f} "
              f"{pct(server, .95):>7.1f} {pct(trip, .5):>9.1f} {pct(trip, .95):>7.1f}")
    print("matches = median page size; server = the catalogue's Server-Timing; trip = HTTP round "
          "trip on loopback. Target (issue 12): C-FIND study level and QIDO /studies?PatientID= "
          "p50 <= 10 ms, p95 <= 50 ms.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--database", default="dicomvault_bench_query",
                    help="PostgreSQL database to fill once and reuse")
    ap.add_argument("--instances", type=int, default=Shape.instances)
    ap.add_argument("--studies", type=int, default=Shape.studies)
    ap.add_argument("--patients", type=int, default=Shape.patients)
    ap.add_argument("--repeat", type=int, default=200, help="timed requests per query kind")
    ap.add_argument("--refill", action="store_true", help="fill even if the counts match")
    args = ap.parse_args()
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
            results = measure(f"http://127.0.0.1:{port}", issuer.bearer(READ, expires_in=3600),
                              smp, args.repeat, rnd)
        finally:
            cat.stop()
            broker.stop()
    report(results, shape)


if __name__ == "__main__":
    main()
