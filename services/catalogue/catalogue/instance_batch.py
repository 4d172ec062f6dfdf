"""InstanceStored facts applied in bulk: preload with a few IN queries, apply in memory, write
back with multi-row statements.

``InstanceBatch`` is the batch form of ``projection._instance_stored`` and must give the same
rows (``rebuild`` replays the journal through the per-event function; the tests compare the
two). Use: ``load(session, payloads)``, then ``apply(p, time, seq)`` for each fact in journal
order, then ``flush(session)``. Between ``load`` and ``flush`` nothing else may write the
tables it holds (the batch policy flushes before applying any other kind of fact).

Write-back is an upsert per table (``ON CONFLICT DO UPDATE``), so it is right whether a row was
new or preloaded. Two columns are written defensively because another replica may apply facts
from another partition at the same time: a patient (shared by studies on several partitions)
is only overwritten by a fact with a higher journal seq, and a study's ``stable_revision``
(set by StudyStable, on the studies topic) is never written after the insert.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from operator import itemgetter

from sqlalchemy import Table, delete, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from catalogue import bulk
from catalogue.models import Instance, Location, Patient, Series, Study, StudyLocation
from catalogue.projection import DEFAULT_TIER, RECALL, ts
from dicomvault.events.v1 import events_pb2 as ev

CHUNK = 512  # keys per IN query

Row = dict[str, object]


def _set(row: Row, values: dict[str, object], only_non_empty: bool = False) -> bool:
    """``projection._set`` on a row held as a dict."""
    changed = False
    for name, value in values.items():
        if only_non_empty and value in ("", 0, None):
            continue
        if row[name] != value:
            row[name] = value
            changed = True
    return changed


class _Rows:
    """One table's rows of the batch by primary key, and which of them to write back."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.pk = [c.name for c in table.primary_key.columns]
        self.rows: dict[tuple, Row] = {}
        self.dirty: set[tuple] = set()
        getter = itemgetter(*self.pk)
        self.key: Callable[[Row], tuple] = (
            getter if len(self.pk) > 1 else lambda row: (getter(row),))
        # A column this module does not set (one added later) gets its model default, as
        # the ORM would give it: a new row must bind every column of the upsert.
        self.defaults = {c.name: c.default.arg if c.default is not None
                         and c.default.is_scalar else None for c in table.columns}

    def get(self, *key: object) -> Row | None:
        return self.rows.get(key)

    def put(self, row: Row) -> None:
        if len(row) < len(self.defaults):
            row = {**self.defaults, **row}
        key = self.key(row)
        self.rows[key] = row
        self.dirty.add(key)

    def touch(self, row: Row, changed: bool = True) -> bool:
        if changed:
            self.dirty.add(self.key(row))
        return changed

    async def load(self, session: AsyncSession, column: str, values: Iterable[object]) -> None:
        for row in await bulk.select_in(session, self.table, column, sorted(set(values)),
                                        largest=CHUNK):
            self.rows[self.key(row)] = row

    async def write(self, session: AsyncSession, keep: tuple[str, ...] = (),
                    newer: str | None = None) -> None:
        """Upsert the dirty rows; ``keep`` columns are only written on insert; with ``newer``,
        an existing row is only overwritten by one whose ``newer`` column is higher."""
        rows = [self.rows[k] for k in sorted(self.dirty) if k in self.rows]
        await bulk.executemany(session, f"upsert {self.table.name}", self.table,
                               upsert(self.table, keep, newer), rows)


def upsert(table: Table, keep: tuple[str, ...] = (),
           newer: str | None = None) -> Callable[[Callable[[Table], Insert]], Insert]:
    """The upsert of ``_Rows.write`` for a dialect's ``insert``: on a primary key conflict
    every column but ``keep`` is overwritten, with ``newer`` only by a higher value."""
    pk = [c.name for c in table.primary_key.columns]

    def build(insert: Callable[[Table], Insert]) -> Insert:
        stmt = insert(table)
        columns = [c.name for c in table.columns if c.name not in pk and c.name not in keep]
        return stmt.on_conflict_do_update(
            index_elements=pk, set_={c: stmt.excluded[c] for c in columns},
            where=(table.c[newer] < stmt.excluded[newer]) if newer else None)

    return build


