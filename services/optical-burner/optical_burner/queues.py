"""The optical archive's two queues on the jobs engine: STORE ``<archive id>`` and RETRIEVE
``<archive id>-retrieve``. The service builds them; the policies, the API and the sweeps are
handed them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dicomvault.jobs import JobQueue


@dataclass
class Queues:
    """The optical archive's two queues."""

    store: JobQueue
    retrieve: JobQueue

    def __iter__(self) -> Iterator[JobQueue]:
        return iter((self.store, self.retrieve))
