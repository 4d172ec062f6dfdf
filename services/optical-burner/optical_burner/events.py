"""Publishing the optical facts (their type names are registered in ``dicomvault.events``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from dicomvault.events import Event

log = logging.getLogger(__name__)

SOURCE = "dicomvault/optical-burner"

# (topic, payload, key, event id) -> awaitable that returns once the broker has it.
Emit = Callable[[str, Message, str, str], Awaitable[None]]


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
