"""Publishing the optical facts (their type names are registered in ``dicomvault.events``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from dicomvault.bus import Publisher, publish_retrying
from dicomvault.events import Event

SOURCE = "dicomvault/optical-burner"

# (topic, payload, key, event id) -> awaitable that returns once the broker has it.
Emit = Callable[[str, Message, str, str], Awaitable[None]]


def publisher_emit(publisher: Publisher, retries: int = 8) -> Emit:
    """An ``Emit`` over a ``dicomvault.bus.Publisher``, retried while the broker restarts."""

    async def emit(topic: str, payload: Message, key: str, event_id: str) -> None:
        subject = getattr(payload, "study_instance_uid", "") or ""
        event = Event(payload=payload, source=SOURCE, subject=subject, id=event_id)
        await publish_retrying(publisher, topic, event, key=key, attempts=retries)

    return emit
