"""Event policy: StudyStable → the optical archive rule → the study is queued (durably) for
writing after the rule's delay; the sweep writes it into the open volume.

Idempotent on ``ce_id`` (the pending entry remembers it; a short in-memory window too) and
on the study: a study already on a volume is not queued again. The pending list in the
volume store stands in for the jobs engine's STORE queue until the service moves to it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.rules import matching_rule
from optical_burner import metrics
from optical_burner.archive import ArchiveError, OpticalArchive
from optical_burner.burning import burn_volume
from optical_burner.volumes import VolumeState, now

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20  # of a pending study whose write keeps failing (then dropped, logged)


@dataclass
class Policies:
    archive: OpticalArchive
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def _first_time(self, event_id: str) -> bool:
        if event_id in self._seen:
            return False
        self._seen[event_id] = None
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)
        return True

    async def studies(self, event: Event) -> None:
        """Policy of the studies topic."""
        if isinstance(event.payload, ev.StudyStable):
            outcome = await self.on_study_stable(event, event.payload)
            metrics.EVENTS.labels(event.type, outcome).inc()

    async def on_study_stable(self, event: Event, msg: ev.StudyStable) -> str:
        arc = self.archive
        if not self._first_time(event.id):
            return "duplicate"
        rule = matching_rule(arc.cfg.rules, msg)
        if rule is None:
            return "no_rule"
        uid = msg.study_instance_uid
        async with arc.lock:
            parts = arc.store.parts_of(uid)
            if parts and len(parts) == parts[0][1].parts:
                return "already_archived"
            pending = arc.store.load_pending()
            if pending.get(uid, {}).get("event_id") == event.id:
                return "duplicate"
            due = max(event.time, now()) if not rule.delay_s else \
                event.time + timedelta(seconds=rule.delay_s)
            pending[uid] = {"event_id": event.id, "rule": rule.name, "due": due.isoformat(),
                            "attempts": 0, "error": "", "revision": msg.revision}
            arc.store.save_pending(pending)  # durable before the offset is committed
        log.info("study queued for the optical archive",
                 extra={"study": uid, "rule": rule.name, "due": due.isoformat()})
        return "queued"


async def write_pending(arc: OpticalArchive) -> list[str]:
    """Write every due pending study; failures are retried after ``retry_s``."""
    written = []
    async with arc.lock:
        pending = arc.store.load_pending()
    for uid, entry in sorted(pending.items(), key=lambda kv: kv[1]["due"]):
        if datetime.fromisoformat(entry["due"]) > now():
            continue
        try:
            result = await arc.archive_study(uid)
            error = "" if result.status in ("archived", "already") else result.message
        except ArchiveError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - catalogue down, disk trouble: retry later
            log.warning("optical write failed", exc_info=True, extra={"study": uid})
            error = repr(exc)
        async with arc.lock:
            pending = arc.store.load_pending()
            current = pending.get(uid)
            if current is None or current["event_id"] != entry["event_id"]:
                continue  # replaced meanwhile
            if not error:
                del pending[uid]
                written.append(uid)
            else:
                current["attempts"] += 1
                current["error"] = error
                current["due"] = (now() + timedelta(seconds=arc.cfg.retry_s)).isoformat()
                if current["attempts"] >= MAX_ATTEMPTS:
                    log.error("optical write given up", extra={"study": uid, "error": error})
                    del pending[uid]
            arc.store.save_pending(pending)
    return written


async def sweep(arc: OpticalArchive) -> None:
    """One pass: write due studies, close an aged volume, burn volumes that are due."""
    await write_pending(arc)
    await arc.close_aged()
    for vol in arc.store.all():
        if (vol.state in (VolumeState.CLOSED, VolumeState.BURNED) and not vol.released
                and vol.next_burn_at is not None and vol.next_burn_at <= now()):
            try:
                await burn_volume(arc, vol.label)
            except Exception:  # noqa: BLE001 - recorded on the volume; the sweep goes on
                log.exception("burn run failed", extra={"volume": vol.label})
