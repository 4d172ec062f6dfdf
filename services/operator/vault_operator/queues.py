"""Queue counts in Exporter status, read from the catalogue jobs API.

Every ``queue_poll_interval_s`` the operator lists the Exporters it watches, reads
``GET {catalogue_url}/api/v1/queues/{queueName}`` for each and patches ``status.queued``
(``depth``), ``failed`` (``counts.FAILED``), ``lastExport`` and ``lastSuccess``
(``last_success``), ``lastFailure`` and ``lastFailureReason`` (``last_failure``,
``last_failure_reason``), the latter when the catalogue knows them. For an Exporter with
``storageCommitment.enabled`` it also reads the latest COMMIT_SCU job the exporter asked for
(``GET /api/v1/jobs?queue=commitment-scu``) into ``commitment``, ``commitmentMessage``,
``commitmentJob`` and ``lastCommitment`` (a failed one makes it Degraded). An absent
or failing catalogue is tolerated: the counts simply stay as they were. One loop, not a kopf
timer, so the Exporters need no finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from dicomvault.exporters import API_VERSION, KIND
from dicomvault.jobs import ACTIVE, JobState
from dicomvault.query.client import http_options
from vault_operator import metrics, render, status
from vault_operator.kube import Kube, KubeError
from vault_operator.reconcile import refresh_conditions
from vault_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

# The catalogue's queue fields (snake_case) → the Exporter's status fields (the CRD's names).
# "Last export" is the queue's latest successful job: when a study last reached the target.
TIMES = {"last_success": ("lastExport", "lastSuccess"), "last_failure": ("lastFailure",)}


def rfc3339(value: Any) -> str | None:
    """A catalogue timestamp as the CRD's ``date-time`` (UTC, ``Z``); None if unreadable.
    A time without an offset is UTC (the catalogue stores UTC; SQLite drops the offset)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def counts(doc: dict[str, Any]) -> dict[str, Any]:
    """Status fields from the catalogue's queue document (``GET /api/v1/queues/{name}``):
    ``depth`` (unfinished jobs) or the sum of the unfinished ``counts``, FAILED jobs, and the
    latest success and failure."""
    out: dict[str, Any] = {}
    by_state = doc.get("counts")
    if isinstance(doc.get("depth"), int):
        out["queued"] = doc["depth"]
    elif isinstance(by_state, dict):
        out["queued"] = sum(int(by_state.get(s.value) or 0) for s in ACTIVE)
    if isinstance(by_state, dict):
        out["failed"] = int(by_state.get(JobState.FAILED.value) or 0)
    for source, targets in TIMES.items():
        if when := rfc3339(doc.get(source)):
            out.update(dict.fromkeys(targets, when))
    if "lastFailure" in out:
        out["lastFailureReason"] = str(doc.get("last_failure_reason") or "")
    return out


COMMIT_QUEUE = "commitment-scu"  # the commitment service's COMMIT_SCU queue
RECENT = 500  # the newest commitment jobs searched for an exporter's latest


async def latest_commitment(http: httpx.AsyncClient, base: str,
                            exporter_id: str) -> dict[str, Any] | None:
    """Status fields of the exporter's latest COMMIT_SCU job (created by
    ``exporter:<exporterID>``) among the newest ``RECENT``; None when there is none."""
    url = f"{base}/api/v1/jobs"
    params = {"queue": COMMIT_QUEUE, "kind": "COMMIT_SCU", "limit": 1}
    r = await http.get(url, params=params)
    if r.status_code != 200:
        return None
    total = int(r.json().get("total") or 0)
    r = await http.get(url, params={**params, "limit": RECENT,
                                    "offset": max(0, total - RECENT)})
    if r.status_code != 200:
        return None
    mine = [j for j in r.json().get("jobs", [])
            if j.get("created_by") == f"exporter:{exporter_id}"]
    if not mine:
        return None
    job = max(mine, key=lambda j: (j.get("updated_at") or "", j.get("created_at") or ""))
    out = status.commitment(job)
    if when := rfc3339(job.get("updated_at")):
        out["lastCommitment"] = when
    return out


async def refresh_once(kube: Kube, http: httpx.AsyncClient, settings: OperatorSettings) -> int:
    cfg = settings.operator
    namespace = "" if cfg.clusterwide else cfg.namespace
    exporters = await (kube.list_all(API_VERSION, KIND) if not namespace
                       else kube.list(API_VERSION, KIND, namespace))
    metrics.EXPORTERS.set(len(exporters))
    for exporter in exporters:
        queue = (exporter.get("spec") or {}).get("queueName") or "Export1"
        try:
            r = await http.get(f"{cfg.catalogue_url.rstrip('/')}/api/v1/queues/{queue}")
            doc = r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            doc = None
        metrics.QUEUE_POLLS.labels("ok" if isinstance(doc, dict) else "unavailable").inc()
        fields = counts(doc) if isinstance(doc, dict) else {}
        spec = exporter.get("spec") or {}
        if (spec.get("storageCommitment") or {}).get("enabled"):
            try:
                fields.update(await latest_commitment(
                    http, cfg.catalogue_url.rstrip("/"), spec.get("exporterID", "")) or {})
            except (httpx.HTTPError, ValueError):
                pass  # the commitment fields stay as they were
        if not fields:
            continue
        meta = exporter["metadata"]
        deployment = await kube.get("apps/v1", "Deployment", meta["namespace"],
                                    render.child_name(meta["name"]))
        await refresh_conditions(kube, exporter, deployment, fields)
    return len(exporters)


async def run_queue_counts(kube: Kube, settings: OperatorSettings, stop: asyncio.Event) -> None:
    interval = settings.operator.queue_poll_interval_s
    if not interval:
        return
    async with httpx.AsyncClient(timeout=settings.operator.request_timeout_s,
                                 **http_options(settings.client)) as http:
        while not stop.is_set():
            try:
                await refresh_once(kube, http, settings)
            except (KubeError, httpx.HTTPError) as exc:
                log.warning("queue counts not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
