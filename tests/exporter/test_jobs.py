"""Exports are jobs of the shared engine: facts on the jobs topic, job commands obeyed."""

from __future__ import annotations

import asyncio

from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb
from stow_exporter.policies import Commands
from tests.exporter.conftest import drain, exporter
from tests.exporter.helpers import job_facts
from tests.exporter.servers import StowServer, serve
from tests.peers.datasets import write_study
from tests.peers.wait import wait_until


def _command(command, queue: str) -> Event:
    return Event(payload=jb.JobCommandIssued(command=command, queue=queue, issued_by="api:ops",
                                               reason="maintenance"),
                 source="test", subject="")


async def test_export_is_a_done_export_job_and_pause_halts_the_queue(
        tmp_path, catalogue, hosting, bus_settings):
    first = write_study(tmp_path / "first", series=1, per_series=2)
    second = write_study(tmp_path / "second", series=1, per_series=2)
    catalogue[0].add(first)
    catalogue[0].add(second)
    server = StowServer()
    async with serve(server) as port:
        h = hosting(exporter("JOBS", url=f"http://127.0.0.1:{port}/dicom-web",
                             queueName="EXPORT-JOBS"))
        assert h.queue is not None and h.queue.name == "EXPORT-JOBS"
        export = await h.queue.submit(first.study_uid, trigger="manual")
        await drain(h)
        assert export.state == "exported", export.reason

        def done(facts: list[Event]) -> bool:
            return any(isinstance(f.payload, jb.JobCompleted) for f in facts)

        facts = await job_facts(bus_settings, done)
        created = [f.payload for f in facts if isinstance(f.payload, jb.JobCreated)]
        assert [(c.job_id, c.queue, jb.JobKind.Name(c.kind), c.study_instance_uid, c.target)
                for c in created] == [(export.id, "EXPORT-JOBS", "EXPORT", first.study_uid,
                                       "JOBS")]
        completed = [f.payload for f in facts if isinstance(f.payload, jb.JobCompleted)]
        assert [(c.job_id, c.completed) for c in completed] == [(export.id, 2)]
        assert export.job is not None and export.job.state.value == "DONE"

        # An administrator pauses the queue: a new export waits, nothing is sent.
        commands = Commands([h])
        sent = len(server.requests)
        stop = asyncio.Event()
        task = asyncio.create_task(h.queue.run(stop))
        try:
            await commands(_command(jb.JobCommandIssued.PAUSE_QUEUE, "EXPORT-JOBS"))
            halted = await h.queue.submit(second.study_uid, trigger="manual")
            looks = h.queue.jobs.looks
            h.queue.wake()
            await wait_until(lambda: h.queue.jobs.looks > looks, "the queue to look again")
            assert halted.state == "queued" and halted.attempts == 0
            assert len(server.requests) == sent
            facts = await job_facts(bus_settings, lambda fs: any(
                isinstance(f.payload, jb.QueueStateChanged) and f.payload.state == "HALTED"
                for f in fs))
            changed = [f.payload for f in facts if isinstance(f.payload, jb.QueueStateChanged)
                       and f.payload.state == "HALTED"]
            assert changed[-1].reason == "maintenance" and changed[-1].kind == "EXPORT"
            # Resumed, the export goes through.
            await commands(_command(jb.JobCommandIssued.RESUME_QUEUE, "EXPORT-JOBS"))
            await asyncio.wait_for(h.queue.idle.wait(), 30)
            assert halted.state == "exported", halted.reason
        finally:
            stop.set()
            await task
