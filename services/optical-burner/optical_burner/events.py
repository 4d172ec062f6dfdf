"""The optical facts' type names (registered on import of the package) and publishing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from dicomvault.events import TYPES, Event, register
from dicomvault.events.v1 import optical_pb2 as op

log = logging.getLogger(__name__)

SOURCE = "dicomvault/optical-burner"

OPTICAL_TYPES: dict[str, type[Message]] = {
    "dicomvault.volume.closed.v1": op.VolumeClosed,
    "dicomvault.volume.burned.v1": op.VolumeBurned,
    "dicomvault.volume.burn-failed.v1": op.VolumeBurnFailed,
    "dicomvault.volume.verified.v1": op.VolumeVerified,
    "dicomvault.volume.deleted.v1": op.VolumeDeleted,
    "dicomvault.media.requested.v1": op.MediaRequested,
}

# (topic, payload, key, event id) -> awaitable that returns once the broker has it.
Emit = Callable[[str, Message, str, str], Awaitable[None]]


def register_types() -> None:
    for name, cls in OPTICAL_TYPES.items():
        if name not in TYPES:
            register(name, cls)


def publisher_emit(publisher, retries: int = 8) -> Emit:
    """An ``Emit`` over a ``dicomvault.bus.Publisher``, retried while the broker restarts."""

    async def emit(topic: str, payload: Message, key: str, event_id: str) -> None:
        subject = getattr(payload, "study_instance_uid", "") or ""
        event = Event(payload=payload, source=SOURCE, subject=subject, id=event_id)
        delay = 0.2
        for attempt in range(retries):
            try:
                await publisher.publish(topic, event, key=key)
                return
            except Exception:  # PublishError: the broker may be restarting
                if attempt == retries - 1:
                    raise
                log.warning("publish failed, retrying", extra={"topic": topic})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    return emit
