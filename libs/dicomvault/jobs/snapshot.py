"""Adopt a queue's unfinished jobs and its administrative state from the catalogue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from dicomvault.jobs.model import ACTIVE, Job, JobState, QueueState
from dicomvault.jobs.runner import JobQueue

if TYPE_CHECKING:
    from dicomvault.query import CatalogueClient

log = logging.getLogger(__name__)


def job_from_json(d: dict) -> Job:
    nb = d.get("not_before")
    return Job(
        id=d["job_id"], queue=d["queue"], kind=d["kind"], study_uid=d["study_instance_uid"],
        target=d.get("target", ""), params=dict(d.get("params") or {}),
        sop_uids=list(d.get("sop_instance_uids") or []), state=JobState(d["state"]),
        attempt=int(d.get("attempts") or 0), max_retries=int(d.get("max_retries") or 0),
        not_before=datetime.fromisoformat(nb) if nb else None, error=d.get("error") or "",
        created_by=d.get("created_by") or "",
    )


async def adopt_from_catalogue(queue: JobQueue, catalogue: str | CatalogueClient,
                               timeout_s: float = 10.0) -> int:
    """Load the queue's active jobs and halted state; returns how many jobs were adopted.
    ``catalogue``: the service's CatalogueClient (its CA and bearer token), or a base URL.

    Raises httpx.HTTPError when the catalogue cannot answer (callers retry later)."""
    if not isinstance(catalogue, str):
        return await _adopt(queue, catalogue.http)
    async with httpx.AsyncClient(base_url=catalogue.rstrip("/"), timeout=timeout_s) as client:
        return await _adopt(queue, client)


async def _adopt(queue: JobQueue, client: httpx.AsyncClient) -> int:
    r = await client.get(f"/api/v1/queues/{queue.name}")
    if r.status_code == 200 and r.json().get("state") == QueueState.HALTED:
        queue.adopt_state(QueueState.HALTED, r.json().get("reason", ""))
    adopted = 0
    offset = 0
    while True:
        r = await client.get("/api/v1/jobs", params={
            "queue": queue.name, "state": ",".join(sorted(ACTIVE)), "limit": 500,
            "offset": offset})
        r.raise_for_status()
        items = r.json().get("jobs", [])
        for item in items:
            adopted += queue.adopt(job_from_json(item))
        if len(items) < 500:
            break
        offset += len(items)
    if adopted:
        log.info("jobs adopted from the catalogue", extra={"queue": queue.name, "jobs": adopted})
    return adopted


def catalogue_lookup(catalogue: CatalogueClient, kind: str | None = None,
                     target: str | None = None):
    """A ``JobQueue`` lookup: ``GET /api/v1/jobs/{id}`` through the service's catalogue
    client (None when unknown, or of another kind or target, e.g. another exporter sharing
    the queue name)."""

    async def lookup(job_id: str) -> Job | None:
        r = await catalogue.http.get(f"/api/v1/jobs/{job_id}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        job = job_from_json(r.json())
        if (kind and job.kind != kind) or (target is not None and job.target != target):
            return None
        return job

    return lookup


async def adopt_all(queues: list[JobQueue], catalogue: str | CatalogueClient, retry_s: float,
                    stop: asyncio.Event,
                    adopted: Callable[[JobQueue, int], None] | None = None) -> None:
    """Adopt every queue's unfinished jobs after a restart, retrying each queue every
    ``retry_s`` until the catalogue answers (or ``stop``); ``adopted(queue, n)`` is called
    once each queue is done."""
    pending = list(queues)
    while pending and not stop.is_set():
        for q in list(pending):
            try:
                n = await adopt_from_catalogue(q, catalogue)
                pending.remove(q)
                if adopted is not None:
                    adopted(q, n)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("job adoption failed, will retry",
                            extra={"queue": q.name, "error": repr(exc)})
        if pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=retry_s)
