"""A FastAPI app serving the catalogue's *documented response shapes* for these unit tests.

It is NOT the catalogue: two in-memory dicts behind ``GET /api/v1/studies/{uid}`` (the
study summary with ``study_locations``) and ``GET /api/v1/studies/{uid}/instances`` (a list
of ``dicomvault.query.InstanceLocation``), reached through httpx's ASGITransport so the
service's real HTTP client is exercised. The e2e suite runs against the real catalogue.
"""

from __future__ import annotations

import hashlib

import httpx
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydicom import dcmread

from dicomvault.store import FileStore, instance_key
from tests.peers.datasets import Study


class CatalogueShapeApp:
    def __init__(self) -> None:
        self.instances: dict[str, list[dict]] = {}
        self.locations: dict[str, list[dict]] = {}
        self.patients: dict[str, str] = {}
        self.app = FastAPI()

        @self.app.get("/api/v1/studies/{uid}")
        async def study(uid: str):
            if uid not in self.instances and uid not in self.locations:
                return JSONResponse({"detail": "unknown study"}, status_code=404)
            return {"study_instance_uid": uid, "patient_id": self.patients.get(uid, ""),
                    "number_of_instances": len(self.instances.get(uid, [])),
                    "study_locations": self.locations.get(uid, [])}

        @self.app.get("/api/v1/studies/{uid}/instances")
        async def instances(uid: str):
            if uid not in self.instances:
                return JSONResponse({"detail": "unknown study"}, status_code=404)
            return self.instances[uid]

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)

    def ingest(self, study: Study, cache: FileStore) -> int:
        """Put a generated study into the cache tier and catalogue it; return its bytes."""
        total = 0
        for path in study.files:
            data = path.read_bytes()
            ds = dcmread(path, stop_before_pixels=True)
            key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            cache.put(key, data)
            total += len(data)
            self.patients[study.study_uid] = study.patient_id
            self.instances.setdefault(study.study_uid, []).append({
                "study_instance_uid": ds.StudyInstanceUID,
                "series_instance_uid": ds.SeriesInstanceUID,
                "sop_instance_uid": ds.SOPInstanceUID, "sop_class_uid": ds.SOPClassUID,
                "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID, "tier": "cache",
                "storage_key": key, "size_bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
        return total

    def record(self, archived) -> None:
        """Project a StudyArchived / StudyEvicted payload as the catalogue would."""
        uid = archived.study_instance_uid
        locs = self.locations.setdefault(uid, [])
        locs[:] = [x for x in locs if (x["tier"], x["archive_id"]) !=
                   (archived.tier, archived.archive_id)]
        if type(archived).__name__ == "StudyArchived":
            locs.append({"tier": archived.tier, "archive_id": archived.archive_id,
                         "location": archived.location, "verified": archived.verified})
