"""Event policies: StudyStable → STORE jobs by rules; RecallRequested → a RETRIEVE job from the
best available tier; JobCommandIssued → the addressed queue. Idempotent on the event id: a
job's id derives from its queue and the triggering event's id."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from dicomvault.bus import RecentIds, TransientError
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import JobQueue
from dicomvault.rules import matching_rule
from hsm_archiver import metrics
from hsm_archiver.context import Archive, CatalogueClient, CatalogueError

log = logging.getLogger(__name__)


@dataclass
class Hosted:
    """One archive with its two queues."""

    archive: Archive
    store: JobQueue
    retrieve: JobQueue

    @property
    def id(self) -> str:
        return self.archive.config.id


@dataclass
class Policies:
    archives: list[Hosted]
    catalogue: CatalogueClient
    tier_order: list[str]
    _seen: RecentIds = field(default_factory=RecentIds)

    async def studies(self, event: Event) -> None:
        """Policy of the studies topic."""
        payload = event.payload
        if isinstance(payload, ev.StudyStable):
            await self.on_study_stable(event, payload)
        elif isinstance(payload, ev.RecallRequested):
            await self.on_recall_requested(event, payload)
        metrics.EVENTS.labels(event.type, "applied").inc()

    async def on_study_stable(self, event: Event, msg: ev.StudyStable) -> None:
        for hosted in self.archives:
            # one job per archive, whichever rules match (the first one names it)
            rule = matching_rule(hosted.archive.config.rules, msg)
            if rule is None:
                continue
            not_before = event.time + timedelta(seconds=rule.delay_s) if rule.delay_s else None
            await hosted.store.submit(
                msg.study_instance_uid, target=hosted.id, dedupe_key=event.id,
                params={"revision": str(msg.revision), "rule": rule.name},
                not_before=not_before, created_by=f"rule:{rule.name}")

    async def on_recall_requested(self, event: Event, msg: ev.RecallRequested) -> None:
        study = msg.study_instance_uid
        try:
            summary = await self.catalogue.study(study)
        except CatalogueError as exc:
            raise TransientError(str(exc)) from exc
        held = {(loc.get("tier"), loc.get("archive_id"))
                for loc in (summary or {}).get("study_locations") or [] if loc.get("verified")}
        candidates = [h for h in self.archives if (h.archive.config.tier, h.id) in held]
        if not candidates:
            return  # not ours (another tier, or an archive another service hosts)
        rank = {t: i for i, t in enumerate(self.tier_order)}
        candidates.sort(key=lambda h: rank.get(h.archive.config.tier, len(rank)))
        chosen = candidates[0]
        for h in candidates:  # the best tier that is ready now; else the best one (it stalls)
            if await h.archive.readiness() is None:
                chosen = h
                break
        await chosen.retrieve.submit(
            study, target=chosen.id, dedupe_key=event.id, sop_uids=list(msg.sop_instance_uids),
            params={"requested_by": msg.requested_by, "tier": chosen.archive.config.tier},
            created_by=f"recall:{msg.requested_by or 'unknown'}")
        log.info("recall job submitted", extra={"study": study, "archive": chosen.id})

    async def commands(self, event: Event) -> None:
        """Policy of the job-commands topic: apply commands addressed to our queues."""
        if not isinstance(event.payload, jb.JobCommandIssued) or not self._seen.first_time(
                event.id):
            return
        for hosted in self.archives:
            for queue in (hosted.store, hosted.retrieve):
                if await queue.apply_command(event.payload):
                    metrics.EVENTS.labels(event.type, "applied").inc()
                    return
