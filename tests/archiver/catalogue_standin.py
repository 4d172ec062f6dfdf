"""A stand-in for the catalogue service, for the archiver's tests until the real one exists.

It is NOT the catalogue: a small projection of the real broker's topics (InstanceStored,
StudyArchived, StudyEvicted, job and queue facts) behind the catalogue's REST contract for
the endpoints the archiver reads: GET /api/v1/studies/{uid}, /api/v1/studies/{uid}/instances,
/api/v1/queues/{name}, /api/v1/jobs. It runs in its own thread and event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import FastAPI, HTTPException

import hsm_archiver  # noqa: F401 - registers the archive facts' type names
from dicomvault.bus import ensure_topics
from dicomvault.bus.broker import free_port
from dicomvault.events import EnvelopeError, Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.settings import BusSettings


def _iso(ts) -> str | None:
    return ts.ToDatetime(tzinfo=UTC).isoformat() if ts is not None and ts.seconds else None


class CatalogueStandIn:
    def __init__(self, bus: BusSettings) -> None:
        self.bus = bus
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instances: dict[str, dict[tuple[str, str], dict]] = {}  # study -> (tier,sop) -> row
        self.locations: dict[str, list[dict]] = {}
        self.jobs: dict[str, dict] = {}
        self.queues: dict[str, dict] = {}
        self.events: list[Event] = []
        self._seen: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- projection -----------------------------------------------------------------------
    def apply(self, e: Event) -> None:
        if e.id in self._seen:
            return
        self._seen.add(e.id)
        self.events.append(e)
        p = e.payload
        now = datetime.now(UTC).isoformat()
        if isinstance(p, ev.InstanceStored):
            self.instances.setdefault(p.study_instance_uid, {})[(p.tier, p.sop_instance_uid)] = {
                "study_instance_uid": p.study_instance_uid,
                "series_instance_uid": p.series_instance_uid,
                "sop_instance_uid": p.sop_instance_uid, "sop_class_uid": p.sop_class_uid,
                "transfer_syntax_uid": p.transfer_syntax_uid, "tier": p.tier,
                "storage_key": p.storage_key, "size_bytes": p.size_bytes, "sha256": p.sha256}
        elif isinstance(p, ev.StudyArchived):
            locs = self.locations.setdefault(p.study_instance_uid, [])
            locs[:] = [x for x in locs if (x["tier"], x["archive_id"]) != (p.tier, p.archive_id)]
            locs.append({"tier": p.tier, "archive_id": p.archive_id, "location": p.location,
                         "verified": p.verified, "number_of_instances": p.number_of_instances})
        elif isinstance(p, ev.StudyEvicted):
            if p.tier == "cache":
                rows = self.instances.get(p.study_instance_uid, {})
                for k in [k for k in rows if k[0] == "cache"]:
                    del rows[k]
            else:
                locs = self.locations.get(p.study_instance_uid, [])
                locs[:] = [x for x in locs if (x["tier"], x["archive_id"]) !=
                           (p.tier, p.archive_id)]
        elif isinstance(p, jb.JobCreated):
            self.jobs.setdefault(p.job_id, {
                "job_id": p.job_id, "queue": p.queue, "kind": jb.JobKind.Name(p.kind),
                "study_instance_uid": p.study_instance_uid, "target": p.target,
                "params": dict(p.params), "sop_instance_uids": list(p.sop_instance_uids),
                "state": "NEW", "attempts": 0, "max_retries": p.max_retries,
                "not_before": _iso(p.not_before if p.HasField("not_before") else None),
                "error": "", "created_by": p.created_by, "created_at": now, "updated_at": now,
                "progress": {"completed": 0, "failed": 0, "remaining": 0}})
        elif isinstance(p, jb.QueueStateChanged):
            self.queues[p.queue] = {"name": p.queue, "state": p.state, "reason": p.reason,
                                    "owner": p.owner, "kind": p.kind}
        elif hasattr(p, "job_id") and p.job_id in self.jobs:
            job = self.jobs[p.job_id]
            job["updated_at"] = now
            if isinstance(p, jb.JobStarted):
                job.update(state="IN_PROGRESS", attempts=p.attempt)
            elif isinstance(p, jb.JobProgressed):
                job["progress"] = {"completed": p.completed, "failed": p.failed,
                                   "remaining": p.remaining, "message": p.message}
            elif isinstance(p, jb.JobRetryScheduled):
                job.update(state="RETRY", error=p.error, not_before=_iso(p.next_attempt))
            elif isinstance(p, jb.JobCompleted):
                job.update(state="DONE", error="")
            elif isinstance(p, jb.JobFailed):
                job.update(state="FAILED", error=p.error)
            elif isinstance(p, jb.JobWaiting):
                job.update(state="WAITING", error=p.reason)
            elif isinstance(p, jb.JobStateChanged):
                job.update(state=p.state, not_before=_iso(
                    p.not_before if p.HasField("not_before") else None))

    # --- REST (the catalogue's contract, the parts the archiver reads) --------------------
    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/readyz")
        def readyz() -> dict:
            return {"status": "ready"}

        @app.get("/api/v1/studies/{uid}/instances")
        def instances(uid: str) -> list[dict]:
            if uid not in self.instances and uid not in self.locations:
                raise HTTPException(404)
            return list(self.instances.get(uid, {}).values())

        @app.get("/api/v1/studies/{uid}")
        def study(uid: str) -> dict:
            if uid not in self.instances and uid not in self.locations:
                raise HTTPException(404)
            return {"study_instance_uid": uid, "study_locations": self.locations.get(uid, [])}

        @app.get("/api/v1/queues/{name}")
        def queue(name: str) -> dict:
            if name not in self.queues:
                raise HTTPException(404)
            return self.queues[name]

        @app.get("/api/v1/jobs")
        def jobs(queue: str = "", state: str = "", limit: int = 100, offset: int = 0) -> dict:
            states = set(state.split(",")) if state else None
            rows = [j for j in self.jobs.values() if (not queue or j["queue"] == queue)
                    and (states is None or j["state"] in states)]
            return {"jobs": rows[offset:offset + limit], "total": len(rows)}

        return app

    # --- life cycle -----------------------------------------------------------------------
    async def _consume(self) -> None:
        await ensure_topics(self.bus)
        c = AIOKafkaConsumer(bootstrap_servers=self.bus.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False)
        await c.start()
        try:
            t = self.bus.topics
            tps = []
            for topic in (t.instances, t.studies, t.jobs):
                parts = c.partitions_for_topic(topic)
                while not parts:
                    await c._client.force_metadata_update()  # noqa: SLF001
                    parts = c.partitions_for_topic(topic)
                tps += [TopicPartition(topic, p) for p in parts]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            self._ready.set()
            assert self._stop is not None
            while not self._stop.is_set():
                batch = await c.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        try:
                            self.apply(Event.from_record(r.value, r.headers))
                        except EnvelopeError:
                            pass
        finally:
            await c.stop()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=self.port,
                                                   log_config=None, access_log=False,
                                                   lifespan="off"))
            server.capture_signals = _no_signals  # type: ignore[method-assign]
            consumer = asyncio.create_task(self._consume())
            serving = asyncio.create_task(server.serve())
            await self._stop.wait()
            server.should_exit = True
            await asyncio.gather(consumer, serving, return_exceptions=True)

        asyncio.run(main())

    def start(self) -> CatalogueStandIn:
        self._thread = threading.Thread(target=self._main, name="catalogue-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("catalogue stand-in did not start")
        import httpx

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/readyz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("catalogue stand-in HTTP not up")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    def job_states(self, queue: str) -> list[str]:
        return [j["state"] for j in list(self.jobs.values()) if j["queue"] == queue]

    def of_type(self, cls) -> list:
        return [e.payload for e in list(self.events) if isinstance(e.payload, cls)]


def _no_signals():
    import contextlib

    return contextlib.nullcontext()
