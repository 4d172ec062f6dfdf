"""The operator service: kopf reconciling Exporters, the queue-count sweep, /metrics and health.

``run`` wires: kopf's settings (annotations under ``dicomvault.io/`` for its bookkeeping, no
finalizer, no CRD scanning so no cluster-wide rights are needed), the API client shared by the
handlers (``memo.kube``), ``kopf.operator`` on the configured namespace, the queue-count loop
and the HTTP listener (``GET /metrics``, ``/healthz``, ``/readyz``).
"""

from __future__ import annotations

import asyncio
import logging

import kopf
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dicomvault.health import alive, readiness
from dicomvault.lifecycle import HttpServer
from dicomvault.metrics import metrics_app
from vault_operator import metrics
from vault_operator.handlers import HANDLERS
from vault_operator.kube import Kube, connection_info
from vault_operator.queues import run_queue_counts
from vault_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

PREFIX = "dicomvault.io"


def kopf_settings() -> kopf.OperatorSettings:
    s = kopf.OperatorSettings()
    s.persistence.finalizer = f"{PREFIX}/operator"
    s.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    s.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration")
    s.scanning.disabled = True  # the CRD is installed before the operator (Helm crds/)
    s.posting.level = logging.WARNING  # Events on Exporters: problems only
    s.watching.server_timeout = 300
    return s


def build_app(ready: asyncio.Event) -> FastAPI:
    app = FastAPI(title="dicomvault operator", docs_url=None, redoc_url=None)
    app.mount("/metrics", metrics_app(metrics.REGISTRY))

    @app.get("/healthz")
    async def healthz() -> dict:
        return alive()

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        return readiness([None if ready.is_set() else "kopf has not started watching yet"])

    return app


async def run(settings: OperatorSettings, stop: asyncio.Event,
              ready: asyncio.Event | None = None) -> None:
    ready = ready if ready is not None else asyncio.Event()
    cfg = settings.operator
    ksettings = kopf_settings()
    info = connection_info(cfg.api_server, ksettings)
    kube = Kube(info, cfg.request_timeout_s)
    memo = kopf.Memo(settings=settings, kube=kube, connection=info)
    server = HttpServer.for_app(build_app(ready), settings.http, access_log=True)
    scope = {"clusterwide": True} if cfg.clusterwide else {"namespaces": [cfg.namespace]}
    tasks = [
        asyncio.create_task(kopf.operator(registry=HANDLERS, settings=ksettings, memo=memo,
                                          standalone=True, stop_flag=stop, ready_flag=ready,
                                          **scope), name="kopf"),
        asyncio.create_task(run_queue_counts(kube, settings, stop), name="queue-counts"),
        asyncio.create_task(server.serve(), name="http"),
    ]
    log.info("operator started", extra={"namespace": cfg.namespace or "*"})
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        # Runs until stopped, or until kopf itself ends (a login or API failure it gave up on).
        await asyncio.wait([stopped, tasks[0]], return_when=asyncio.FIRST_COMPLETED)
        if tasks[0].done() and not stop.is_set():
            tasks[0].result()
            raise RuntimeError("kopf stopped on its own")
    finally:
        stopped.cancel()
        stop.set()
        server.should_exit = True
        done, pending = await asyncio.wait(tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await kube.close()
