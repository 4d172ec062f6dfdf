"""C-STOREs from a remote PACS listed in ``recall_aes``: our own study coming back is recorded
as a recall (source ``recall``), replaces the cache copy whatever the duplicate policy, and is
a new fact each time it comes back; such an AE may only store unless the table says more."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicom_gateway import statuses as st
from dicom_gateway.modalities import Modalities, Operation
from dicom_gateway.settings import GatewaySettings
from dicomvault.events.v1 import events_pb2 as ev
from tests.gateway.conftest import MODALITY, association, read_events, send_files
from tests.peers.datasets import write_study

PACS = "LONGTERM"


def test_recall_aes_may_associate_and_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMVAULT_GATEWAY__RECALL_AES", '["LONGTERM", "OTHERPACS"]')
    monkeypatch.setenv("DICOMVAULT_GATEWAY__MODALITIES",
                       '{"OTHERPACS": {"host": "127.0.0.1", "port": 104, "may_store": false}}')
    m = Modalities(GatewaySettings().gateway)
    assert m.calling_aes() == ["LONGTERM", "OTHERPACS"]
    assert m.is_recall("LONGTERM") and not m.is_recall(MODALITY)
    # Only in recall_aes: store, nothing else, and no C-MOVE destination.
    assert m.permitted("LONGTERM", Operation.STORE)
    assert not any(m.permitted("LONGTERM", op) for op in (
        Operation.QUERY, Operation.RETRIEVE, Operation.COMMITMENT))
    assert m.destination("LONGTERM") is None
    # Also in the table: it stores (it is a recall source) and keeps the table's other rights.
    assert m.permitted("OTHERPACS", Operation.STORE)
    assert m.permitted("OTHERPACS", Operation.RETRIEVE)
    assert m.destination("OTHERPACS") is not None


async def test_recalled_instance_replaces_the_cache_copy(start_gateway, tmp_path: Path) -> None:
    gw = start_gateway(recall_aes=[PACS])  # duplicate_policy: reject (the default)
    settings: GatewaySettings = gw.settings
    study = write_study(tmp_path / "study", series=1, per_series=1)
    (original,) = study.files
    assert send_files(gw.port, [original]) == [st.SUCCESS]
    # The remote PACS sends it back encoded differently (same UIDs, other bytes).
    ds = dcmread(original)
    ds.StudyDescription = "as the remote PACS keeps it"
    changed = tmp_path / "changed.dcm"
    ds.save_as(changed, enforce_file_format=True)
    # From the modality, other bytes are a duplicate under "reject"; from the PACS a recall.
    assert send_files(gw.port, [changed]) == [st.DUPLICATE_SOP_INSTANCE]
    assert send_files(gw.port, [changed], calling_ae=PACS) == [st.SUCCESS]
    (stored,) = gw.files()
    assert dcmread(stored).StudyDescription == "as the remote PACS keeps it"
    # Back again with the same bytes (after an eviction, say): Success, and a new fact.
    stored.unlink()
    assert send_files(gw.port, [changed], calling_ae=PACS) == [st.SUCCESS]
    events = await read_events(settings.bus, settings.bus.topics.instances, 3)
    msgs = [(e.payload.source, e.payload.calling_ae) for e in events]
    assert msgs == [("dimse", MODALITY), ("recall", PACS), ("recall", PACS)]
    assert isinstance(events[1].payload, ev.InstanceStored)
    assert events[1].payload.sha256 == events[2].payload.sha256
    assert len({e.id for e in events}) == 3
    # The PACS may store here, nothing more: its C-FIND is not permitted.
    with association(gw.port, PACS, [(StudyRootQueryRetrieveInformationModelFind,
                                      ["1.2.840.10008.1.2.1"])]) as assoc:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ""
        statuses = [int(s.Status) for s, _ in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind)]
    assert statuses == [st.NOT_PERMITTED]
