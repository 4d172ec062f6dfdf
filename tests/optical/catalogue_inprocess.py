"""The real catalogue (its projection, journal and REST API) in this process, for these tests.

No broker: the facts a test records (InstanceStored for the studies it puts in the cache,
the StudyArchived / StudyEvicted the optical archive emitted) go through the catalogue's own
``Policy`` into a SQLite catalogue, before the next request reaches its API (httpx's
ASGITransport), so the service's real HTTP client reads what the real catalogue projected.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydicom import dcmread

import catalogue  # noqa: F401 - registers the contract types
from catalogue.api import build_app
from catalogue.db import make_engine, migrate, sessions
from catalogue.policies import Policy
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore, instance_key
from tests.peers.datasets import Study


class _Feeding(httpx.AsyncBaseTransport):
    """ASGITransport that first applies the facts recorded since the last request."""

    def __init__(self, owner: InProcessCatalogue) -> None:
        self._owner = owner
        self._asgi = httpx.ASGITransport(app=owner.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._owner.flush()
        return await self._asgi.handle_async_request(request)


class InProcessCatalogue:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(f"sqlite+aiosqlite:///{folder / 'catalogue.db'}")
        maker = sessions(self.engine)
        self.policy = Policy(maker)
        self.app = build_app(maker, lambda: True)
        self._pending: list[Event] = []
        self._migrated = False

    def transport(self) -> httpx.AsyncBaseTransport:
        return _Feeding(self)

    async def flush(self) -> None:
        if not self._migrated:
            await migrate(self.engine)
            self._migrated = True
        while self._pending:
            await self.policy(self._pending.pop(0))

    async def close(self) -> None:
        await self.engine.dispose()

    def ingest(self, study: Study, cache: FileStore) -> int:
        """Put a generated study into the cache tier as the gateway does (file, then
        InstanceStored); return its bytes."""
        total = 0
        for path in study.files:
            data = path.read_bytes()
            ds = dcmread(path, stop_before_pixels=True)
            key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            cache.put(key, data)
            total += len(data)
            msg = ev.InstanceStored(
                study_instance_uid=ds.StudyInstanceUID,
                series_instance_uid=ds.SeriesInstanceUID, sop_instance_uid=ds.SOPInstanceUID,
                sop_class_uid=ds.SOPClassUID,
                transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
                patient_id=str(ds.get("PatientID", "")), modality=str(ds.get("Modality", "")),
                tier="cache", storage_key=key, size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(), source="dimse")
            msg.received_time.FromDatetime(datetime.now(UTC))
            self._pending.append(Event(payload=msg, source="dicomvault/gateway",
                                       subject=study.study_uid))
        return total

    def record(self, fact) -> None:
        """A StudyArchived / StudyEvicted fact (the optical archive's, or another tier's), or
        a volume fact (VolumeClosed, MediaRequested…)."""
        self._pending.append(Event(payload=fact, source="dicomvault/optical-burner",
                                   subject=getattr(fact, "study_instance_uid", "")))
