"""REST API of queues and jobs: reads of the projections, and administrators' commands.

A command is checked against the projected state (404 unknown job or queue, 409 not
applicable now), then published as JobCommandIssued; the answer is 202 with the command's
id: the queue's owner applies it and the resulting fact shows up in the projection.
Reads need a bearer token with the read scope (the app-wide guard of ``api.build_app``),
commands one with the admin scope (``dicomvault.auth``); the caller recorded
with the command is the token's subject. With authentication switched off (the embedded
laptop default) the caller is the ``X-Forwarded-User`` header an authenticating proxy sets.
"""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue import metrics
from catalogue.commands import JOB_COMMANDS, Cmd, Commands, queue_refusal, refusal
from catalogue.jobs_view import JobFilter, get_queue, iso, job_json, list_jobs, list_queues
from catalogue.models import JobRow
from dicomvault.auth import TokenVerifier
from dicomvault.bus import PublishError
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import JobState

USER_HEADER = "X-Forwarded-User"
KINDS = tuple(n for n in jb.JobKind.keys() if n != "JOB_KIND_UNSPECIFIED")


class CommandBody(BaseModel):
    """Optional body of a command: why, and (reschedule only) when the job may run."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=1024, description="Why; recorded with the command.")
    not_before: AwareDatetime | None = Field(
        None, description="Reschedule: earliest start, ISO 8601 with a time zone.")
    include_refused: bool = Field(
        False, description="Retry / reschedule: also send again the instances the remote "
        "refused permanently (without it only those not yet confirmed are sent again).")


def _caller(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    if principal is not None and principal.subject != "anonymous":
        return f"api:{principal.subject[:128]}"
    user = (request.headers.get(USER_HEADER) or "").strip()[:128]
    host = request.client.host if request.client else "unknown"
    return f"api:{user}" if user else f"api:anonymous@{host}"


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else ""


def _states(value: str) -> list[str]:
    out = []
    for part in filter(None, (s.strip() for s in value.split(","))):
        name = part.upper().replace(" ", "_").replace("-", "_")
        if name not in JobState.__members__:
            raise HTTPException(422, f"unknown job state {part!r}; one of "
                                     f"{', '.join(s.value for s in JobState)}")
        out.append(JobState[name].value)
    return out


def _accepted(command: int, event, queue: str, job_id: str = "") -> JSONResponse:
    p = event.payload
    return JSONResponse(status_code=202, content={
        "command_id": event.id, "command": Cmd.Command.Name(command), "queue": queue,
        "job_id": job_id, "issued_by": p.issued_by, "reason": p.reason,
        "include_refused": p.include_refused,
        "not_before": iso(p.not_before.ToDatetime(tzinfo=UTC))
        if p.HasField("not_before") else None})


def jobs_router(sessions: async_sessionmaker, commands: Commands | None,
                verifier: TokenVerifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    admin = [Depends(verifier.require("admin"))]

    async def issue(command: int, **kw):
        if commands is None:
            raise HTTPException(503, "this catalogue has no publisher for commands")
        try:
            return await commands.issue(command, **kw)
        except PublishError as exc:
            metrics.JOB_COMMANDS.labels(Cmd.Command.Name(command), "unavailable").inc()
            raise HTTPException(503, f"the command could not be published: {exc}") from exc

    def refuse(command: int, status: int, detail: str) -> HTTPException:
        metrics.JOB_COMMANDS.labels(Cmd.Command.Name(command), str(status)).inc()
        return HTTPException(status, detail)

    @router.get("/queues")
    async def queues() -> dict:
        async with sessions() as session:
            return {"queues": await list_queues(session)}

    @router.get("/queues/{name}")
    async def queue(name: str) -> dict:
        async with sessions() as session:
            found = await get_queue(session, name)
        if found is None:
            raise HTTPException(404, f"queue {name!r} unknown")
        return found

    async def queue_command(name: str, pause: bool, body: CommandBody | None,
                            request: Request) -> JSONResponse:
        body = body or CommandBody()
        command = Cmd.PAUSE_QUEUE if pause else Cmd.RESUME_QUEUE
        if body.not_before is not None:
            raise refuse(command, 422, "not_before applies to reschedule only")
        async with sessions() as session:
            found = await get_queue(session, name)
        if found is None:
            raise refuse(command, 404, f"queue {name!r} unknown")
        why = queue_refusal(pause, found["state"])
        if why:
            raise refuse(command, 409, f"queue {name!r}: {why}")
        event = await issue(command, queue=name, issued_by=_caller(request), reason=body.reason,
                            peer_address=_peer(request))
        metrics.JOB_COMMANDS.labels(Cmd.Command.Name(command), "202").inc()
        return _accepted(command, event, name)

    @router.post("/queues/{name}/pause", status_code=202, dependencies=admin)
    async def pause(name: str, request: Request, body: CommandBody | None = None):
        return await queue_command(name, True, body, request)

    @router.post("/queues/{name}/resume", status_code=202, dependencies=admin)
    async def resume(name: str, request: Request, body: CommandBody | None = None):
        return await queue_command(name, False, body, request)

    @router.get("/jobs")
    async def jobs(queue: str = "", state: str = "", kind: str = "",
                   study_instance_uid: str = "",
                   limit: int = Query(100, ge=1, le=1000),
                   offset: int = Query(0, ge=0)) -> dict:
        kind = kind.strip().upper()
        if kind and kind not in KINDS:
            raise HTTPException(422, f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
        f = JobFilter(queue=queue, states=_states(state), kind=kind,
                      study_instance_uid=study_instance_uid)
        async with sessions() as session:
            return await list_jobs(session, f, limit, offset)

    @router.get("/jobs/{job_id}")
    async def job(job_id: str) -> dict:
        async with sessions() as session:
            row = await session.get(JobRow, job_id)
        if row is None:
            raise HTTPException(404, f"job {job_id!r} unknown")
        return job_json(row)

    @router.post("/jobs/{job_id}/{action}", status_code=202, dependencies=admin)
    async def job_command(job_id: str, action: str, request: Request,
                          body: CommandBody | None = None):
        spec = JOB_COMMANDS.get(action)
        if spec is None:
            raise HTTPException(404, f"no job command {action!r}; one of "
                                     f"{', '.join(sorted(JOB_COMMANDS))}")
        body = body or CommandBody()
        if spec.command == Cmd.RESCHEDULE_JOB and body.not_before is None:
            raise refuse(spec.command, 422, "reschedule needs not_before (ISO 8601 with a zone)")
        if spec.command != Cmd.RESCHEDULE_JOB and body.not_before is not None:
            raise refuse(spec.command, 422, "not_before applies to reschedule only")
        if body.include_refused and spec.command not in (Cmd.RETRY_JOB, Cmd.RESCHEDULE_JOB):
            raise refuse(spec.command, 422, "include_refused applies to retry and reschedule only")
        async with sessions() as session:
            row = await session.get(JobRow, job_id)
        if row is None:
            raise refuse(spec.command, 404, f"job {job_id!r} unknown")
        why = refusal(spec, row.state)
        if why:
            raise refuse(spec.command, 409, f"job {job_id}: {why}")
        event = await issue(spec.command, queue=row.queue, job_id=job_id,
                            study_uid=row.study_instance_uid, issued_by=_caller(request),
                            not_before=body.not_before, reason=body.reason,
                            include_refused=body.include_refused, peer_address=_peer(request))
        metrics.JOB_COMMANDS.labels(Cmd.Command.Name(spec.command), "202").inc()
        return _accepted(spec.command, event, row.queue, job_id)

    return router
