"""REST API of the optical volumes projection (reads only; the app-wide read guard applies).

- ``GET /api/v1/volumes[?archive_id=&state=Closed,Verified]``  every projected volume
- ``GET /api/v1/volumes/{archive_id}/{label}``                 one volume (404 unknown)
- ``GET /api/v1/media-requests[?archive_id=]``                 volumes a recall waits for

The optical-burner's own API (port 8083) is the live view, Open volumes included; this is the
archive-wide record, rebuilt from the journal like every projection.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from catalogue.jobs_view import iso
from catalogue.models import OpticalVolume

STATES = ("Closed", "Burned", "Verified", "Deleted")


def volume_json(v: OpticalVolume) -> dict:
    return {
        "archive_id": v.archive_id, "label": v.label, "media_type": v.media_type,
        "state": v.state, "capacity_bytes": v.capacity_bytes, "used_bytes": v.used_bytes,
        "image_bytes": v.image_bytes, "image_sha256": v.image_sha256,
        "number_of_studies": v.number_of_studies, "number_of_instances": v.number_of_instances,
        "study_instance_uids": list(v.study_instance_uids or []),
        "close_reason": v.close_reason,
        "copies": {n: dict(c) for n, c in sorted((v.copies or {}).items(),
                                                 key=lambda kv: int(kv[0]))},
        "copies_verified": v.copies_verified, "burn_failures": v.burn_failures,
        "last_error": v.last_error,
        "media_request": ({"message": v.media_request, "mount_path": v.media_mount_path,
                           "studies": list(v.media_request_studies or []),
                           "requested_at": iso(v.media_requested_at)}
                          if v.media_requested else None),
        "closed_at": iso(v.closed_at), "verified_at": iso(v.verified_at),
        "deleted_at": iso(v.deleted_at), "deleted_by": v.deleted_by,
        "updated_at": iso(v.updated_at),
    }


def volumes_router(sessions: async_sessionmaker) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/volumes")
    async def volumes(archive_id: str = "", state: str = Query(
            "", description="Comma-separated states: Closed, Burned, Verified, Deleted.")
                      ) -> dict:
        wanted = [s.strip().capitalize() for s in state.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in STATES]
        if unknown:
            raise HTTPException(422, f"unknown volume state {unknown[0]!r}; one of "
                                     f"{', '.join(STATES)}")
        stmt = select(OpticalVolume).order_by(OpticalVolume.archive_id, OpticalVolume.label)
        if archive_id:
            stmt = stmt.where(OpticalVolume.archive_id == archive_id)
        if wanted:
            stmt = stmt.where(OpticalVolume.state.in_(wanted))
        async with sessions() as session:
            rows = (await session.scalars(stmt)).all()
        return {"volumes": [volume_json(v) for v in rows]}

    @router.get("/volumes/{archive_id}/{label}")
    async def volume(archive_id: str, label: str) -> dict:
        async with sessions() as session:
            row = await session.get(OpticalVolume, (archive_id, label))
        if row is None:
            raise HTTPException(404, f"no volume {label} of archive {archive_id}")
        return volume_json(row)

    @router.get("/media-requests")
    async def media_requests(archive_id: str = "") -> dict:
        stmt = select(OpticalVolume).where(OpticalVolume.media_requested.is_(True)).order_by(
            OpticalVolume.media_requested_at, OpticalVolume.label)
        if archive_id:
            stmt = stmt.where(OpticalVolume.archive_id == archive_id)
        async with sessions() as session:
            rows = (await session.scalars(stmt)).all()
        return {"media_requests": [
            {"archive_id": v.archive_id, "label": v.label, "message": v.media_request,
             "mount_path": v.media_mount_path, "studies": list(v.media_request_studies or []),
             "requested_at": iso(v.media_requested_at)} for v in rows]}

    return router
