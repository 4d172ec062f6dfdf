"""Hypothesis strategies of hostile input: mutated datasets, UIDs, multipart bodies, QIDO
parameters."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.peers.hostile import Instance, nested_sequences, never_closed, unknown_vr

MIDDLES = [b"", nested_sequences(3), nested_sequences(40), never_closed(), unknown_vr()]
VALUES = ["1", "1£", "", "abc", "2024-13-45", "9" * 40, "1\\2", " 7 "]
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@st.composite
def mutated_dataset(draw) -> tuple[Instance, bytes]:
    """A dataset (no file meta) built from hostile parts, then cut, flipped or spliced."""
    inst = Instance()
    data = bytearray(inst.dataset(draw(st.sampled_from(MIDDLES)),
                                  study_date=draw(st.sampled_from(VALUES)),
                                  InstanceNumber=draw(st.sampled_from(VALUES)),
                                  SliceThickness=draw(st.sampled_from(VALUES))))
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "vr", "length"]))
        if kind == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":  # (an empty data set is item 4's: tests/fuzz/test_dimse.py)
            del data[max(pos, 1):]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=24))
        elif kind == "vr" and pos + 2 <= len(data):
            data[pos:pos + 2] = draw(st.sampled_from([b"KS", b"SQ", b"UN", b"OB", b"\x00\x00"]))
        elif kind == "length" and pos + 4 <= len(data):
            data[pos:pos + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\xff\xff\x00\x00",
                                                      b"\x00\x00\x00\x40"]))
    return inst, bytes(data)


def command_uid(valid: str):
    """A well-formed Affected SOP Instance UID: mostly the dataset's, sometimes another.
    (Malformed ones are issue 13 item 4, decoded by the C-STORE listener:
    tests/fuzz/test_dimse.py has them in their own test.)"""
    return st.one_of(st.just(valid), st.just(valid),
                     st.from_regex(r"\A(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){1,6}\Z"))


QIDO_NAMES = ["PatientID", "PatientName", "StudyDate", "StudyTime", "StudyInstanceUID",
              "SeriesInstanceUID", "SOPInstanceUID", "Modality", "ModalitiesInStudy",
              "AccessionNumber", "InstanceNumber", "00100020", "0020000D", "limit", "offset",
              "includefield", "fuzzymatching", "emptyvaluematching", "00100010.00100020",
              "NotAKeyword", "SliceThickness", "PixelData", "ffffffff"]
QIDO_VALUES = st.one_of(
    TEXT, st.sampled_from(["*", "?", "", "-", "20240101-", "-20241231", "2024-13-45",
                           "9" * 40, "-1", "all", "true", "1.2.3,1.2.4", "1.2.3\\*",
                           "PatientID,0020000D", "%00", "\x00", "A" * 5000]),
    st.from_regex(r"\A[0-9*?\-.,\\]{0,30}\Z"))


@st.composite
def qido_query(draw) -> tuple[str, list[tuple[str, str]]]:
    path = draw(st.sampled_from(["/studies", "/series", "/instances", "/studies/1.2.3/series",
                                 "/studies/1.2.3/instances",
                                 "/studies/1.2.3/series/1.2.4/instances"]))
    names = st.one_of(st.sampled_from(QIDO_NAMES), TEXT)
    return path, draw(st.lists(st.tuples(names, QIDO_VALUES), max_size=6))
