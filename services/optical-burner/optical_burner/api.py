"""HTTP: the volumes REST API, media requests, /metrics, /healthz, /readyz.

- ``GET /api/v1/volumes``                  every volume: state, fill level, studies, copies
- ``GET /api/v1/volumes/{label}``          one volume
- ``POST /api/v1/volumes/{label}/close``   close the open volume now (builds its image)
- ``POST /api/v1/volumes/{label}/burn``    burn the missing copies, or ``{"copy": n}`` again
- ``POST /api/v1/volumes/{label}/release`` drop a Verified volume's files (it goes offline)
- ``DELETE /api/v1/volumes/{label}``       409 with the reason while it holds an only copy
- ``GET /api/v1/media-requests``           volumes a retrieve waits for ("insert volume …")
- ``POST /api/v1/studies/{uid}/retrieve``  read a study back into the cache (until the jobs
  engine runs RETRIEVE jobs): 200 done, 409 offline with the media request, 404 unknown
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse, Response

from dicomvault.health import health_router
from dicomvault.store import FileStore
from optical_burner.archive import Conflict, DeleteRefused, OpticalArchive
from optical_burner.burning import burn_volume
from optical_burner.catalogue import CatalogueError
from optical_burner.metrics import REGISTRY
from optical_burner.retrieve import retrieve_study


def _error(status: int, reason: str, **extra) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def build_app(arc: OpticalArchive, ready: Callable[[], str | None],
              cache: FileStore | None = None) -> FastAPI:
    app = FastAPI(title="DICOM Vault optical-burner", docs_url=None, redoc_url=None)

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

    @app.post("/api/v1/studies/{study_uid}/retrieve")
    async def retrieve(study_uid: str):
        if cache is None:
            return _error(503, "no cache tier configured")
        result = await retrieve_study(arc, study_uid, cache)
        status = {"done": 200, "offline": 409, "not_found": 404}.get(result.status, 500)
        return JSONResponse(result.__dict__, status_code=status)

    return app
