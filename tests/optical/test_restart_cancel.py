"""The optical-burner service across a restart: a RETRIEVE job cancelled while the burner is
down (the command waits on the job-commands topic) leaves no media request behind, in the
catalogue (``/api/v1/media-requests``) or in the burner's own API, whichever way the restarted
burner learns of it (the adopted job re-asks for the disc and is then cancelled; or the
cancel is applied first and ``StaleRequests`` withdraws the catalogue's request)."""

from __future__ import annotations

from pathlib import Path

import httpx

from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.events.v1 import optical_pb2 as op
from dicomvault.store import FileStore
from tests.optical.helpers import (  # noqa: F401 - real_catalogue, service_settings: fixtures
    RETRIEVE,
    STORE,
    command,
    real_catalogue,
    running,
    service_settings,
    stable,
    verified,
    wait_until,
)
from tests.peers.cache import cache_study, publish

LABEL = "DVD-000001"


async def test_a_retrieve_cancelled_while_the_burner_is_down_leaves_no_request(
        bus_settings, catalogue, settings, tmp_path: Path) -> None:
    cache = FileStore(settings.cache.root, fsync=False)
    study, data = await cache_study(bus_settings, settings.cache.root, tmp_path / "ct",
                                    catalogue)
    uid = study.study_uid

    async with running(settings) as http:
        await publish(bus_settings, stable(study), uid)
        await wait_until(lambda: catalogue.job_states(STORE) == ["DONE"], "the STORE job")
        await verified(http, LABEL)
        assert (await http.post(f"/api/v1/volumes/{LABEL}/release")).status_code == 200
        for key in data:
            cache.delete(key)
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=uid,
                                                       requested_by="VIEWER"), uid)
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["WAITING"],
                         "a WAITING retrieve job")
        await wait_until(lambda: catalogue.media_requests() == [(LABEL, [uid])],
                         "the catalogue's media request")

    # The burner is down when the administrator cancels the job: the command waits on the
    # job-commands topic and the catalogue still shows "insert volume DVD-000001".
    (job,) = catalogue.queue_jobs(RETRIEVE)
    await command(catalogue, f"/api/v1/jobs/{job['job_id']}/cancel", reason="viewer closed")
    assert catalogue.media_requests() == [(LABEL, [uid])]

    async with running(settings) as http:
        await wait_until(lambda: catalogue.job_states(RETRIEVE) == ["CANCELLED"],
                         "the job CANCELLED")
        await wait_until(lambda: catalogue.media_requests() == [], "the request withdrawn")
        await wait_until(lambda: httpx.get(f"http://127.0.0.1:{settings.http.port}"
                                           "/api/v1/media-requests", timeout=10).json() == [],
                         "the burner's own view empty")
    withdrawn = catalogue.of_type(op.MediaRequestWithdrawn)
    assert {(w.label, w.study_instance_uid) for w in withdrawn} == {(LABEL, uid)}
    assert catalogue.job_states(RETRIEVE) == ["CANCELLED"]
