"""Create the topics a service uses, explicitly, at start-up (and again after a broker reset)."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dicomvault.settings import BusSettings

log = logging.getLogger(__name__)


async def ensure_topics(settings: BusSettings, topics: list[str] | None = None) -> list[str]:
    """Create every missing topic; return the ones created. Safe to call concurrently."""
    wanted = topics if topics is not None else settings.topics.all()
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(settings.request_timeout_s * 1000),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created: list[str] = []
        for name in missing:  # one by one: a concurrent creator makes only that one fail
            try:
                await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication_factor)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("topics created", extra={"topics": created})
        return created
    finally:
        await admin.close()
