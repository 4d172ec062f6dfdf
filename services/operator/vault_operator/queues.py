"""Queue counts in Exporter status, read from the catalogue jobs API.

Every ``queue_poll_interval_s`` the operator lists the Exporters it watches, reads
``GET {catalogue_url}/api/v1/queues/{queueName}`` for each and patches ``status.queued``,
``failed``, ``lastExport``/``lastSuccess``/``lastFailure`` (when the API gives them). An absent
or failing catalogue is tolerated: the counts simply stay as they were. One loop, not a kopf
timer, so the Exporters need no finalizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from dicomvault.exporters import API_VERSION, KIND
from vault_operator import metrics, render
from vault_operator.kube import Kube, KubeError
from vault_operator.reconcile import refresh_conditions
from vault_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

ACTIVE = ("NEW", "IN_PROGRESS", "RETRY", "WAITING", "SUSPENDED")


def counts(doc: dict[str, Any]) -> dict[str, Any]:
    """Status fields from a queue document: ``counts`` per job state, or flat fields."""
    out: dict[str, Any] = {}
    by_state = doc.get("counts")
    if isinstance(by_state, dict):
        out["queued"] = sum(int(by_state.get(s) or 0) for s in ACTIVE)
        out["failed"] = int(by_state.get("FAILED") or 0)
    for key in ("queued", "failed"):
        if isinstance(doc.get(key), int):
            out[key] = doc[key]
    for key in ("lastExport", "lastSuccess", "lastFailure", "lastFailureReason"):
        if doc.get(key):
            out[key] = doc[key]
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
        if not isinstance(doc, dict):
            continue
        meta = exporter["metadata"]
        deployment = await kube.get("apps/v1", "Deployment", meta["namespace"],
                                    render.child_name(meta["name"]))
        await refresh_conditions(kube, exporter, deployment, counts(doc))
    return len(exporters)


async def run_queue_counts(kube: Kube, settings: OperatorSettings, stop: asyncio.Event) -> None:
    interval = settings.operator.queue_poll_interval_s
    if not interval:
        return
    async with httpx.AsyncClient(timeout=settings.operator.request_timeout_s) as http:
        while not stop.is_set():
            try:
                await refresh_once(kube, http, settings)
            except (KubeError, httpx.HTTPError) as exc:
                log.warning("queue counts not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