class InstanceBatch:
    """The patients, studies, series, instances and locations one batch of facts touches."""

    def __init__(self) -> None:
        self.patients = _Rows(Patient.__table__)
        self.studies = _Rows(Study.__table__)
        self.series = _Rows(Series.__table__)
        self.instances = _Rows(Instance.__table__)
        self.locations = _Rows(Location.__table__)
        self.gone: set[tuple] = set()  # locations deleted by a replace
        self.unverified: set[tuple[str, str]] = set()  # (study, tier kept) of a replace

    async def load(self, session: AsyncSession, facts: list[ev.InstanceStored]) -> None:
        await self.patients.load(session, "patient_id", (p.patient_id for p in facts))
        await self.studies.load(session, "study_instance_uid",
                                (p.study_instance_uid for p in facts))
        await self.series.load(session, "series_instance_uid",
                               (p.series_instance_uid for p in facts))
        sops = [p.sop_instance_uid for p in facts]
        await self.instances.load(session, "sop_instance_uid", sops)
        await self.locations.load(session, "sop_instance_uid", sops)  # every tier's copy

    def _add_location(self, p: ev.InstanceStored, tier: str, received: datetime,
                      values: Row) -> bool:
        self.locations.put({"sop_instance_uid": p.sop_instance_uid, "tier": tier,
                            "stored_at": received, **values})
        self.gone.discard((p.sop_instance_uid, tier))
        return True

    def apply(self, p: ev.InstanceStored, time: datetime, seq: int) -> bool:
        """``projection._instance_stored`` in memory; True if a row changed."""
        received = ts(p.received_time, time)
        tier = p.tier or DEFAULT_TIER
        sop = p.sop_instance_uid
        location = self.locations.get(sop, tier)
        instance = self.instances.get(sop)
        same = instance is not None and instance["sha256"] == p.sha256
        loc_values = {"study_instance_uid": p.study_instance_uid, "storage_key": p.storage_key,
                      "size_bytes": p.size_bytes, "sha256": p.sha256}
        if same:
            if location is None:
                return self._add_location(p, tier, received, loc_values)
            return self.locations.touch(location, _set(location, loc_values))
        if instance is not None and p.source == RECALL:
            if location is None:
                return self._add_location(p, tier, received, loc_values)
            return self.locations.touch(location,
                                        _set(location, {**loc_values, "stored_at": received}))

        patient = self.patients.get(p.patient_id, p.issuer_of_patient_id)
        patient_values = {"patient_name": p.patient_name,
                          "patient_birth_date": p.patient_birth_date,
                          "patient_sex": p.patient_sex, "updated_seq": seq}
        if patient is None:
            self.patients.put({"patient_id": p.patient_id,
                               "issuer_of_patient_id": p.issuer_of_patient_id, **patient_values})
        else:
            self.patients.touch(patient, _set(patient, patient_values))

        study_values = {
            "patient_id": p.patient_id, "issuer_of_patient_id": p.issuer_of_patient_id,
            "study_date": p.study_date, "study_time": p.study_time,
            "accession_number": p.accession_number, "study_id": p.study_id,
            "study_description": p.study_description,
            "referring_physician_name": p.referring_physician_name,
            "institution_name": p.institution_name,
        }
        study = self.studies.get(p.study_instance_uid)
        if study is None:
            self.studies.put({"study_instance_uid": p.study_instance_uid,
                              "first_received": received, "last_received": received,
                              "revision": seq, "stable_revision": 0, **study_values})
        else:
            _set(study, study_values, only_non_empty=True)
            study["revision"] = seq
            study["last_received"] = max(study["last_received"], received)
            self.studies.touch(study)

        series_values = {
            "study_instance_uid": p.study_instance_uid, "modality": p.modality,
            "series_number": p.series_number, "series_description": p.series_description,
            "series_date": p.series_date, "series_time": p.series_time,
            "body_part_examined": p.body_part_examined, "station_name": p.station_name,
        }
        series = self.series.get(p.series_instance_uid)
        if series is None:
            self.series.put({"series_instance_uid": p.series_instance_uid, **series_values})
        else:
            self.series.touch(series, _set(series, series_values, only_non_empty=True))

        instance_values = {
            "series_instance_uid": p.series_instance_uid,
            "study_instance_uid": p.study_instance_uid,
            "sop_class_uid": p.sop_class_uid, "instance_number": p.instance_number,
            "content_date": p.content_date, "content_time": p.content_time,
            "number_of_frames": p.number_of_frames, "transfer_syntax_uid": p.transfer_syntax_uid,
            "specific_character_set": p.specific_character_set, "size_bytes": p.size_bytes,
            "sha256": p.sha256, "calling_ae": p.calling_ae, "called_ae": p.called_ae,
            "source": p.source, "received_time": received, "revision": seq,
        }
        if instance is None:
            self.instances.put({"sop_instance_uid": sop, **instance_values})
        else:
            self.instances.touch(instance, _set(instance, instance_values))
            # A replace: the other tiers' copies hold the old bytes (see projection.py).
            for key in [k for k in self.locations.rows if k[0] == sop and k[1] != tier]:
                del self.locations.rows[key]
                self.gone.add(key)
            self.unverified.add((p.study_instance_uid, tier))
        if location is None:
            return self._add_location(p, tier, received, loc_values)
        self.locations.touch(location, _set(location, {**loc_values, "stored_at": received}))
        return True

    async def flush(self, session: AsyncSession) -> None:
        """Write every changed row back (parents first), then the replaces' side effects."""
        await self.patients.write(session, newer="updated_seq")
        await self.studies.write(session, keep=("stable_revision",))
        await self.series.write(session)
        await self.instances.write(session)
        for sop, tier in sorted(self.gone):
            await session.execute(delete(Location).where(
                Location.sop_instance_uid == sop, Location.tier == tier))
        await self.locations.write(session)
        for study, tier in sorted(self.unverified):
            await session.execute(update(StudyLocation).where(
                StudyLocation.study_instance_uid == study,
                StudyLocation.tier != tier).values(verified=False))
