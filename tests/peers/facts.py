"""Small facts for tests that drive the bus directly: events as the rest of the archive
would publish them, with just the fields a test looks at."""

from __future__ import annotations

from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev


def stored(uid: str, study_uid: str = "1.2") -> Event:
    """An InstanceStored for SOP Instance UID ``uid`` in study ``study_uid``."""
    return Event(ev.InstanceStored(sop_instance_uid=uid, study_instance_uid=study_uid),
                 source="test", subject=study_uid)
