"""C-FIND matching in SQL (PS3.4 C.2.2.2): FindRequest -> FindResponse, never a file scan.

Matching per attribute: empty value or ``*`` is universal; a UID attribute takes one UID or
a backslash-separated list; DA and TM take a single value or a range (``a-b``, ``a-``,
``-b``), and a DA range together with a TM range of the same level is one combined date-time
range; other values match exactly unless they hold ``*`` or ``?`` (wildcards); PN matching
ignores case when the request asks so. Keys of the query level and of the levels above it
are filters; ModalitiesInStudy matches a study when any of its series has that modality.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.models import Instance, Patient, Series, Study
from dicomvault.query import (
    ATTRIBUTES,
    COMPUTED,
    FindRequest,
    FindResponse,
    Level,
)


class QueryError(ValueError):
    """The request cannot be answered as asked (bad key, level or matching value)."""


COLUMNS = {
    "PatientID": Patient.patient_id,
    "IssuerOfPatientID": Patient.issuer_of_patient_id,
    "PatientName": Patient.patient_name,
    "PatientBirthDate": Patient.patient_birth_date,
    "PatientSex": Patient.patient_sex,
    "StudyInstanceUID": Study.study_instance_uid,
    "StudyDate": Study.study_date,
    "StudyTime": Study.study_time,
    "AccessionNumber": Study.accession_number,
    "StudyID": Study.study_id,
    "StudyDescription": Study.study_description,
    "ReferringPhysicianName": Study.referring_physician_name,
    "InstitutionName": Study.institution_name,
    "SeriesInstanceUID": Series.series_instance_uid,
    "Modality": Series.modality,
    "SeriesNumber": Series.series_number,
    "SeriesDescription": Series.series_description,
    "SeriesDate": Series.series_date,
    "SeriesTime": Series.series_time,
    "BodyPartExamined": Series.body_part_examined,
    "StationName": Series.station_name,
    "SOPInstanceUID": Instance.sop_instance_uid,
    "SOPClassUID": Instance.sop_class_uid,
    "InstanceNumber": Instance.instance_number,
    "ContentDate": Instance.content_date,
    "ContentTime": Instance.content_time,
    "NumberOfFrames": Instance.number_of_frames,
    "AvailableTransferSyntaxUID": Instance.transfer_syntax_uid,
}
UIDS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID",
        "AvailableTransferSyntaxUID"}
DATES = {"PatientBirthDate", "StudyDate", "SeriesDate", "ContentDate"}
TIMES = {"StudyTime", "SeriesTime", "ContentTime"}
NAMES = {"PatientName", "ReferringPhysicianName"}
INTEGERS = {"NumberOfFrames"}
DATE_TIME = {"StudyDate": "StudyTime", "SeriesDate": "SeriesTime", "ContentDate": "ContentTime"}
LEVEL_OF = {k: lvl for lvl, keys in ATTRIBUTES.items() for k in keys}
ORDER = [Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE]

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DATE_RE = re.compile(r"^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
TIME_RE = re.compile(r"^([01]\d|2[0-3])([0-5]\d(([0-5]\d|60)(\.\d{1,6})?)?)?$")
TIME_MAX = "~"  # sorts after digits and '.': an upper bound "1015" includes 10:15:59.9


def valid_uid(value: str) -> bool:
    return len(value) <= 64 and UID_RE.match(value) is not None


def _levels(req: FindRequest) -> list[Level]:
    """The query level and the levels above it (whose keys are filters too)."""
    if req.root == "STUDY" and req.level == Level.PATIENT:
        raise QueryError("level PATIENT is not part of the Study Root information model")
    return ORDER[: ORDER.index(req.level) + 1]


def _like(col: ColumnElement, value: str, dialect: str) -> ColumnElement:
    if dialect == "sqlite":  # GLOB is case-sensitive and speaks * and ? natively
        return col.op("GLOB")(value.replace("[", "[[]"))
    escaped = value.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return col.like(escaped.replace("*", "%").replace("?", "_"), escape="!")


def _date(value: str, key: str) -> str:
    value = value.replace(".", "") if len(value) == 10 else value  # ACR-NEMA yyyy.mm.dd
    if not DATE_RE.match(value):
        raise QueryError(f"{key}: {value!r} is not a date YYYYMMDD")
    return value


def _time(value: str, key: str) -> str:
    value = value.replace(":", "")
    if not TIME_RE.match(value):
        raise QueryError(f"{key}: {value!r} is not a time HHMMSS.FFFFFF")
    return value


def _range(value: str) -> tuple[str, str] | None:
    if value.count("-") != 1:
        return None
    low, high = value.split("-")
    return low.strip(), high.strip()


def _bounded(col: ColumnElement, low: str, high: str) -> ColumnElement:
    parts = [col != ""]
    if low:
        parts.append(col >= low)
    if high:
        parts.append(col <= high)
    return and_(*parts)


def _condition(key: str, value: str, req: FindRequest, dialect: str) -> ColumnElement | None:
    col = COLUMNS[key]
    if key in UIDS:
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        bad = [u for u in uids if not valid_uid(u)]
        if bad:
            raise QueryError(f"{key}: {bad[0]!r} is not a valid UID")
        return col == uids[0] if len(uids) == 1 else col.in_(uids)
    if key in DATES or key in TIMES:
        norm = _date if key in DATES else _time
        rng = _range(value)
        if rng is None:
            return col == norm(value, key)
        low = norm(rng[0], key) if rng[0] else ""
        high = norm(rng[1], key) if rng[1] else ""
        if not low and not high:
            raise QueryError(f"{key}: {value!r} is an empty range")
        if key in TIMES and high:
            high += TIME_MAX
        return _bounded(col, low, high)
    if key in INTEGERS:
        try:
            return col == int(value)
        except ValueError as exc:
            raise QueryError(f"{key}: {value!r} is not an integer") from exc
    folded = key in NAMES and req.case_insensitive_pn
    if folded:
        col, value = func.lower(col), value.lower()
    if "*" in value or "?" in value:
        return _like(col, value, dialect)
    return col == value


def _combined(date_key: str, date: str, time: str) -> ColumnElement:
    """A DA range with a TM range: one date-time range (PS3.4 C.2.2.2.5.2)."""
    d_low, d_high = (_date(v, date_key) if v else "" for v in _range(date))
    t_low, t_high = (_time(v, DATE_TIME[date_key]) if v else "" for v in _range(time))
    col = COLUMNS[date_key] + COLUMNS[DATE_TIME[date_key]]
    parts = [COLUMNS[date_key] != ""]
    if d_low:
        parts.append(col >= d_low + t_low)
    if d_high:
        parts.append(col <= d_high + (t_high or "") + TIME_MAX)
    elif t_high and not d_low:
        parts.append(COLUMNS[DATE_TIME[date_key]] <= t_high + TIME_MAX)
    return and_(*parts)


def _modalities(value: str, dialect: str) -> ColumnElement:
    wanted = [v.strip() for v in value.split("\\") if v.strip()]
    conds = [_like(Series.modality, v, dialect) if ("*" in v or "?" in v)
             else Series.modality == v for v in wanted]
    return select(Series.series_instance_uid).where(
        Series.study_instance_uid == Study.study_instance_uid, or_(*conds)).exists()


def _base(level: Level) -> Select:
    patient_join = and_(Patient.patient_id == Study.patient_id,
                        Patient.issuer_of_patient_id == Study.issuer_of_patient_id)
    if level == Level.PATIENT:
        return select().select_from(Patient)
    if level == Level.STUDY:
        return select().select_from(Study).join(Patient, patient_join)
    if level == Level.SERIES:
        return (select().select_from(Series)
                .join(Study, Study.study_instance_uid == Series.study_instance_uid)
                .join(Patient, patient_join))
    return (select().select_from(Instance)
            .join(Series, Series.series_instance_uid == Instance.series_instance_uid)
            .join(Study, Study.study_instance_uid == Instance.study_instance_uid)
            .join(Patient, patient_join))


def _numeric_order(col: ColumnElement) -> list[ColumnElement]:
    return [func.length(col), col]


ORDER_BY = {
    Level.PATIENT: [Patient.patient_id, Patient.issuer_of_patient_id],
    Level.STUDY: [Study.study_date, Study.study_time, Study.study_instance_uid],
    Level.SERIES: [Series.study_instance_uid, *_numeric_order(Series.series_number),
                   Series.series_instance_uid],
    Level.IMAGE: [Instance.study_instance_uid, Instance.series_instance_uid,
                  *_numeric_order(Instance.instance_number), Instance.sop_instance_uid],
}
KEY_COLUMNS = {
    Level.PATIENT: [Patient.patient_id, Patient.issuer_of_patient_id],
    Level.STUDY: [Study.study_instance_uid],
    Level.SERIES: [Series.series_instance_uid],
    Level.IMAGE: [Instance.sop_instance_uid],
}


def where_clauses(req: FindRequest, dialect: str) -> list[ColumnElement]:
    levels = _levels(req)
    allowed = {k for lvl in levels for k in ATTRIBUTES[lvl]}
    if req.root == "STUDY" and req.level != Level.PATIENT:
        allowed |= set(ATTRIBUTES[Level.PATIENT])
    computed = set(COMPUTED[req.level])
    clauses: list[ColumnElement] = []
    filters = {k: (v or "").strip() for k, v in req.filters.items()}
    for key, value in filters.items():
        if key not in COLUMNS and key not in {c for cs in COMPUTED.values() for c in cs}:
            raise QueryError(f"unknown or unsupported matching key {key!r}")
        if value in ("", "*"):
            continue  # universal matching
        if key == "ModalitiesInStudy" and req.level == Level.STUDY:
            clauses.append(_modalities(value, dialect))
            continue
        if key in computed or key not in allowed:
            raise QueryError(f"{key} is not a matching key at level {req.level}")
        if key in DATE_TIME and _range(value) and _range(filters.get(DATE_TIME[key], "")):
            clauses.append(_combined(key, value, filters[DATE_TIME[key]]))
            continue
        if key in TIMES and key in DATE_TIME.values():
            date_key = next(d for d, t in DATE_TIME.items() if t == key)
            if _range(filters.get(date_key, "")) and _range(value):
                continue  # matched together with its date
        condition = _condition(key, value, req, dialect)
        if condition is not None:
            clauses.append(condition)
    return clauses


def return_keys(req: FindRequest) -> list[str]:
    levels = _levels(req)
    if req.root == "STUDY" and req.level != Level.PATIENT:
        levels = [Level.PATIENT, *[lvl for lvl in levels if lvl != Level.PATIENT]]
    allowed = [k for lvl in levels for k in ATTRIBUTES[lvl]] + list(COMPUTED[req.level])
    if not req.return_keys:  # nothing asked: every key of the level and above
        asked = list(dict.fromkeys([*allowed, *req.filters]))
    else:
        asked = list(dict.fromkeys([*req.return_keys, *req.filters]))
    unknown = [k for k in asked if k not in COLUMNS and
               k not in {c for cs in COMPUTED.values() for c in cs}]
    if unknown:
        raise QueryError(f"unknown return key {unknown[0]!r}")
    # Always the unique keys of the level and above, so a match can be placed in the tree.
    uniques = {Level.PATIENT: "PatientID", Level.STUDY: "StudyInstanceUID",
               Level.SERIES: "SeriesInstanceUID", Level.IMAGE: "SOPInstanceUID"}
    keys = [uniques[lvl] for lvl in _levels(req)
            if not (req.root == "STUDY" and lvl == Level.PATIENT)]
    return list(dict.fromkeys([*keys, *asked]))


def _values(col: ColumnElement, dialect: str, *where: ColumnElement) -> ColumnElement:
    """The distinct non-empty values of ``col`` as one JSON array (a list key)."""
    agg = func.json_group_array if dialect == "sqlite" else func.json_agg
    return select(agg(col.distinct())).where(col != "", *where).scalar_subquery()


def _count(model, *where: ColumnElement, join: tuple = ()) -> ColumnElement:
    stmt = select(func.count()).select_from(model)
    if join:
        stmt = stmt.join(*join)
    return stmt.where(*where).scalar_subquery()


def _computed(level: Level, key: list[ColumnElement], wanted: list[str],
              dialect: str) -> dict[str, ColumnElement]:
    """Correlated subqueries for the computed keys of one page row, keyed by the page's unique
    key columns: evaluated per row of the page only, each through an index on the parent UID."""
    if level == Level.PATIENT:
        same = (Study.patient_id == key[0], Study.issuer_of_patient_id == key[1])
        of_study = Study.study_instance_uid
        exprs = {
            "NumberOfPatientRelatedStudies": lambda: _count(Study, *same),
            "NumberOfPatientRelatedSeries": lambda: _count(
                Series, *same, join=(Study, of_study == Series.study_instance_uid)),
            "NumberOfPatientRelatedInstances": lambda: _count(
                Instance, *same, join=(Study, of_study == Instance.study_instance_uid)),
        }
    elif level == Level.STUDY:
        uid = key[0]
        exprs = {
            "ModalitiesInStudy": lambda: _values(Series.modality, dialect,
                                                 Series.study_instance_uid == uid),
            "SOPClassesInStudy": lambda: _values(Instance.sop_class_uid, dialect,
                                                 Instance.study_instance_uid == uid),
            "NumberOfStudyRelatedSeries": lambda: _count(Series, Series.study_instance_uid == uid),
            "NumberOfStudyRelatedInstances": lambda: _count(
                Instance, Instance.study_instance_uid == uid),
        }
    else:
        exprs = {"NumberOfSeriesRelatedInstances": lambda: _count(
            Instance, Instance.series_instance_uid == key[0])}
    return {name: exprs[name]() for name in wanted}


def _value_list(value: object) -> list[str]:
    if isinstance(value, str):  # JSON text (SQLite; PostgreSQL json without a codec)
        value = json.loads(value)
    return sorted(value or [])


async def find(session: AsyncSession, req: FindRequest, max_limit: int | None = None) -> FindResponse:
    """Answer one C-FIND-like request with SQL: usually one statement.

    The page (filters, order, OFFSET/LIMIT) is selected first; the computed keys are
    correlated subqueries over that page only. The total is counted only when the page does not
    tell it (a full page, or an empty page past the first)."""
    dialect = session.bind.dialect.name
    if max_limit is not None and req.limit is not None and req.limit > max_limit:
        raise QueryError(f"limit above the maximum page size {max_limit}")
    clauses = where_clauses(req, dialect)
    keys = return_keys(req)
    levels = _levels(req)
    if req.root == "STUDY":
        levels = [*levels, Level.PATIENT]
    here = {k for lvl in levels for k in ATTRIBUTES[lvl]}
    plain = [k for k in keys if k in here]
    wanted = [k for k in keys if k in COMPUTED[req.level]]
    base = _base(req.level).where(*clauses)
    key_cols = KEY_COLUMNS[req.level]
    order = ORDER_BY[req.level]
    stmt = base.with_only_columns(
        *[c.label(f"k{i}") for i, c in enumerate(key_cols)],
        *[COLUMNS[k].label(f"v{i}") for i, k in enumerate(plain)],
        *([o.label(f"o{i}") for i, o in enumerate(order)] if wanted else []),
    ).order_by(*order).offset(req.offset).limit(req.limit)
    if wanted:
        page = stmt.subquery("page")
        n_page = len(key_cols) + len(plain)
        computed = _computed(req.level, [page.c[f"k{i}"] for i in range(len(key_cols))],
                             wanted, dialect)
        stmt = select(*list(page.c)[:n_page],
                      *[expr.label(f"c{i}") for i, expr in enumerate(computed.values())]
                      ).order_by(*[page.c[f"o{i}"] for i in range(len(order))])
    conn = await session.connection()  # Core statements: no ORM compile step per request
    rows = (await conn.execute(stmt)).all()
    if (req.limit is None or len(rows) < req.limit) and (rows or req.offset == 0):
        total = req.offset + len(rows)  # the last page: it ends the matches
    else:
        total = int(await conn.scalar(
            base.with_only_columns(func.count()).order_by(None)) or 0)
    # Each returned key's place in the row and how its value is read, decided once per page.
    n = len(key_cols)
    at = {name: n + i for i, name in enumerate(plain)}
    at.update({name: n + len(plain) + i for i, name in enumerate(wanted)})
    readers = []
    for name in keys:
        if name in wanted:
            kind = "count" if name.startswith("Number") else "list"
        elif name in at:
            kind = "int" if name in INTEGERS else "plain"
        else:
            kind = "none"  # a key of a lower level: not applicable here
        readers.append((name, at.get(name, 0), kind))
    read = {"plain": lambda v: v, "int": lambda v: v or None, "count": lambda v: int(v or 0),
            "list": _value_list, "none": lambda _v: None}
    matches = [{name: read[kind](row[i]) for name, i, kind in readers} for row in rows]
    # Built here from typed columns: no need to validate every value of every match again.
    return FindResponse.model_construct(matches=matches, total=total)
