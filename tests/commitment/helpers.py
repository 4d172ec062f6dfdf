"""Small helpers: put generated instances in the cache tier and announce them on the bus."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydicom import dcmread

from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from dicomvault.store import FileStore, instance_key
from tests.peers.wait import wait_until


def pair(path: Path) -> tuple[str, str]:
    ds = dcmread(path, stop_before_pixels=True)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID)


def put_in_cache(root: Path, path: Path) -> ev.InstanceStored:
    """Write a Part 10 file into the cache tier as the gateway would; the fact to announce."""
    ds = dcmread(path, stop_before_pixels=True)
    key = instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    obj = FileStore(root, fsync=False).put(key, path.read_bytes())
    return ev.InstanceStored(
        sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID), series_instance_uid=str(ds.SeriesInstanceUID),
        patient_id=str(ds.PatientID), patient_name=str(ds.PatientName), modality=str(ds.Modality),
        study_date=str(ds.StudyDate), transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        size_bytes=obj.size, sha256=obj.sha256, storage_key=key, calling_ae="TEST",
        tier="cache", called_ae="DICOMVAULT", source="dimse")


async def announce(bus: BusSettings, facts: list) -> None:
    """Publish facts the way the gateway / archivers do (instances topic or studies topic)."""
    async with Publisher(bus, "test") as pub:
        for fact in facts:
            topic = bus.topics.instances if isinstance(fact, ev.InstanceStored) else bus.topics.studies
            await pub.publish(topic, Event(payload=fact, source="dicomvault/test",
                                           subject=fact.study_instance_uid),
                              key=fact.study_instance_uid)


# --- Orthanc (tests/peers/orthanc.py) storage-commitment REST calls ------------------------
def upload(orthanc, path: Path) -> str:
    r = orthanc.rest.post("/instances", content=path.read_bytes())
    r.raise_for_status()
    return r.json()["ID"]


def has_instance(orthanc, sop_uid: str) -> bool:
    r = orthanc.rest.post("/tools/lookup", content=sop_uid)
    r.raise_for_status()
    return any(hit.get("Type") == "Instance" for hit in r.json())


def request_commitment(orthanc, modality: str, pairs: list[tuple[str, str]]) -> str:
    """Orthanc as SCU: ask `modality` to commit (POST /modalities/{id}/storage-commitment);
    returns the Transaction UID."""
    r = orthanc.rest.post(f"/modalities/{modality}/storage-commitment", json={
        "DicomInstances": [{"SOPClassUID": c, "SOPInstanceUID": i} for c, i in pairs],
        "Timeout": 30})
    r.raise_for_status()
    return r.json()["ID"]


def commitment_report(orthanc, transaction_uid: str, timeout_s: float = 60.0) -> dict:
    """GET /storage-commitment/{uid} until the report is in (Status Success or Failure)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = orthanc.rest.get(f"/storage-commitment/{transaction_uid}")
        if r.status_code == 200 and r.json().get("Status") != "Pending":
            return r.json()
        time.sleep(0.2)
    raise TimeoutError(f"no storage commitment report for {transaction_uid}:\n{orthanc.tail()}")


def permitted(host: str, port: int) -> dict:
    return {"host": host, "port": port, "permissions": {"may_request_commitment": True}}


async def catalogued(catalogue: str, study_uid: str, n: int) -> None:
    async def known() -> bool:
        async with httpx.AsyncClient() as c:
            r = await c.get(f"{catalogue}/api/v1/studies/{study_uid}/instances")
        return r.status_code == 200 and len(r.json()) >= n
    await wait_until(known, timeout=60, what=f"catalogue knows {n} instance(s) of {study_uid}")
