"""Event policies: StudyStable → a STORE job by the optical archive rules; RecallRequested → a
RETRIEVE job when this archive holds the study and no better tier does; JobCommandIssued →
the addressed optical queue. Idempotent on the event id: a job's id derives from its queue
and the triggering event's id (``JobQueue.submit``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from dicomvault.bus import RecentIds, TransientError
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.rules import matching_rule
from optical_burner import metrics
from optical_burner.announcing import TIER
from optical_burner.archive import OpticalArchive
from optical_burner.catalogue import CatalogueError
from optical_burner.queues import Queues
from optical_burner.volumes import is_complete

log = logging.getLogger(__name__)



@dataclass
class Policies:
    archive: OpticalArchive
    queues: Queues
    tier_order: list[str]
    _seen: RecentIds = field(default_factory=RecentIds)

    async def studies(self, event: Event) -> None:
        """Policy of the studies topic."""
        if isinstance(event.payload, ev.StudyStable):
            outcome = await self.on_study_stable(event, event.payload)
        elif isinstance(event.payload, ev.RecallRequested):
            outcome = await self.on_recall_requested(event, event.payload)
        else:
            return
        metrics.EVENTS.labels(event.type, outcome).inc()

    async def on_study_stable(self, event: Event, msg: ev.StudyStable) -> str:
        rule = matching_rule(self.archive.cfg.rules, msg)
        if rule is None:
            return "no_rule"
        not_before = event.time + timedelta(seconds=rule.delay_s) if rule.delay_s else None
        await self.queues.store.submit(
            msg.study_instance_uid, target=self.archive.id, dedupe_key=event.id,
            params={"revision": str(msg.revision), "rule": rule.name},
            not_before=not_before, created_by=f"rule:{rule.name}")
        return "queued"

    def better_copy(self, locations: list[dict]) -> dict | None:
        """A verified copy on a tier ranked ahead of optical (or on another optical archive
        whose id sorts first: exactly one optical archive recalls a study)."""
        rank = {t: i for i, t in enumerate(self.tier_order)}
        mine = rank.get(TIER, len(rank))
        for loc in locations:
            tier = loc.get("tier")
            if not loc.get("verified") or tier in (None, "", "cache"):
                continue
            if tier == TIER:
                if str(loc.get("archive_id", "")) < self.archive.id:
                    return loc
            elif rank.get(tier, len(rank)) < mine:
                return loc
        return None

    async def on_recall_requested(self, event: Event, msg: ev.RecallRequested) -> str:
        arc = self.archive
        study = msg.study_instance_uid
        parts = arc.store.parts_of(study)
        if not is_complete(parts):
            return "not_held"  # no (complete) copy on our volumes
        try:
            locations = await arc.locations(study)
        except CatalogueError as exc:
            raise TransientError(str(exc)) from exc
        better = self.better_copy(locations)
        if better is not None:
            log.info("recall left to a better tier", extra={
                "study": study, "tier": better.get("tier"), "archive": better.get("archive_id")})
            return "better_tier"
        await self.queues.retrieve.submit(
            study, target=arc.id, dedupe_key=event.id, sop_uids=list(msg.sop_instance_uids),
            params={"requested_by": msg.requested_by, "tier": TIER},
            created_by=f"recall:{msg.requested_by or 'unknown'}")
        log.info("recall job submitted", extra={"study": study, "archive": arc.id})
        return "recall_queued"

    async def commands(self, event: Event) -> None:
        """Policy of the job-commands topic: apply commands addressed to our queues."""
        if not isinstance(event.payload, jb.JobCommandIssued) or not self._seen.first_time(
                event.id):
            return
        for queue in self.queues:
            if await queue.apply_command(event.payload):
                metrics.EVENTS.labels(event.type, "applied").inc()
                return
