"""Fill a PostgreSQL catalogue with a hospital-sized archive, once, by bulk load.

The schema comes from the real Alembic migrations (``catalogue.db.migrate``); the rows are the
ones the projection writes for InstanceStored (patients, studies, series, instances, one cache
location per instance), loaded with PostgreSQL COPY (asyncpg ``copy_records_to_table``) rather
than replayed through the projection, which would take hours at today's projection speed. The
journal is left empty: no query reads it. Generation is deterministic (seeded), so a database
filled once is reused while its row counts match.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from catalogue.db import make_engine, migrate
from catalogue.models import Instance, Location, Patient, Series, Study

ROOT = "1.2.826.0.1.3680043.10.1207"  # our bench UIDs: <ROOT>.<kind>.<n>
SURNAMES = ("DOE", "SMITH", "MÜLLER", "GARCIA", "NGUYEN", "DUBOIS", "ROSSI", "KOWALSKI",
            "JANSEN", "SILVA", "IVANOV", "KIM", "OKAFOR", "HANSEN", "NOVAK", "LEROY", "BAUER",
            "COHEN", "MARTIN", "BROWN", "DOERING", "DOYLE", "SATO", "PATEL", "LOPEZ")
GIVEN = ("JOHN", "JANE", "ANNA", "PETER", "MARIA", "LUC", "ELENA", "TOM", "SARA", "ALI")
# modality -> (series per study, SOP class, instances weight)
MODALITIES = {
    "CT": ((2, 5), "1.2.840.10008.5.1.4.1.1.2", 3.0),
    "MR": ((3, 8), "1.2.840.10008.5.1.4.1.1.4", 2.0),
    "CR": ((1, 3), "1.2.840.10008.5.1.4.1.1.1", 0.05),
    "DX": ((1, 3), "1.2.840.10008.5.1.4.1.1.1.1", 0.05),
    "US": ((1, 2), "1.2.840.10008.5.1.4.1.1.6.1", 0.3),
    "MG": ((1, 2), "1.2.840.10008.5.1.4.1.1.1.2", 0.05),
    "PT": ((2, 3), "1.2.840.10008.5.1.4.1.1.128", 1.5),
}
TS = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Shape:
    patients: int = 3_000
    studies: int = 10_000
    instances: int = 1_000_000


def _rows(model, records: list[dict]) -> tuple[list[str], list[tuple]]:
    cols = [c.name for c in model.__table__.columns]
    return cols, [tuple(r[c] for c in cols) for r in records]


def generate(shape: Shape, seed: int = 12) -> dict[type, list[dict]]:
    """Patients, studies, series, instances and locations of the archive (deterministic)."""
    rnd = random.Random(seed)
    epoch = datetime(2026, 1, 1)
    patients = [{
        "patient_id": f"PAT{n:06d}", "issuer_of_patient_id": "",
        "patient_name": f"{rnd.choice(SURNAMES)}^{rnd.choice(GIVEN)}",
        "patient_birth_date": f"{rnd.randint(1930, 2020)}{rnd.randint(1, 12):02d}"
                              f"{rnd.randint(1, 28):02d}",
        "patient_sex": rnd.choice("MF"), "updated_seq": 0} for n in range(shape.patients)]
    studies, series, plans = [], [], []
    for n in range(shape.studies):
        p = patients[n % shape.patients if n < shape.patients else rnd.randrange(shape.patients)]
        mods = [rnd.choice(list(MODALITIES))]
        if mods[0] == "PT":
            mods.append("CT")
        day = datetime(2015, 1, 1) + timedelta(days=rnd.randrange(4000))
        when = epoch - timedelta(days=rnd.randrange(365))
        uid = f"{ROOT}.1.{n + 1}"
        studies.append({
            "study_instance_uid": uid, "patient_id": p["patient_id"],
            "issuer_of_patient_id": "", "study_date": day.strftime("%Y%m%d"),
            "study_time": f"{rnd.randrange(7, 20):02d}{rnd.randrange(60):02d}00",
            "accession_number": f"ACC{n + 1:08d}", "study_id": str(n % 9999 + 1),
            "study_description": f"{mods[0]} examination", "referring_physician_name":
            f"{rnd.choice(SURNAMES)}^{rnd.choice(GIVEN)}", "institution_name": "General Hospital",
            "first_received": when, "last_received": when + timedelta(minutes=5),
            "revision": 0, "stable_revision": 0})
        number = 0
        for mod in mods:
            low, high = MODALITIES[mod][0]
            for _ in range(rnd.randint(low, high)):
                number += 1
                s = {"series_instance_uid": f"{ROOT}.2.{n + 1}.{number}",
                     "study_instance_uid": uid, "modality": mod, "series_number": str(number),
                     "series_description": f"{mod} series {number}",
                     "series_date": studies[-1]["study_date"],
                     "series_time": studies[-1]["study_time"], "body_part_examined": "CHEST",
                     "station_name": f"{mod}STATION{rnd.randrange(4)}"}
                series.append(s)
                plans.append((s, MODALITIES[mod][1], MODALITIES[mod][2] * rnd.uniform(0.5, 1.5),
                              when))
    # Spread the instances over the series by weight so that the total is exact.
    weights = sum(p[2] for p in plans)
    counts = [max(1, int(p[2] / weights * shape.instances)) for p in plans]
    i = 0
    while sum(counts) != shape.instances:
        step = 1 if sum(counts) < shape.instances else -1
        if counts[i % len(counts)] + step >= 1:
            counts[i % len(counts)] += step
        i += 7919
    instances, locations = [], []
    by_study: dict[str, int] = {}
    for (s, sop_class, _w, when), count in zip(plans, counts, strict=True):
        for k in range(1, count + 1):
            sop = f"{s['series_instance_uid']}.{k}"
            study_uid = s["study_instance_uid"]
            by_study[study_uid] = by_study.get(study_uid, 0) + 1
            sha = hashlib.sha256(sop.encode()).hexdigest()
            received = when + timedelta(milliseconds=k)
            instances.append({
                "sop_instance_uid": sop, "series_instance_uid": s["series_instance_uid"],
                "study_instance_uid": study_uid, "sop_class_uid": sop_class,
                "instance_number": str(k), "content_date": s["series_date"],
                "content_time": s["series_time"], "number_of_frames": 0,
                "transfer_syntax_uid": TS, "specific_character_set": "ISO_IR 192",
                "size_bytes": 530_000, "sha256": sha, "calling_ae": "MODALITY",
                "called_ae": "DICOMVAULT", "source": "dimse", "received_time": received,
                "revision": by_study[study_uid]})
            locations.append({
                "sop_instance_uid": sop, "tier": "cache", "study_instance_uid": study_uid,
                "storage_key": f"{study_uid}/{s['series_instance_uid']}/{sop}.dcm",
                "size_bytes": 530_000, "sha256": sha, "stored_at": received})
    for st in studies:
        st["revision"] = st["stable_revision"] = by_study.get(st["study_instance_uid"], 0)
    return {Patient: patients, Study: studies, Series: series, Instance: instances,
            Location: locations}


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def counts(url: str) -> dict[str, int] | None:
    """Row counts of the filled tables, or None when the database is absent or not migrated."""
    try:
        conn = await asyncpg.connect(dsn(url), timeout=10)
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        out = {}
        for table in ("patients", "studies", "series", "instances", "locations"):
            try:
                out[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
            except asyncpg.UndefinedTableError:
                return None
        return out
    finally:
        await conn.close()


async def fill(admin_dsn: str, url: str, name: str, shape: Shape) -> float:
    """(Re)create database ``name``, migrate it to head, bulk-load the archive; seconds taken."""
    start = time.monotonic()
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = make_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    data = generate(shape)
    print(f"  generated {sum(len(v) for v in data.values()):,} rows in "
          f"{time.monotonic() - start:.0f} s", flush=True)
    conn = await asyncpg.connect(dsn(url), timeout=10)
    try:
        for model, records in data.items():
            cols, rows = _rows(model, records)
            await conn.copy_records_to_table(model.__tablename__, records=rows, columns=cols)
            print(f"  COPY {model.__tablename__}: {len(rows):,} rows "
                  f"({time.monotonic() - start:.0f} s)", flush=True)
        await conn.execute("VACUUM ANALYZE")  # what autovacuum does to a long-lived archive
    finally:
        await conn.close()
    return time.monotonic() - start
