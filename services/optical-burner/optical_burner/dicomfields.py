"""InstanceStored built from a Part 10 file's header (for instances recalled into the cache).

The keyword -> field table is shared with the gateway and the hsm-archiver
(``dicomvault.dicom``); reading the header is local (services never import each other): a
file we archived ourselves is read whole and errors surface.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from io import BytesIO

import pydicom
from google.protobuf.timestamp_pb2 import Timestamp

from dicomvault.dicom import INSTANCE_STORED_TEXT
from dicomvault.events.v1 import events_pb2 as ev


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def instance_stored(data: bytes, storage_key: str, *, source: str = "recall",
                    tier: str = "cache") -> ev.InstanceStored:
    """Every InstanceStored field that the file's header carries, plus size/sha256/key."""
    ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    msg = ev.InstanceStored(
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        storage_key=storage_key, tier=tier, source=source,
    )
    for keyword, field in INSTANCE_STORED_TEXT.items():
        setattr(msg, field, _text(ds.get(keyword)))
    frames = ds.get("NumberOfFrames")
    msg.number_of_frames = int(frames) if frames not in (None, "") else 0
    ts = Timestamp()
    ts.FromDatetime(datetime.now(UTC))
    msg.received_time.CopyFrom(ts)
    return msg
