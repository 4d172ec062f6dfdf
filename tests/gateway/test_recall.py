"""A retrieve of instances that are not in the cache: the gateway asks for their recall on the
real broker (RecallRequested), waits a bounded time sending Pending responses, sends what
arrives, and fails the rest with a status and comment that say why — never an empty Success."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from dicom_gateway import statuses as st
from dicomvault.bus import Publisher
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings
from tests.gateway import retrieve_peers
from tests.gateway.conftest import AE_TITLE, read_events, sample
from tests.gateway.retrieve_peers import (
    DESTINATION,
    RETRIEVER,
    error_comment,
    final_status,
    modalities,
    movescu,
    stored_study,
)

catalogue = retrieve_peers.catalogue  # fixtures
storescp = retrieve_peers.storescp

TYPE = "dicomvault.study.recall-requested.v1"


async def archived_on_hsm(bus: BusSettings, catalogue_url: str, study) -> None:
    """The study also has a verified copy on the HSM tier (as the HSM archiver reports it)."""
    msg = ev.StudyArchived(study_instance_uid=study.study_uid, tier="hsm", archive_id="HSM1",
                           location="/hsm/x", number_of_instances=len(study.sop_uids),
                           sop_instance_uids=study.sop_uids, verified=True)
    async with Publisher(bus, "test") as pub:
        await pub.publish(bus.topics.studies, Event(payload=msg, source="dicomvault/test",
                                                    subject=study.study_uid))
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            r = await http.get(f"{catalogue_url}/api/v1/studies/{study.study_uid}")
            if any(loc["tier"] == "hsm" for loc in r.json().get("study_locations", [])):
                return
            await asyncio.sleep(0.2)
    raise AssertionError("the catalogue never recorded the hsm copy")


async def test_missing_instances_are_recalled_and_fail_visibly(
        start_gateway, catalogue, storescp, bus_settings: BusSettings, tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(storescp.port),
                       recall_wait_s=2.0)
    study = stored_study(gw, catalogue, tmp_path / "sent", series=1, per_series=3)
    await archived_on_hsm(bus_settings, catalogue, study)
    before = gw.metrics()  # the registry is per process: count what this test adds
    # One instance's cache file is gone (evicted, lost): the catalogue still lists it.
    missing = study.sop_uids[1]
    [path] = [p for p in gw.files() if p.stem == missing]
    path.unlink()

    # The study is moved: two instances arrive, the third fails after the recall wait.
    rc, out = await asyncio.to_thread(movescu, gw.port, "QueryRetrieveLevel=STUDY",
                                      f"StudyInstanceUID={study.study_uid}")
    assert final_status(out) == st.SUBOPS_WARNING, out
    assert error_comment(out) == "study is being recalled from hsm, retry later", out
    assert f"[{missing}]" in out  # FailedSOPInstanceUIDList
    assert set(storescp.received()) == set(study.sop_uids) - {missing}

    # A recall was asked for on the studies topic, keyed by the study, naming the instance.
    events = await read_events(bus_settings, bus_settings.topics.studies, expected=2)
    recalls = [e for e in events if e.type == TYPE]
    assert len(recalls) == 1
    recall = recalls[0].payload
    assert recall.study_instance_uid == study.study_uid and recalls[0].subject == study.study_uid
    assert recall.requested_by == RETRIEVER and list(recall.sop_instance_uids) == [missing]

    # Only the missing instance asked for: nothing could be sent, 0xA702 with the reason.
    rc, out = await asyncio.to_thread(
        movescu, gw.port, "QueryRetrieveLevel=IMAGE", f"StudyInstanceUID={study.study_uid}",
        f"SeriesInstanceUID={next(iter(study.series))}", f"SOPInstanceUID={missing}")
    assert final_status(out) == st.SUBOPS_FAILED, out
    assert error_comment(out) == "study is being recalled from hsm, retry later", out
    after = gw.metrics()
    for name, labels, added in (
            ("dicomvault_gateway_recall_requests_total", {"outcome": "published"}, 2),
            ("dicomvault_gateway_retrieve_suboperations_total", {"operation": "move", "outcome": "failed"},
             2),
            ("dicomvault_gateway_retrieve_requests_total", {"operation": "move", "status": "0xB000"}, 1),
            ("dicomvault_gateway_retrieve_requests_total", {"operation": "move", "status": "0xA702"}, 1)):
        assert sample(after, name, **labels) - sample(before, name, **labels) == added, name


async def test_an_instance_recalled_during_the_wait_is_sent(
        start_gateway, catalogue, storescp, tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(storescp.port),
                       recall_wait_s=30.0)
    study = stored_study(gw, catalogue, tmp_path / "sent", series=1, per_series=2)
    missing = study.sop_uids[0]
    [path] = [p for p in gw.files() if p.stem == missing]
    saved = path.read_bytes()
    path.unlink()

    # The recall puts the file back into the cache a moment after the gateway sent what it
    # had and began to wait (timed from there, not from the start of movescu).
    def recall() -> None:
        deadline = time.monotonic() + 60
        while not any(storescp.folder.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.0)
        path.write_bytes(saved)

    restorer = threading.Thread(target=recall)
    restorer.start()
    started = time.monotonic()
    rc, out = await asyncio.to_thread(movescu, gw.port, "QueryRetrieveLevel=STUDY",
                                      f"StudyInstanceUID={study.study_uid}")
    restorer.join()
    assert final_status(out) == st.SUCCESS, out
    assert set(storescp.received()) == set(study.sop_uids)
    assert time.monotonic() - started < 30  # it did not wait out the whole recall_wait_s
    assert out.count("0xff00: Pending") >= 3, out  # kept informed while waiting


def test_cancel_while_waiting_for_a_recall(start_gateway, catalogue, storescp,
                                           tmp_path: Path) -> None:
    gw = start_gateway(catalogue_url=catalogue, modalities=modalities(storescp.port),
                       recall_wait_s=60.0)
    study = stored_study(gw, catalogue, tmp_path / "sent", series=1, per_series=2)
    for path in gw.files():
        path.unlink()  # nothing of the study is in the cache any more

    # A viewer asks for the study, sees Pending responses, and cancels.
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study.study_uid
    ae = AE(ae_title=RETRIEVER)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", gw.port, ae_title=AE_TITLE)
    assert assoc.is_established
    started = time.monotonic()
    statuses = []
    try:
        for status, _ in assoc.send_c_move(identifier, DESTINATION,
                                           StudyRootQueryRetrieveInformationModelMove):
            statuses.append(int(status.Status))
            if int(status.Status) == st.PENDING and len(statuses) == 1:
                assoc.send_c_cancel(1, query_model=StudyRootQueryRetrieveInformationModelMove)
            final = status
    finally:
        assoc.release()
        ae.shutdown()
    assert statuses[-1] == st.CANCEL, statuses
    assert final.NumberOfCompletedSuboperations == 0
    assert final.NumberOfRemainingSuboperations == 2
    assert time.monotonic() - started < 30  # it stopped waiting when told to
    assert storescp.received() == {}
