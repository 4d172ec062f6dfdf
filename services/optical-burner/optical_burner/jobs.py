"""The optical archive's executors on the jobs engine (``dicomvault.jobs``).

One archive, two queues: STORE ``<archive id>`` (``store``: the study from the cache into
the open volume(s)) and RETRIEVE ``<archive id>-retrieve`` (``retrieve``: the study from its
volumes back into the cache). What an executor returns:

- STORE: done (with the volume labels); retry when the catalogue or the cache is not there
  yet or a checksum does not match; failed at once for an instance larger than a medium.
- RETRIEVE: done once every instance is in the cache — each announced as
  InstanceStored(source="recall"), then StudyRecalled(tier="optical"), with ids derived from
  the job (a re-run re-emits the same facts); *waiting* for media (``insert volume …``) while
  a volume is offline: the job continues once the disc is mounted under
  ``optical.mount_path`` — the volume sweep notices the mount and wakes the waiting jobs
  (``wake_for_mounted_media``); the queue also looks again every ``optical.media_recheck_s``.
  Failed when no volume holds the study; retry on a checksum mismatch (another copy may be
  mounted). A RETRIEVE job cancelled or failed for good leaves its media requests
  (``MediaWithdrawals``, the queue's observer).
"""

from __future__ import annotations

import asyncio
import logging

from dicomvault.dicom import instance_stored
from dicomvault.events import deterministic_id
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.jobs import Job, JobQueue, JobState, Outcome, ProgressReporter
from dicomvault.store import CacheStore
from optical_burner import metrics
from optical_burner.announcing import TIER
from optical_burner.archive import OpticalArchive
from optical_burner.catalogue import CatalogueError
from optical_burner.errors import ArchiveError, InstanceTooLarge
from optical_burner.retrieve import mounted_root, retrieve_study, withdraw_media_requests
from optical_burner.volumes import InstanceEntry, latest, study_labels

log = logging.getLogger(__name__)


class Executors:
    def __init__(self, archive: OpticalArchive, cache: CacheStore) -> None:
        self.archive = archive
        self.cache = cache

    async def store(self, job: Job, progress: ProgressReporter) -> Outcome:
        arc = self.archive
        try:
            result = await arc.archive_study(job.study_uid)
        except InstanceTooLarge as exc:
            return Outcome.failed_permanently(str(exc))
        except (ArchiveError, CatalogueError) as exc:
            return Outcome.retry(str(exc))
        if result.status == "not_found":
            return Outcome.retry(result.message)
        if result.status == "already":
            message = f"{result.instances} instances already on {result.location}"
        elif result.written < result.instances:  # a later revision's new instances
            message = (f"{result.written} new instances written to {result.location} "
                       f"({result.instances} in all)")
        else:
            message = f"{result.instances} instances written to {result.location}"
        return Outcome.done(message,
                            completed=result.instances,
                            result={"location": result.location,
                                    "volumes": ",".join(result.labels)})

    async def retrieve(self, job: Job, progress: ProgressReporter) -> Outcome:
        arc = self.archive
        study = job.study_uid
        total = len(job.sop_uids) or len(latest(arc.store.parts_of(study)))  # each UID once
        recalled: list[str] = []

        async def announce(inst: InstanceEntry, blob: bytes) -> None:
            fact = instance_stored(blob, inst.storage_key, source="recall")
            await arc.emit(arc.topics.instances, fact, study,
                           deterministic_id("optical-recall", job.id, inst.sop_instance_uid))
            metrics.RECALLED_INSTANCES.labels(arc.id).inc()
            recalled.append(inst.sop_instance_uid)
            await progress(len(recalled), 0, max(0, total - len(recalled)), "recalling")

        result = await retrieve_study(arc, study, self.cache, sop_uids=job.sop_uids or None,
                                      on_instance=announce, job_id=job.id)
        if result.status == "offline":
            return Outcome.waiting(result.message, waiting_for="media")
        if result.status == "not_found":
            return Outcome.failed_permanently(f"{result.message} on {arc.id}")
        if result.status != "done":
            return Outcome.retry(result.message, completed=len(recalled))
        parts = arc.store.parts_of(study)
        location = "+".join(study_labels(parts))
        await arc.emit(arc.topics.studies, ar.StudyRecalled(
            study_instance_uid=study, tier=TIER, archive_id=arc.id, job_id=job.id,
            number_of_instances=len(recalled), location=location,
            sop_instance_uids=sorted(recalled)),
            study, deterministic_id("optical-recalled", arc.id, job.id))
        log.info("study recalled from optical volumes",
                 extra={"study": study, "instances": len(recalled), "volumes": location})
        return Outcome.done(f"{len(recalled)} instances recalled from {location}",
                            completed=len(recalled), result={"location": location})


async def wake_for_mounted_media(arc: OpticalArchive, queue: JobQueue) -> list[str]:
    """Run the RETRIEVE jobs waiting for a volume now, if its disc has been mounted."""
    volumes = [v for label in list(arc.media_requests) if (v := arc.store.get(label))]
    if not volumes:
        return []
    mounted = await asyncio.to_thread(
        lambda: [v.label for v in volumes if mounted_root(v, arc.cfg.mount_path) is not None])
    woken = []
    for label in mounted:
        for job_id in arc.media_requests.get(label, {}).get("jobs", []):
            job = queue.jobs.get(job_id)
            if job is not None and job.state == JobState.WAITING:
                job.not_before = None  # due now; the executor reads the disc
                woken.append(job_id)
    if woken:
        log.info("volume mounted, waiting retrieves continue", extra={"jobs": woken})
        queue.wake()
    return woken


class MediaWithdrawals:
    """The RETRIEVE queue's observer: a job that reaches CANCELLED or FAILED no longer waits
    for a disc, so it leaves its media requests (``withdraw_media_requests``). The queue calls
    observers synchronously, so the work is a task on the running loop; the tasks are kept
    until done (``drain`` awaits what is left at shutdown)."""

    ENDS = {"cancelled": JobState.CANCELLED, "failed": JobState.FAILED}

    def __init__(self, arc: OpticalArchive, queue: JobQueue | None = None) -> None:
        self.arc = arc
        self.queue = queue  # the RETRIEVE queue, whose other jobs may still need a request
        self.tasks: set[asyncio.Task] = set()

    def __call__(self, what: str, job: Job | None) -> None:
        if job is None or what not in self.ENDS or job.state != self.ENDS[what]:
            return
        jobs = self.queue.jobs if self.queue is not None else {}
        reason = f"job {job.id} {what}" + (f": {job.error}" if what == "failed" and job.error
                                            else "")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not called from the queue's loop: nothing to schedule on
            log.error("media requests not withdrawn: no running loop", extra={"job": job.id})
            return
        task = loop.create_task(withdraw_media_requests(self.arc, job, jobs, reason),
                                name=f"withdraw-media-{job.id}")
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media request withdrawal not published", exc_info=task.exception())

    async def drain(self) -> None:
        if self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)
