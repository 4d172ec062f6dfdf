"""Rebuild the projections from the journal, or check that a rebuild would change nothing.

``rebuild(settings, check_only=True)`` replays the journal into a fresh in-memory SQLite
database with the same models and compares every projection row with the live database.
``check_only=False`` rewrites the live projections from the journal in one transaction.
The CLI ``dicomvault catalogue rebuild [--check]`` calls ``rebuild_main``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue.db import make_engine, migrate, sessions
from catalogue.models import PROJECTIONS, Base, Journal
from catalogue.projection import apply
from catalogue.settings import CatalogueSettings
from dicomvault.events import TYPES, Event

log = logging.getLogger(__name__)

BATCH = 1000
MAX_REPORTED = 200


@dataclass
class RebuildReport:
    check_only: bool
    journal_rows: int = 0
    skipped_rows: int = 0  # journal rows of types this version cannot decode
    rows: dict[str, int] = field(default_factory=dict)  # replayed rows per table
    difference_count: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.difference_count == 0

    def as_dict(self) -> dict:
        return {"check_only": self.check_only, "ok": self.ok, "journal_rows": self.journal_rows,
                "skipped_rows": self.skipped_rows, "rows": self.rows,
                "difference_count": self.difference_count, "differences": self.differences}


def decode(row: Journal) -> Event | None:
    cls = TYPES.get(row.ce_type)
    if cls is None:
        return None
    payload = cls()
    payload.ParseFromString(row.payload)
    return Event(payload=payload, source=row.ce_source, subject=row.subject, id=row.ce_id,
                 time=row.ce_time)


async def replay(source: AsyncSession, target: AsyncSession, report: RebuildReport,
                 up_to: int | None = None) -> None:
    """Apply journal rows (seq <= up_to) of ``source`` to ``target``, in journal order."""
    last = 0
    while True:
        stmt = select(Journal).where(Journal.seq > last).order_by(Journal.seq).limit(BATCH)
        if up_to is not None:
            stmt = stmt.where(Journal.seq <= up_to)
        rows = (await source.scalars(stmt)).all()
        if not rows:
            return
        for row in rows:
            event = decode(row)
            report.journal_rows += 1
            if event is None:
                report.skipped_rows += 1
            else:
                await apply(target, event, row.seq)
            last = row.seq
        if source is not target:
            source.expunge_all()
        target.expunge_all()  # rows are flushed; keep the identity map small


async def snapshot(session: AsyncSession) -> dict[str, dict[tuple, dict]]:
    """Every projection row, by table and primary key."""
    out: dict[str, dict[tuple, dict]] = {}
    for model in PROJECTIONS:
        table = model.__table__
        pk = [c.name for c in table.primary_key.columns]
        rows = (await session.execute(select(table))).mappings().all()
        out[table.name] = {tuple(r[c] for c in pk): dict(r) for r in rows}
    return out


def compare(live: dict, fresh: dict, report: RebuildReport) -> None:
    for table, fresh_rows in fresh.items():
        live_rows = live.get(table, {})
        report.rows[table] = len(fresh_rows)
        problems: list[str] = []
        for key in sorted(set(fresh_rows) | set(live_rows), key=repr):
            a, b = live_rows.get(key), fresh_rows.get(key)
            if a is None:
                problems.append(f"{table}{list(key)}: missing from the live projection")
            elif b is None:
                problems.append(f"{table}{list(key)}: in the live projection, not in the journal")
            else:
                for col in b:
                    if a[col] != b[col]:
                        problems.append(f"{table}{list(key)}.{col}: live={a[col]!r} "
                                        f"journal={b[col]!r}")
        report.difference_count += len(problems)
        report.differences.extend(problems[: max(0, MAX_REPORTED - len(report.differences))])


async def _consistent_live(session: AsyncSession) -> tuple[int, dict]:
    """The live projections and the journal position they reflect (no commit in between)."""
    for _ in range(50):
        before = int(await session.scalar(select(func.coalesce(func.max(Journal.seq), 0))))
        live = await snapshot(session)
        after = int(await session.scalar(select(func.coalesce(func.max(Journal.seq), 0))))
        await session.rollback()
        if before == after:
            return before, live
        await asyncio.sleep(0.1)
    raise RuntimeError("the catalogue kept writing: could not take a consistent snapshot")


async def rebuild(settings: CatalogueSettings, *, check_only: bool) -> RebuildReport:
    report = RebuildReport(check_only=check_only)
    engine = make_engine(settings.database.resolved_url(), settings.database.echo)
    try:
        await migrate(engine)
        live_sessions = sessions(engine)
        if check_only:
            memory = make_engine("sqlite+aiosqlite:///:memory:")
            try:
                async with memory.begin() as conn:
                    await conn.run_sync(Base.metadata.create_all)
                async with live_sessions() as live_session:
                    up_to, live = await _consistent_live(live_session)
                    async with sessions(memory)() as fresh:
                        await replay(live_session, fresh, report, up_to)
                        await fresh.commit()
                        compare(live, await snapshot(fresh), report)
            finally:
                await memory.dispose()
        else:
            async with live_sessions() as session, session.begin():
                for model in reversed(PROJECTIONS):
                    await session.execute(delete(model))
                await replay(session, session, report)
            async with live_sessions() as session:
                report.rows = {t: len(rows) for t, rows in (await snapshot(session)).items()}
        log.info("catalogue rebuild", extra=report.as_dict())
        return report
    finally:
        await engine.dispose()


def rebuild_main(check_only: bool) -> int:
    """CLI entry: settings from DICOMVAULT_*; prints the report as JSON; exit code 1 on a
    difference (check) and 2 on an error."""
    settings = CatalogueSettings()
    try:
        report = asyncio.run(rebuild(settings, check_only=check_only))
    except Exception as exc:  # noqa: BLE001 - reported to the operator as an exit code
        print(json.dumps({"ok": False, "error": repr(exc)}), file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2, default=str))
    return 0 if report.ok else 1
