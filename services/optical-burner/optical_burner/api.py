"""HTTP: the volumes REST API, media requests, /metrics, /healthz, /readyz.

- ``GET /api/v1/volumes``                  every volume: state, fill level, studies, copies
- ``GET /api/v1/volumes/{label}``          one volume
- ``POST /api/v1/volumes/{label}/close``   close the open volume now (builds its image)
- ``POST /api/v1/volumes/{label}/burn``    burn the missing copies, or ``{"copy": n}`` again
- ``POST /api/v1/volumes/{label}/release`` drop a Verified volume's files (it goes offline)
- ``DELETE /api/v1/volumes/{label}``       409 with the reason while it holds an only copy
- ``GET /api/v1/media-requests``           volumes a retrieve waits for ("insert volume …"),
  with the RETRIEVE jobs waiting for each
- ``GET /api/v1/queues``                   the STORE and RETRIEVE queues: state, depth, counts,
  looks (how many times the scheduler has looked at its jobs)
- ``GET /api/v1/jobs``                     the queues' unfinished jobs (``?state=WAITING``)
- ``POST /api/v1/studies/{uid}/retrieve``  submit a RETRIEVE job (202 with the job), 404 when
  no volume holds the study

The catalogue's ``/api/v1/jobs`` and ``/api/v1/queues`` list the same jobs (it projects
their events) and take the administrators' commands (pause, resume, retry, cancel, …).

Every route under ``/api/v1`` needs a bearer token: the GETs the read scope, the POSTs and
the DELETE the admin scope (``TokenVerifier.guard_api``, on the app, so routes added later
inherit it). /metrics, /healthz and /readyz stay open.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, Response

from dicomvault.auth import AuthSettings, TokenVerifier
from dicomvault.health import health_router
from dicomvault.jobs import TERMINAL
from dicomvault.store import CacheStore
from optical_burner.archive import OpticalArchive
from optical_burner.burning import burn_volume
from optical_burner.catalogue import CatalogueError
from optical_burner.errors import Conflict, DeleteRefused
from optical_burner.metrics import REGISTRY
from optical_burner.queues import Queues
from optical_burner.volumes import is_complete

TERMINAL_NAMES = {s.value for s in TERMINAL}


def _error(status: int, reason: str, **extra) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def _job(job) -> dict:
    return {"job_id": job.id, "queue": job.queue, "kind": job.kind,
            "study_instance_uid": job.study_uid, "state": job.state.value,
            "attempt": job.attempt, "error": job.error, "waiting_reason": job.waiting_reason,
            "not_before": job.not_before.isoformat() if job.not_before else None,
            "created_by": job.created_by}


def build_app(arc: OpticalArchive, ready: Callable[[], str | None],
              cache: CacheStore | None = None, verifier: TokenVerifier | None = None,
              queues: Queues | None = None) -> FastAPI:
    """``cache``: the cache tier (RETRIEVE jobs write to it; without it none is submitted);
    without a ``verifier`` nothing needs a token (tests that build the app directly);
    ``queues``: the archive's STORE and RETRIEVE queues (without them none is listed)."""
    app = FastAPI(title="DICOM Vault optical-burner", docs_url=None, redoc_url=None)
    (verifier or TokenVerifier(AuthSettings(enabled=False))).guard_api(app)

    app.include_router(health_router(REGISTRY, ready))

    @app.get("/api/v1/volumes")
    async def volumes() -> list[dict]:
        return [v.summary() for v in arc.store.all()]

    @app.get("/api/v1/volumes/{label}")
    async def volume(label: str):
        vol = arc.store.get(label)
        return vol.summary() if vol else _error(404, f"no volume {label}")

    @app.post("/api/v1/volumes/{label}/close")
    async def close(label: str):
        try:
            return (await arc.close_volume(label, "manual")).summary()
        except KeyError:
            return _error(404, f"no volume {label}")
        except Conflict as exc:
            return _error(409, str(exc))

    @app.post("/api/v1/volumes/{label}/burn")
    async def burn(label: str, body: dict | None = Body(None)):
        copy = (body or {}).get("copy")
        try:
            return (await burn_volume(arc, label, int(copy) if copy is not None else None)
                    ).summary()
        except KeyError:
            return _error(404, f"no volume {label}")
        except Conflict as exc:
            return _error(409, str(exc))

    @app.post("/api/v1/volumes/{label}/release")
    async def release(label: str):
        try:
            return (await arc.release_volume(label)).summary()
        except KeyError:
            return _error(404, f"no volume {label}")
        except Conflict as exc:
            return _error(409, str(exc))

    @app.delete("/api/v1/volumes/{label}")
    async def delete(label: str):
        try:
            await arc.delete_volume(label, requested_by="rest")
        except KeyError:
            return _error(404, f"no volume {label}")
        except DeleteRefused as exc:
            return _error(409, str(exc), studies=exc.studies)
        except CatalogueError as exc:
            return _error(503, f"cannot check the other copies: {exc}")
        return Response(status_code=204)

    @app.get("/api/v1/media-requests")
    async def media_requests() -> list[dict]:
        return list(arc.media_requests.values())

    @app.get("/api/v1/queues")
    async def list_queues() -> list[dict]:
        return [{"name": q.name, "kind": q.kind, "state": q.state.value, "reason": q.reason,
                 "depth": q.depth(), "counts": q.counts(), "looks": q.looks}
                for q in queues or ()]

    @app.get("/api/v1/jobs")
    async def jobs(state: str = "") -> list[dict]:
        wanted = {s.strip().upper() for s in state.split(",") if s.strip()}
        return [_job(j) for q in queues or () for j in q.jobs.values()
                if (j.state.value in wanted if wanted else j.state.value not in TERMINAL_NAMES)]

    @app.post("/api/v1/studies/{study_uid}/retrieve")
    async def retrieve(study_uid: str):
        if queues is None or cache is None:
            return _error(503, "the RETRIEVE queue is not running")
        parts = arc.store.parts_of(study_uid)
        if not is_complete(parts):
            return _error(404, f"no volume of {arc.id} holds study {study_uid}")
        job = await queues.retrieve.submit(study_uid, target=arc.id,
                                               dedupe_key=f"api:{uuid.uuid4()}",
                                               params={"requested_by": "rest", "tier": "optical"},
                                               created_by="api")
        return JSONResponse(_job(job), status_code=202)

    return app
