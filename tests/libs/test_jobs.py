"""The jobs engine: retries with backoff, stalls on readiness, obeys administrators, records facts."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import Job, JobQueue, JobState, Outcome, QueueState, RetryPolicy
from dicomvault.settings import BusSettings
from tests.peers.wait import wait_until


async def facts(settings: BusSettings, n: int) -> list[tuple[str, object]]:
    consumer = AIOKafkaConsumer(settings.topics.jobs, bootstrap_servers=settings.bootstrap_servers,
                                auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[str, object]] = []
    try:
        while len(out) < n:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for records in batch.values():
                for r in records:
                    ev = Event.from_record(r.value, r.headers)
                    out.append((ev.type, ev.payload))
    finally:
        await consumer.stop()
    return out


def make_queue(pub: Publisher, settings: BusSettings, execute, **kw) -> JobQueue:
    return JobQueue(name="HSM1", kind="STORE", owner="test", publisher=pub, topics=settings.topics,
                    execute=execute, retry=RetryPolicy(max_retries=2, initial_delay_s=0.05,
                                                       max_delay_s=0.1), **kw)


async def test_a_job_retries_then_succeeds_and_every_step_is_a_fact(bus_settings) -> None:
    tries: list[int] = []

    async def execute(job: Job, progress) -> Outcome:
        tries.append(job.attempt)
        if job.attempt < 2:
            raise OSError("disk hiccup")
        await progress(3, 0, 0, "all written", force=True)
        return Outcome.done("stored", completed=3)

    stop = asyncio.Event()
    async with Publisher(bus_settings, "test") as pub:
        queue = make_queue(pub, bus_settings, execute)
        runner = asyncio.create_task(queue.run(stop))
        job = await queue.submit("1.2.3", target="HSM1", dedupe_key="ev-1")
        again = await queue.submit("1.2.3", target="HSM1", dedupe_key="ev-1")
        assert again is job  # the same triggering event never makes a second job
        await wait_until(lambda: job.state == JobState.DONE)
        stop.set()
        await runner
        types = [t for t, _ in await facts(bus_settings, 7)]
    assert tries == [1, 2]
    # Job facts are keyed by job id (ordered per job); queue facts by queue name.
    assert types.count("dicomvault.queue.state-changed.v1") == 1
    assert [t for t in types if t.startswith("dicomvault.job.")] == [
        "dicomvault.job.created.v1",
        "dicomvault.job.started.v1", "dicomvault.job.retry-scheduled.v1",
        "dicomvault.job.started.v1", "dicomvault.job.progressed.v1", "dicomvault.job.completed.v1",
    ]


async def test_retries_are_bounded(bus_settings) -> None:
    async def execute(job: Job, progress) -> Outcome:
        return Outcome.retry("peer refused association")

    stop = asyncio.Event()
    async with Publisher(bus_settings, "test") as pub:
        queue = make_queue(pub, bus_settings, execute)
        runner = asyncio.create_task(queue.run(stop))
        job = await queue.submit("1.2.3", target="HSM1", dedupe_key="ev-2")
        await wait_until(lambda: job.state == JobState.FAILED)
        assert job.attempt == 3 and job.error == "peer refused association"
        stop.set()
        await runner


async def test_queue_stalls_while_not_ready_and_drains_when_fixed(bus_settings) -> None:
    ready = {"reason": "sentinel file missing"}
    done: list[str] = []

    async def readiness() -> str | None:
        return ready["reason"]

    async def execute(job: Job, progress) -> Outcome:
        done.append(job.study_uid)
        return Outcome.done()

    stop = asyncio.Event()
    async with Publisher(bus_settings, "test") as pub:
        queue = make_queue(pub, bus_settings, execute, readiness=readiness,
                           readiness_interval_s=0.05)
        runner = asyncio.create_task(queue.run(stop))
        await queue.submit("1.2.3", target="HSM1", dedupe_key="a")
        await wait_until(lambda: queue.state == QueueState.STALLED)
        assert queue.reason == "sentinel file missing" and done == []
        ready["reason"] = None
        await wait_until(lambda: done == ["1.2.3"])
        assert queue.state == QueueState.RUNNING
        stop.set()
        await runner


async def test_administrator_commands(bus_settings) -> None:
    gate = asyncio.Event()

    async def execute(job: Job, progress) -> Outcome:
        if job.study_uid == "1.1":
            await gate.wait()  # a long-running job, cancelled below
        return Outcome.done() if job.study_uid != "1.3" else Outcome.failed_permanently("bad")

    def cmd(command, **kw) -> jb.JobCommandIssued:
        return jb.JobCommandIssued(command=command, queue="HSM1", issued_by="admin", **kw)

    C = jb.JobCommandIssued
    stop = asyncio.Event()
    async with Publisher(bus_settings, "test") as pub:
        queue = make_queue(pub, bus_settings, execute, concurrency=2)
        runner = asyncio.create_task(queue.run(stop))
        long = await queue.submit("1.1", target="HSM1", dedupe_key="1")
        await wait_until(lambda: long.state == JobState.IN_PROGRESS)
        await queue.apply_command(cmd(C.CANCEL_JOB, job_id=long.id))
        assert long.state == JobState.CANCELLED
        # Paused: new jobs wait.
        await queue.apply_command(cmd(C.PAUSE_QUEUE))
        waiting = await queue.submit("1.2", target="HSM1", dedupe_key="2")
        looks = queue.looks
        queue.wake()
        await wait_until(lambda: queue.looks > looks, "the queue to look at its jobs again")
        assert waiting.state == JobState.NEW and queue.state == QueueState.HALTED
        await queue.apply_command(cmd(C.RESUME_QUEUE))
        await wait_until(lambda: waiting.state == JobState.DONE)
        # A failed job can be retried; a suspended one waits until resumed.
        bad = await queue.submit("1.3", target="HSM1", dedupe_key="3")
        await wait_until(lambda: bad.state == JobState.FAILED)
        await queue.apply_command(cmd(C.SUSPEND_JOB, job_id=bad.id))
        assert bad.state == JobState.FAILED  # terminal jobs cannot be suspended
        await queue.apply_command(cmd(C.RETRY_JOB, job_id=bad.id))
        await wait_until(lambda: bad.state == JobState.FAILED and bad.attempt == 1)
        assert queue.counts()["CANCELLED"] == 1 and queue.counts()["DONE"] == 1
        stop.set()
        await runner


async def test_commands_that_come_before_their_job_are_applied_when_it_is_adopted(
        bus_settings) -> None:
    """The catalogue was late at start-up: the administrator's cancel (and suspend) reached
    the queue before the jobs were adopted. They are applied when the jobs arrive, before
    either runs; the facts say so."""
    ran: list[str] = []

    async def execute(job: Job, progress) -> Outcome:
        ran.append(job.id)
        return Outcome.done()

    C = jb.JobCommandIssued
    stop = asyncio.Event()
    async with Publisher(bus_settings, "test") as pub:
        queue = make_queue(pub, bus_settings, execute)
        runner = asyncio.create_task(queue.run(stop))
        for command, job_id in ((C.CANCEL_JOB, "waiting-1"), (C.SUSPEND_JOB, "new-2")):
            assert await queue.apply_command(C(command=command, queue="HSM1", job_id=job_id,
                                               issued_by="admin", reason="not needed"))
        assert queue.jobs == {}
        waiting = Job(id="waiting-1", queue="HSM1", kind="STORE", study_uid="2.1",
                      target="HSM1", state=JobState.WAITING)
        new = Job(id="new-2", queue="HSM1", kind="STORE", study_uid="2.2", target="HSM1")
        other = Job(id="other-3", queue="HSM1", kind="STORE", study_uid="2.3", target="HSM1")
        assert [queue.adopt(j) for j in (waiting, new, other)] == [1, 1, 1]
        await wait_until(lambda: other.state == JobState.DONE)
        assert (waiting.state, new.state) == (JobState.CANCELLED, JobState.SUSPENDED)
        assert ran == ["other-3"]
        stop.set()
        await runner
    # The queue's state, the two commands' state changes, other-3 started and completed.
    got = await facts(bus_settings, 5)
    changes = sorted((p.job_id, p.state, p.command, p.reason) for _t, p in got
                     if isinstance(p, jb.JobStateChanged))
    assert changes == [("new-2", "SUSPENDED", "suspend", "not needed"),
                       ("waiting-1", "CANCELLED", "cancel", "not needed")]
    assert not any(isinstance(p, jb.JobStarted) and p.job_id != "other-3" for _t, p in got)
