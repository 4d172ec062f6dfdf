"""The event bus: aiokafka producer, consumer loop, topic admin and the embedded broker."""

from dicomvault.bus.consumer import (
    BatchHandler,
    ConsumerLoop,
    Handler,
    PermanentError,
    TransientError,
)
from dicomvault.bus.publisher import Publisher, PublishError, publish_retrying
from dicomvault.bus.recent import RecentIds
from dicomvault.bus.topics import ensure_topics

__all__ = [
    "BatchHandler",
    "ConsumerLoop",
    "Handler",
    "PermanentError",
    "Publisher",
    "PublishError",
    "RecentIds",
    "TransientError",
    "ensure_topics",
    "publish_retrying",
]
