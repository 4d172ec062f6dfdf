"""Administrators' commands through the REST API, applied end to end by a real JobQueue.

The catalogue service runs on the real broker; a ``dicomvault.jobs.JobQueue`` (what the
archive services embed) publishes its facts on the jobs topic and consumes the job-commands
topic, as the hsm-archiver does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from catalogue.rebuild import rebuild
from dicomvault.auth import AuthSettings
from dicomvault.bus import ConsumerLoop, Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import jobs_pb2 as jb
from dicomvault.jobs import JobQueue, JobState, Outcome, RetryPolicy, adopt_from_catalogue
from dicomvault.query import CatalogueClient
from dicomvault.settings import BusSettings, ClientSettings
from tests.catalogue.helpers import InProcess, read_topic, settings_for, uid, wait_until
from tests.peers.tokens import ADMIN, ISSUER, READ, Issuer

Cmd = jb.JobCommandIssued
QUEUE = "HSM-TEST"


class Owner:
    """A service owning one queue: its executor answers what the test lined up."""

    def __init__(self, bus: BusSettings, publisher: Publisher) -> None:
        self.outcomes: list[Outcome] = []
        self.runs: list[str] = []
        self.queue = JobQueue(name=QUEUE, kind="STORE", owner="test-archiver",
                              publisher=publisher, topics=bus.topics, execute=self.execute,
                              retry=RetryPolicy(max_retries=0))
        self.commands = ConsumerLoop(bus, group_id="test-archiver.commands",
                                     topics=[bus.topics.job_commands], handler=self.apply,
                                     dlq=publisher, client_id="test-archiver")

    async def execute(self, job, _report) -> Outcome:
        self.runs.append(job.id)
        return self.outcomes.pop(0)

    async def apply(self, event: Event) -> None:
        await self.queue.apply_command(event.payload)


@pytest.fixture
async def owner(bus_settings: BusSettings) -> AsyncIterator[Owner]:
    stop = asyncio.Event()
    async with Publisher(bus_settings, "test-archiver") as pub:
        o = Owner(bus_settings, pub)
        tasks = [asyncio.create_task(o.queue.run(stop)), asyncio.create_task(o.commands.run())]
        yield o
        stop.set()
        o.commands.stop()
        await asyncio.gather(*tasks)


@pytest.fixture
def issuer(tmp_path) -> Issuer:
    return Issuer(tmp_path)


def with_tokens(settings, issuer: Issuer):
    return settings.model_copy(update={"auth": AuthSettings(jwks_file=issuer.jwks_file,
                                                            issuer=ISSUER)})


async def test_pause_resume_retry_cancel_through_the_api(
        db_url: str, bus_settings: BusSettings, owner: Owner, issuer: Issuer, tmp_path) -> None:
    settings = with_tokens(settings_for(bus_settings, db_url, stable_after_s=3600), issuer)
    async with InProcess(settings) as svc:
        api = svc.client
        # Alice is an administrator: her token carries the admin scope.
        api.headers["Authorization"] = f"Bearer {issuer.token(ADMIN, subject='alice')}"

        async def job(job_id: str) -> dict:
            return (await api.get(f"/api/v1/jobs/{job_id}")).json()

        async def queue() -> dict:
            return (await api.get(f"/api/v1/queues/{QUEUE}")).json()

        async def job_is(job_id: str, state: str) -> dict:
            async def probe():
                j = await job(job_id)
                return j if j.get("state") == state else None
            return await wait_until(probe, f"job {job_id} {state}")

        async def queue_is(state: str) -> dict:
            async def probe():
                q = await queue()
                return q if q.get("state") == state else None
            return await wait_until(probe, f"queue {state}")

        await queue_is("RUNNING")  # the queue announced itself when it started
        await asyncio.wait_for(owner.commands.ready.wait(), 60)  # the owner hears commands

        # The administrator pauses the queue for maintenance; new work waits.
        r = await api.post(f"/api/v1/queues/{QUEUE}/pause",
                           json={"reason": "tape library maintenance"})
        assert r.status_code == 202, r.text
        pause_id = r.json()["command_id"]
        q = await queue_is("HALTED")
        assert q["reason"] == "tape library maintenance"
        again = await api.post(f"/api/v1/queues/{QUEUE}/pause")
        assert again.status_code == 409 and "already HALTED" in again.json()["detail"]

        submitted = await owner.queue.submit(uid(), target="HSM1", dedupe_key="study-1")
        j = await job_is(submitted.id, "NEW")
        assert (await queue())["counts"]["NEW"] == 1

        # Cancelled, then retried: back to NEW, still waiting for the queue.
        r = await api.post(f"/api/v1/jobs/{submitted.id}/cancel")
        assert r.status_code == 202, r.text
        j = await job_is(submitted.id, "CANCELLED")
        assert (j["last_command"], j["last_command_by"]) == ("cancel", "api:alice")
        assert (await api.post(f"/api/v1/jobs/{submitted.id}/retry")
                ).status_code == 202
        await job_is(submitted.id, "NEW")
        assert owner.runs == []

        # Resumed, the queue runs it: the target is full, the job fails.
        owner.outcomes += [Outcome.failed_permanently("target full"),
                           Outcome.done("archived", completed=3)]
        r = await api.post(f"/api/v1/queues/{QUEUE}/resume")
        assert r.status_code == 202, r.text
        j = await job_is(submitted.id, "FAILED")
        assert (j["error"], j["attempts"]) == ("target full", 1)
        # The queue's RUNNING fact is keyed by the queue, the job's by the job: another
        # partition, so it may be applied after the job's FAILED.
        await queue_is("RUNNING")

        # Retried after the administrator made room, asking to send again what the target
        # refused too (the owner's executor sees the option on the job): done.
        r = await api.post(f"/api/v1/jobs/{submitted.id}/retry",
                           json={"reason": "space freed", "include_refused": True})
        assert r.status_code == 202 and r.json()["command"] == "RETRY_JOB"
        assert r.json()["include_refused"] is True
        j = await job_is(submitted.id, "DONE")
        assert owner.queue.jobs[submitted.id].include_refused
        assert j["progress"]["completed"] == 3 and owner.runs == [submitted.id] * 2

        # Commands that cannot apply now are refused with the reason, and nothing is sent.
        r = await api.post(f"/api/v1/jobs/{submitted.id}/retry")
        assert r.status_code == 409
        assert "cannot retry a job that is DONE" in r.json()["detail"]
        assert (await api.post(f"/api/v1/jobs/{submitted.id}/cancel")).status_code == 409
        assert (await api.post(f"/api/v1/jobs/{submitted.id}/resume")).status_code == 409
        assert (await api.post(f"/api/v1/queues/{QUEUE}/resume")).status_code == 409
        # Unknown job or queue: 404; bad input: 422.
        assert (await api.post("/api/v1/jobs/no-such-job/retry")).status_code == 404
        assert (await api.post("/api/v1/queues/NOPE/pause")).status_code == 404
        assert (await api.post(f"/api/v1/jobs/{submitted.id}/explode")).status_code == 404
        for body in ({}, {"not_before": "tomorrow"}, {"not_before": "2030-01-01T10:00:00"},
                     {"not_before": "2030-01-01T10:00:00Z", "colour": "red"}):
            r = await api.post(f"/api/v1/jobs/{submitted.id}/reschedule", json=body)
            assert r.status_code == 422, (body, r.text)
        r = await api.post(f"/api/v1/jobs/{submitted.id}/retry",
                           json={"not_before": "2030-01-01T10:00:00Z"})
        assert r.status_code == 422
        r = await api.post(f"/api/v1/jobs/{submitted.id}/cancel", json={"include_refused": True})
        assert r.status_code == 422 and "include_refused" in r.json()["detail"]

        # Rescheduled for tonight: NEW again, not before that time.
        tonight = (datetime.now(UTC) + timedelta(hours=6)).replace(microsecond=0)
        r = await api.post(f"/api/v1/jobs/{submitted.id}/reschedule",
                           json={"not_before": tonight.isoformat()})
        assert r.status_code == 202, r.text
        j = await job_is(submitted.id, "NEW")
        assert datetime.fromisoformat(j["not_before"]) == tonight and j["attempts"] == 0

        # Every accepted command is a JobCommandIssued fact naming its caller (queue commands
        # are keyed by queue, job commands by job: two partitions, each in order).
        records = await read_topic(bus_settings, bus_settings.topics.job_commands)
        issued = [Event.from_record(r.value, r.headers).payload for r in records]
        by_key = {k: [(Cmd.Command.Name(c.command), c.issued_by, c.reason) for c in issued
                      if (c.job_id or c.queue) == k] for k in (QUEUE, submitted.id)}
        assert by_key == {
            QUEUE: [("PAUSE_QUEUE", "api:alice", "tape library maintenance"),
                    ("RESUME_QUEUE", "api:alice", "")],
            submitted.id: [("CANCEL_JOB", "api:alice", ""), ("RETRY_JOB", "api:alice", ""),
                           ("RETRY_JOB", "api:alice", "space freed"),
                           ("RESCHEDULE_JOB", "api:alice", "")]}
        assert pause_id in {Event.from_record(r.value, r.headers).id for r in records}

        # After a restart the queue's owner adopts the job as the catalogue projected it.
        async with Publisher(bus_settings, "test-restarted") as pub:
            fresh = JobQueue(name=QUEUE, kind="STORE", owner="test-archiver", publisher=pub,
                             topics=bus_settings.topics, execute=owner.execute)
            # ... reading with its own service token, through the one catalogue client.
            token_file = tmp_path / "hsm-archiver.token"
            token_file.write_text(issuer.token(READ, subject="hsm-archiver"))
            catalogue = CatalogueClient(str(api.base_url),
                                        client=ClientSettings(token_file=token_file))
            try:
                assert await adopt_from_catalogue(fresh, catalogue) == 1
            finally:
                await catalogue.close()
        adopted = fresh.jobs[submitted.id]
        assert (adopted.state, adopted.not_before) == (JobState.NEW, tonight)

    # The journal (jobs, commands, queue facts) rebuilds the same projections.
    report = await rebuild(settings, check_only=True)
    assert report.ok, report.differences
    assert (report.rows["jobs"], report.rows["queues"]) == (1, 1)



async def test_commands_need_an_administrators_token(
        db_url: str, bus_settings: BusSettings, owner: Owner, issuer: Issuer) -> None:
    settings = with_tokens(settings_for(bus_settings, db_url, stable_after_s=3600), issuer)
    async with InProcess(settings) as svc:
        api = svc.client
        # Reads need the read scope (the archive's services have it), commands admin.
        reader = {"Authorization": f"Bearer {issuer.token(READ, subject='hsm-archiver')}"}

        async def queue_known():
            r = await api.get(f"/api/v1/queues/{QUEUE}", headers=reader)
            return r.status_code == 200 or None
        await wait_until(queue_known, "queue projected")
        refusals = {
            "no token": ({}, 401),
            "expired": ({"Authorization": f"Bearer {issuer.token(ADMIN, expires_in=-120)}"}, 401),
            "other issuer": ({"Authorization":
                              f"Bearer {issuer.token(ADMIN, issuer='https://evil.test')}"}, 401),
            "read scope only": ({"Authorization": f"Bearer {issuer.token(READ)}"}, 403),
        }
        for why, (headers, status) in refusals.items():
            r = await api.post(f"/api/v1/queues/{QUEUE}/pause", headers=headers)
            assert r.status_code == status, (why, r.text)
            assert "Bearer" in r.headers.get("www-authenticate", ""), why
        # Nothing was commanded: the queue still runs and no command fact exists.
        assert (await api.get(f"/api/v1/queues/{QUEUE}", headers=reader)).json()["state"] == "RUNNING"
        records = await read_topic(bus_settings, bus_settings.topics.job_commands)
        assert records == []
