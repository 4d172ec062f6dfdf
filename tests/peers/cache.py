"""Inputs of the archivers' tests, as the rest of the archive would produce them: facts
published on the test's topics, and a generated study put into the cache tier the way the
gateway does (file first, then InstanceStored), waited for until the catalogue lists it."""

from __future__ import annotations

from pathlib import Path

import pydicom

from dicomvault.bus import Publisher
from dicomvault.dicom import instance_stored
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from dicomvault.store import FileStore, instance_key
from tests.peers.catalogue import CatalogueService
from tests.peers.datasets import Study, write_study
from tests.peers.wait import wait_until


async def publish(bus: BusSettings, payload, subject: str, event_id: str | None = None) -> Event:
    topic = bus.topics.instances if isinstance(payload, ev.InstanceStored) else (
        bus.topics.job_commands if type(payload).__name__ == "JobCommandIssued"
        else bus.topics.studies)
    e = Event(payload=payload, source="dicomvault/test", subject=subject,
              **({"id": event_id} if event_id else {}))
    async with Publisher(bus, "test") as pub:
        await pub.publish(topic, e, key=subject or None)
    return e


async def cache_study(bus: BusSettings, cache_root: Path, folder: Path,
                      catalogue: CatalogueService, **kw) -> tuple[Study, dict[str, bytes]]:
    """Put a generated study into the cache as the gateway would (file + InstanceStored)."""
    study = write_study(folder, **kw)
    store = FileStore(cache_root, fsync=False)
    data: dict[str, bytes] = {}
    async with Publisher(bus, "test-gateway") as pub:
        for path in study.files:
            raw = path.read_bytes()
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            store.put(key, raw)
            data[key] = raw
            msg = instance_stored(raw, key, source="dimse")
            msg.calling_ae = "MODALITY1"
            await pub.publish(bus.topics.instances,
                              Event(payload=msg, source="dicomvault/gateway",
                                    subject=study.study_uid), key=study.study_uid)
    await wait_until(lambda: len(catalogue.cached(study.study_uid)) == len(data),
                     what="the catalogue to list the cached instances")
    return study, data
