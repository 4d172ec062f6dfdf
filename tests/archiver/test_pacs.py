"""PACS Store and Remember with Orthanc as the external PACS: C-STORE there, C-MOVE back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomvault.bus.broker import free_port
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.store import FileStore
from tests.archiver.helpers import GatewayStandIn
from tests.peers.cache import cache_study, publish
from tests.peers.datasets import dataset_bytes
from tests.peers.orthanc import Orthanc
from tests.peers.wait import wait_until

from .conftest import make_settings, running, stable


@pytest.fixture
def gateway() -> Iterator[GatewayStandIn]:
    g = GatewayStandIn().start()
    yield g
    g.stop()


@pytest.fixture
def orthanc(tmp_path: Path, gateway: GatewayStandIn) -> Iterator[Orthanc]:
    # As a PACS administrator would: our gateway is the move destination, and the archiver's
    # calling AE is a known modality (Orthanc refuses C-MOVE requests from unknown AEs).
    o = Orthanc(tmp_path / "orthanc", aet="ORTHANC",
                modalities={"vault": (gateway.aet, "127.0.0.1", gateway.port),
                            "vault-archiver": ("VAULTARC", "127.0.0.1", free_port())}).start()
    yield o
    o.stop()


async def test_store_to_orthanc_then_recall_by_c_move(bus_settings, catalogue, orthanc,
                                                      gateway, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, data = await cache_study(bus_settings, cache, tmp_path / "in", catalogue,
                                    series=2, per_series=4)
    archive = {"id": "PACS1", "kind": "pacs", "rules": [{}],
               "retry": {"max_retries": 5, "initial_delay_s": 0.2, "max_delay_s": 1},
               "readiness_interval_s": 0.2,
               "pacs": {"ae_title": orthanc.aet, "host": "127.0.0.1",
                        "port": orthanc.dicom_port, "calling_ae": "VAULTARC",
                        "associations": 2, "move_destination": gateway.aet, "timeout_s": 30}}
    settings = make_settings(bus_settings, cache, catalogue.url, [archive])
    async with running(settings):
        # STORE: every instance is C-STOREd to Orthanc, then the study is remembered there.
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: [a for a in catalogue.of_type(ev.StudyArchived)
                                  if a.tier == "pacs"], what="StudyArchived(pacs)")
        fact = catalogue.of_type(ev.StudyArchived)[0]
        assert (fact.archive_id, fact.location, fact.verified) == ("PACS1", orthanc.aet, True)
        assert dict(zip(fact.sop_instance_uids, fact.sha256s, strict=True)) == {
            k.split("/")[-1][:-4]: hashlib.sha256(v).hexdigest() for k, v in data.items()}
        # Orthanc's REST API: every instance arrived, its data set byte for byte.
        at_orthanc = orthanc.files_by_sop_uid()
        assert sorted(at_orthanc) == sorted(study.sop_uids)
        assert {sop: dataset_bytes(raw) for sop, raw in at_orthanc.items()} == {
            k.split("/")[-1][:-4]: dataset_bytes(v) for k, v in data.items()}
        # The study is evicted locally ...
        for key in data:
            FileStore(cache).delete(key)
        # ... and recalled: C-MOVE from Orthanc to our gateway (here its stand-in).
        await publish(bus_settings, ev.RecallRequested(study_instance_uid=study.study_uid,
                                                       requested_by="VIEWER"), study.study_uid)
        await wait_until(lambda: catalogue.of_type(ar.StudyRecalled),
                         what="StudyRecalled")
    recalled = catalogue.of_type(ar.StudyRecalled)[0]
    assert (recalled.tier, recalled.archive_id) == ("pacs", "PACS1")
    assert recalled.number_of_instances == len(data) and recalled.failed == 0
    # Byte-identical data sets came back (the file meta group is each receiver's own).
    by_sop = {k.split("/")[-1][:-4]: dataset_bytes(v) for k, v in data.items()}
    assert gateway.received == by_sop
    await wait_until(lambda: catalogue.job_states("PACS1") == ["DONE"], what="store job DONE")
    await wait_until(lambda: catalogue.job_states("PACS1-retrieve") == ["DONE"],
                     what="retrieve job DONE")


async def test_pacs_queue_stalls_while_the_remote_ae_is_down(bus_settings, catalogue,
                                                             tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    study, _ = await cache_study(bus_settings, cache, tmp_path / "in", catalogue,
                                 series=1, per_series=2)
    dead = free_port()  # nothing listens there
    archive = {"id": "PACS1", "kind": "pacs", "rules": [{}], "readiness_interval_s": 0.2,
               "pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": dead,
                        "timeout_s": 5}}
    settings = make_settings(bus_settings, cache, catalogue.url, [archive])
    async with running(settings):
        await publish(bus_settings, stable(study), study.study_uid)
        await wait_until(lambda: catalogue.queues.get("PACS1", {}).get("state") == "STALLED")
        assert "C-ECHO" in catalogue.queues["PACS1"]["reason"]
    await wait_until(lambda: catalogue.job_states("PACS1") == ["NEW"], what="the job waiting")
