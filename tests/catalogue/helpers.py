"""Builders of catalogue test events and a small in-process catalogue (DB + policy + API)."""

from __future__ import annotations

import hashlib
import itertools
import random
from datetime import UTC, datetime, timedelta

from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as v1

ROOT = "1.2.826.0.1.3680043.8.498"
_counter = itertools.count(1)
CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
ELE = "1.2.840.10008.1.2.1"


def uid() -> str:
    """A fresh, valid UID (unique across the test session)."""
    return f"{ROOT}.{random.randint(1, 10**9)}.{next(_counter)}"


def instance_stored(study: str, series: str, sop: str | None = None, *,
                    received: datetime | None = None, body: bytes | None = None,
                    **fields) -> Event:
    """An InstanceStored event as the gateway publishes it (fields override the defaults)."""
    sop = sop or uid()
    body = body if body is not None else sop.encode()
    received = received or datetime.now(UTC)
    values = {
        "sop_class_uid": CT, "patient_id": "PAT-1", "patient_name": "Doe^John",
        "study_date": "20240115", "study_time": "101500", "modality": "CT",
        "transfer_syntax_uid": ELE, "calling_ae": "MODALITY1", "called_ae": "DICOMVAULT",
        "tier": "cache", "source": "dimse", "series_number": "1", "instance_number": "1",
        "accession_number": "ACC1", "study_description": "Head", "station_name": "CT01",
        **fields,
    }
    msg = v1.InstanceStored(
        sop_instance_uid=sop, study_instance_uid=study, series_instance_uid=series,
        size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest(),
        storage_key=f"{study}/{series}/{sop}.dcm", **values)
    msg.received_time.FromDatetime(received)
    return Event(payload=msg, source="dicomvault/gateway", subject=study, time=received)


def study_archived(study: str, tier: str = "hsm", archive_id: str = "hsm1",
                   verified: bool = True, n: int = 1) -> Event:
    msg = v1.StudyArchived(study_instance_uid=study, tier=tier, archive_id=archive_id,
                           location=f"/mnt/hsm/{study}", number_of_instances=n, size_bytes=100,
                           verified=verified, job_id="job-1")
    return Event(payload=msg, source="dicomvault/hsm-archiver", subject=study)


def study_evicted(study: str, tier: str, archive_id: str = "") -> Event:
    msg = v1.StudyEvicted(study_instance_uid=study, tier=tier, archive_id=archive_id,
                          reason="test")
    return Event(payload=msg, source="dicomvault/hsm-archiver", subject=study)


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
