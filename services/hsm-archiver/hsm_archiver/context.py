"""What every archive needs: settings, the publisher, the cache store and the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

from dicomvault.bus import Publisher, publish_retrying
from dicomvault.events import Event
from dicomvault.jobs import Job, Outcome, ProgressReporter
from dicomvault.query import CatalogueClient, CatalogueError
from dicomvault.settings import TopicNames
from dicomvault.store import CacheStore
from hsm_archiver.settings import ArchiveConfig

# The archives read the catalogue through the shared client: ``instances(study, tier)`` and
# ``study(uid)``; CatalogueError (unreachable, 5xx, 4xx) means "retry later" here.
__all__ = ["Archive", "CacheStore", "CatalogueClient", "CatalogueError", "Context"]

SOURCE = "dicomvault/hsm-archiver"


@dataclass
class Context:
    topics: TopicNames
    publisher: Publisher
    cache: CacheStore
    catalogue: CatalogueClient

    async def publish(self, topic: str, payload: Message, study_uid: str, event_id: str) -> None:
        """Publish a fact keyed by its study, with a deterministic id (re-emission = same fact),
        retried while the broker restarts."""
        event = Event(payload=payload, source=SOURCE, subject=study_uid, id=event_id)
        await publish_retrying(self.publisher, topic, event, key=study_uid)


class Archive(Protocol):
    """An archive target (hsm or pacs) as the queues and the API see it."""

    config: ArchiveConfig
    last_reason: str | None
    free_bytes: int | None

    async def readiness(self) -> str | None: ...
    async def store(self, job: Job, progress: ProgressReporter) -> Outcome: ...
    async def retrieve(self, job: Job, progress: ProgressReporter) -> Outcome: ...
