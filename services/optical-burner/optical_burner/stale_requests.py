"""Media requests the catalogue still shows but no RETRIEVE job waits for.

The burner withdraws a media request when the RETRIEVE job that raised it ends without the
disc (``retrieve.withdraw_media_requests``), but it knows its requests only in memory. A job
cancelled while the burner was down (the command waits on the job-commands topic and is
applied after the restart, before the adopted job asked for its disc again) leaves nothing to
withdraw in memory, while the catalogue's projection (``GET /api/v1/media-requests``) still
says "insert volume DVD-000042" for that study: an operator would fetch a disc for nobody.

``StaleRequests.sweep`` compares the catalogue's requests of this archive with the RETRIEVE
queue, once the queue's unfinished jobs were adopted (before that every request would look
unneeded). A study that no active (non-terminal) job of the queue is for, and that the burner
does not itself hold a request for, is withdrawn (MediaRequestWithdrawn, reason "no RETRIEVE
job waits for it") once it has stayed so for ``grace_s``: the catalogue applies the burner's
own withdrawals a moment after they are published, and a request it is about to clear must
not be withdrawn twice. Each is published once (its id derives from the volume, the study and
when this burner first saw it unneeded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from dicomvault.events import deterministic_id
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.jobs import TERMINAL, JobQueue
from optical_burner.archive import OpticalArchive
from optical_burner.catalogue import CatalogueClient, CatalogueError
from optical_burner.volumes import now

log = logging.getLogger(__name__)

REASON = "no RETRIEVE job waits for it"


class StaleRequests:
    def __init__(self, arc: OpticalArchive, queue: JobQueue, catalogue: CatalogueClient,
                 adopted: Callable[[], bool], grace_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.arc, self.queue, self.catalogue, self.adopted = arc, queue, catalogue, adopted
        self.grace_s, self.clock = grace_s, clock
        # (label, study) -> (monotonic, wall-clock ISO) when first seen with nobody waiting
        self.noticed: dict[tuple[str, str], tuple[float, str]] = {}
        self.published: set[tuple[str, str]] = set()

    def _needed(self, label: str, study: str) -> bool:
        if study in (self.arc.media_requests.get(label) or {}).get("studies", []):
            return True
        return any(j.study_uid == study and j.state not in TERMINAL
                   for j in self.queue.jobs.values())

    async def sweep(self) -> list[tuple[str, str]]:
        """Withdraw the catalogue's requests nobody has waited for during ``grace_s``; the
        (label, study) pairs withdrawn by this pass."""
        if not self.adopted():
            return []
        try:
            projected = await self.catalogue.media_requests(self.arc.id)
        except CatalogueError as exc:
            log.warning("media requests not reconciled: catalogue unavailable",
                        extra={"error": str(exc)})
            return []
        listed = {(r["label"], s) for r in projected if r.get("archive_id") == self.arc.id
                  for s in r.get("studies") or []}
        self.noticed = {k: v for k, v in self.noticed.items() if k in listed}
        self.published &= listed
        withdrawn = []
        for label, study in sorted(listed):
            key = (label, study)
            # Looked at right before publishing: a job submitted meanwhile keeps its request.
            if self._needed(label, study):
                self.noticed.pop(key, None)
                self.published.discard(key)
                continue
            if key in self.published:
                continue  # published already; the projection has not caught up yet
            first, since = self.noticed.setdefault(key, (self.clock(), now().isoformat()))
            if self.clock() - first < self.grace_s:
                continue
            await self.arc.emit(self.arc.topics.volumes, op.MediaRequestWithdrawn(
                archive_id=self.arc.id, label=label, study_instance_uid=study, reason=REASON),
                label, deterministic_id("optical-media-stale", self.arc.id, label, study, since))
            self.published.add(key)
            withdrawn.append(key)
        if withdrawn:
            log.info("stale media requests withdrawn",
                     extra={"archive": self.arc.id, "reason": REASON,
                            "withdrawn": [f"{label}:{study}" for label, study in withdrawn]})
        return withdrawn
