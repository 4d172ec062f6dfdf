"""Fuzzing the DIMSE door: hostile C-STOREs through real associations (raw command sets)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import COUNTS, budget
from tests.fuzz.conftest import check_survived, outside_files
from tests.fuzz.dimse import RawStoreClient
from tests.fuzz.strategies import command_uid, mutated_dataset
from tests.gateway.dicomweb_peers import AE_TITLE, MODALITY, WebArchive
from tests.peers.hostile import SC, Instance

# The status a C-STORE may get (PS3.4 B.2.3 and docs/gateway.md); anything else is a bug.
DEFINED = {0x0000, 0x0111, 0xA700, 0xA701, 0xA900, 0xC000, 0xC001, 0x0122, 0x0124, 0xC124}


def test_c_store_fuzz(archive: WebArchive) -> None:
    before = outside_files(archive)
    acknowledged: set[str] = set()
    counts = COUNTS.setdefault("DIMSE C-STORE", Counter())
    client = RawStoreClient(archive.dimse_port, MODALITY, AE_TITLE)

    @budget(in_suite=100)
    @given(case=mutated_dataset(), data=st.data())
    def one(case, data) -> None:
        inst, dataset = case
        sop = data.draw(command_uid(inst.sop))
        answer = client.store(dataset, SC, sop)
        # A status or an A-ABORT within seconds: never silence.
        assert answer.defined, (sop, dataset[:200])
        assert answer.status is None or answer.status in DEFINED, hex(answer.status)
        counts["abort" if answer.status is None else f"0x{answer.status:04X}"] += 1
        if answer.status == 0:
            acknowledged.add(sop)

    try:
        one()
        # A valid C-STORE afterwards still works.
        inst = Instance()
        assert client.store(inst.dataset(), SC, inst.sop).status == 0
        acknowledged.add(inst.sop)
    finally:
        client.close()
    check_survived(archive, acknowledged, before)


def test_item4_malformed_command_sets_get_an_answer(archive: WebArchive) -> None:
    """Issue 13 item 4: an empty, over-long or malformed Affected SOP Instance UID, an
    unknown or empty Affected SOP Class UID, or a data set that never comes gets a failure
    status (0xA900/0xC000, 0x0122) or an A-ABORT (after dimse_timeout_s), never silence.
    pynetdicom's listener dropped such command sets; the storage fast path answers them."""
    client = RawStoreClient(archive.dimse_port, MODALITY, AE_TITLE)
    answers = {}
    try:
        for name, sop_class, sop in [("empty SOP Instance UID", SC, ""),  # item 4
                                     ("65-character SOP Instance UID", SC, "1." + "2" * 63),
                                     ("path-like SOP Instance UID", SC, "../../x"),  # item 4
                                     ("SOP Instance UID with '..'", SC, "1..2"),  # item 4
                                     ("SOP Instance UID with a space", SC, " 1.2.3"),
                                     ("SOP Instance UID with a newline", SC, "1.2.3\n"),
                                     ("unknown SOP Class", "1.2.3.4", None),  # item 4
                                     ("empty SOP Class", "", None),  # item 4
                                     ("empty data set", SC, None)]:  # item 4
            inst = Instance()
            answers[name] = client.store(b"" if name == "empty data set" else inst.dataset(),
                                         sop_class, inst.sop if sop is None else sop)
    finally:
        client.close()
    assert all(a.defined for a in answers.values()), [(n, a) for n, a in answers.items() if not a.defined]
