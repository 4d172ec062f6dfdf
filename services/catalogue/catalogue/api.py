"""The catalogue's REST API (FastAPI): find, study summary, locations, timeline, health;
queues and jobs (``jobs_api``).

Every route under ``/api/v1`` needs a bearer token with the read scope (the guard is on the
app, so routers added later inherit it); the queue and job commands also need admin
(``jobs_api``). /healthz, /readyz and /metrics stay open."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalogue import metrics
from catalogue.commands import Commands
from catalogue.jobs_api import jobs_router
from catalogue.models import Instance, Journal, Location, Patient, Series, Study, StudyLocation
from catalogue.query import QueryError, find, valid_uid
from catalogue.rebuild import decode
from catalogue.volumes_api import volumes_router
from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import alive, readiness
from dicomvault.metrics import metrics_app
from dicomvault.query import (
    FindRequest,
    FindResponse,
    InstanceLocation,
    UnknownRequest,
    UnknownResponse,
)

MAX_UIDS = 10_000


def _uid(uid: str) -> str:
    if not valid_uid(uid):
        raise HTTPException(400, f"{uid!r} is not a valid DICOM UID")
    return uid


def _uids(uids: list[str]) -> list[str]:
    if len(uids) > MAX_UIDS:
        raise HTTPException(400, f"at most {MAX_UIDS} UIDs per request")
    bad = [u for u in uids if not valid_uid(u)]
    if bad:
        raise HTTPException(400, f"{bad[0]!r} is not a valid DICOM UID")
    return uids


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _location(inst: Instance, loc: Location) -> InstanceLocation:
    return InstanceLocation(
        study_instance_uid=inst.study_instance_uid, series_instance_uid=inst.series_instance_uid,
        sop_instance_uid=inst.sop_instance_uid, sop_class_uid=inst.sop_class_uid,
        transfer_syntax_uid=inst.transfer_syntax_uid, tier=loc.tier,
        storage_key=loc.storage_key, size_bytes=loc.size_bytes, sha256=loc.sha256)


class Timing:
    """Pure ASGI middleware (no per-request task and stream, unlike ``@app.middleware``):
    the API_DURATION metric per route, and the catalogue's own time until the response starts
    in a W3C ``Server-Timing: app;dur=<ms>`` header (what benchmarks.query reports)."""

    def __init__(self, app: ASGIApp, routes: list) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                dur = f"app;dur={(time.perf_counter() - start) * 1000:.3f}".encode()
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"server-timing", dur)]}
            await send(message)

        await self.app(scope, receive, timed)
        name = next((getattr(route, "path", "unmatched") for route in self.routes
                     if route.matches(scope)[0] == Match.FULL), "unmatched")
        if not name.startswith("/metrics"):
            metrics.API_DURATION.labels(name, scope["method"], str(status)).observe(
                time.perf_counter() - start)


def build_app(sessions: async_sessionmaker, consumer_ready: Callable[[], bool],
              max_limit: int = 10_000, commands: Commands | None = None,
              verifier: TokenVerifier | None = None,
              problems: Callable[[], list[str]] = list) -> FastAPI:
    """The API; without ``commands`` the queue and job commands answer 503; without a
    ``verifier`` nothing needs a token (tests of the projections only)."""
    app = FastAPI(title="DICOM Vault catalogue", version="1")
    verifier = verifier or TokenVerifier(AuthSettings(enabled=False))
    verifier.guard(app, "/api/v1", "read")
    app.include_router(jobs_router(sessions, commands, verifier))
    app.include_router(volumes_router(sessions))
    app.mount("/metrics", metrics_app(metrics.REGISTRY))

    app.add_middleware(Timing, routes=app.router.routes)

    @app.exception_handler(QueryError)
    async def bad_query(_request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(SQLAlchemyError)
    async def db_down(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        return JSONResponse({"detail": f"catalogue database error: {type(exc).__name__}"},
                            status_code=503)

    @app.get("/healthz")
    async def healthz() -> dict:
        return alive()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        reasons = []
        try:
            async with sessions() as session:
                await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            reasons.append(f"database: {type(exc).__name__}: {exc}"[:300])
        if not consumer_ready():
            reasons.append("consumer not assigned to partitions yet")
        reasons += problems()  # e.g. the database cannot commit (disk full)
        return readiness(reasons)

    @app.post("/api/v1/find", response_model=FindResponse)
    async def find_(req: FindRequest) -> FindResponse:
        async with sessions() as session:
            return await find(session, req, max_limit)

    @app.get("/api/v1/studies/{uid}/instances", response_model=list[InstanceLocation])
    async def instances(uid: str, tier: str = "") -> list[InstanceLocation]:
        _uid(uid)
        async with sessions() as session:
            if await session.get(Study, uid) is None:
                raise HTTPException(404, f"study {uid} unknown")
            stmt = (select(Instance, Location)
                    .join(Location, Location.sop_instance_uid == Instance.sop_instance_uid)
                    .where(Instance.study_instance_uid == uid)
                    .order_by(Instance.series_instance_uid, func.length(Instance.instance_number),
                              Instance.instance_number, Instance.sop_instance_uid, Location.tier))
            if tier:
                stmt = stmt.where(Location.tier == tier)
            return [_location(i, loc) for i, loc in (await session.execute(stmt)).all()]

    @app.post("/api/v1/instances/lookup")
    async def lookup(req: UnknownRequest) -> dict:
        """Every known location of these instances (one row per instance and tier)."""
        uids = _uids(req.sop_instance_uids)
        out = []
        async with sessions() as session:
            for start in range(0, len(uids), 900):
                chunk = uids[start:start + 900]
                rows = (await session.execute(
                    select(Instance, Location)
                    .join(Location, Location.sop_instance_uid == Instance.sop_instance_uid)
                    .where(Instance.sop_instance_uid.in_(chunk))
                    .order_by(Instance.sop_instance_uid, Location.tier))).all()
                out += [_location(i, loc).model_dump() for i, loc in rows]
        return {"instances": out}

    @app.post("/api/v1/instances/unknown", response_model=UnknownResponse)
    async def unknown(req: UnknownRequest) -> UnknownResponse:
        uids = _uids(req.sop_instance_uids)
        known: set[str] = set()
        async with sessions() as session:
            for start in range(0, len(uids), 900):
                chunk = uids[start:start + 900]
                known |= set((await session.scalars(select(Instance.sop_instance_uid).where(
                    Instance.sop_instance_uid.in_(chunk)))).all())
        return UnknownResponse(unknown=[u for u in dict.fromkeys(uids) if u not in known])

    @app.get("/api/v1/studies/{uid}")
    async def study(uid: str) -> dict:
        _uid(uid)
        async with sessions() as session:
            s = await session.get(Study, uid)
            archived = (await session.scalars(select(StudyLocation).where(
                StudyLocation.study_instance_uid == uid).order_by(
                StudyLocation.tier, StudyLocation.archive_id))).all()
            if s is None and not archived:
                raise HTTPException(404, f"study {uid} unknown")
            n_series = await session.scalar(select(func.count()).select_from(Series).where(
                Series.study_instance_uid == uid))
            n_inst, size = (await session.execute(select(
                func.count(), func.coalesce(func.sum(Instance.size_bytes), 0)).where(
                Instance.study_instance_uid == uid))).one()
            modalities = sorted(m for m in (await session.scalars(select(Series.modality).where(
                Series.study_instance_uid == uid).distinct())).all() if m)
            tiers = dict((await session.execute(select(Location.tier, func.count()).where(
                Location.study_instance_uid == uid).group_by(Location.tier))).all())
            patient = None
            if s is not None:
                p = await session.get(Patient, (s.patient_id, s.issuer_of_patient_id))
                if p is not None:
                    patient = {"PatientID": p.patient_id,
                               "IssuerOfPatientID": p.issuer_of_patient_id,
                               "PatientName": p.patient_name,
                               "PatientBirthDate": p.patient_birth_date,
                               "PatientSex": p.patient_sex}
        out: dict = {
            "study_instance_uid": uid, "patient": patient,
            "patient_id": s.patient_id if s is not None else "",
            "number_of_series": int(n_series or 0), "number_of_instances": int(n_inst),
            "size_bytes": int(size), "modalities": modalities,
            "instances_per_tier": {k: int(v) for k, v in tiers.items()},
            "study_locations": [{
                "tier": a.tier, "archive_id": a.archive_id, "location": a.location,
                "verified": a.verified, "number_of_instances": a.number_of_instances,
                "size_bytes": a.size_bytes, "archived_at": _iso(a.archived_at),
                "job_id": a.job_id} for a in archived],
        }
        if s is not None:
            out.update({
                "attributes": {
                    "StudyDate": s.study_date, "StudyTime": s.study_time,
                    "AccessionNumber": s.accession_number, "StudyID": s.study_id,
                    "StudyDescription": s.study_description,
                    "ReferringPhysicianName": s.referring_physician_name,
                    "InstitutionName": s.institution_name},
                "first_received": _iso(s.first_received), "last_received": _iso(s.last_received),
                "revision": s.revision, "stable_revision": s.stable_revision,
                "stable": s.stable_revision >= s.revision,
            })
        return out

    @app.get("/api/v1/studies/{uid}/timeline")
    async def timeline(uid: str, limit: int = 10_000, after_seq: int = 0) -> dict:
        _uid(uid)
        async with sessions() as session:
            rows = (await session.scalars(select(Journal).where(
                Journal.subject == uid, Journal.seq > after_seq).order_by(Journal.seq).limit(
                max(1, min(limit, 100_000))))).all()
        if not rows and after_seq == 0:
            raise HTTPException(404, f"no journal entry for study {uid}")
        events = []
        for row in rows:
            event = decode(row)
            events.append({
                "seq": row.seq, "id": row.ce_id, "type": row.ce_type, "source": row.ce_source,
                "time": _iso(row.ce_time), "recorded_at": _iso(row.recorded_at),
                "data": MessageToDict(event.payload, preserving_proto_field_name=True)
                if event is not None else None,
            })
        return {"study_instance_uid": uid, "events": events}

    return app
