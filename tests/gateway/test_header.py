"""The direct header reader gives exactly what pydicom's reader gives, for character sets,
padding, multiple values, integer strings, nested undefined-length sequences and both VR
encodings; what it leaves to pydicom (big endian, deflated) still reads the same."""

from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from dicom_gateway import header
from dicom_gateway.part10 import (
    HEADER_TAGS,
    Malformed,
    TooLarge,
    check_framing,
    read_header,
    read_header_pydicom,
    split_file_meta,
)
from tests.peers.datasets import ROOT, make_instance

WANTED = header.wanted(HEADER_TAGS)


@pytest.fixture(autouse=True)
def lenient_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the gateway runs: odd values from peers are read, not warned about (listener.py)."""
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.IGNORE)
    monkeypatch.setattr(config.settings, "writing_validation_mode", config.IGNORE)


def nested_sequence() -> Sequence:
    inner = Dataset()
    inner.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    inner.ReferencedSOPInstanceUID = generate_uid(ROOT)
    inner.is_undefined_length_sequence_item = True
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    item.ReferencedSOPInstanceUID = generate_uid(ROOT)
    item.ReferencedPerformedProcedureStepSequence = Sequence([inner])
    item["ReferencedPerformedProcedureStepSequence"].is_undefined_length = True
    item.is_undefined_length_sequence_item = True
    return Sequence([item])


VARIANTS = {
    "latin-1": {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller^Jürgen",
                "InstitutionName": "Hôpital Saint-Éloi", "StudyDescription": "  Thorax  "},
    "utf-8": {"SpecificCharacterSet": "ISO_IR 192", "PatientName": "山田^太郎",
              "ReferringPhysicianName": "Łukasz^Żółw", "StationName": "CT-ÜÖ"},
    "iso-2022-jp": {"SpecificCharacterSet": ["", "ISO 2022 IR 87"],
                    "PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"},
    "padding-and-integers": {"PatientID": " 123 ", "AccessionNumber": "A1   ",
                             "InstanceNumber": " 7 ", "SeriesNumber": "+3",
                             "NumberOfFrames": "2.0", "StudyTime": "101010.5 "},
    "multi-valued": {"SpecificCharacterSet": ["ISO_IR 100", "ISO_IR 100"],
                     "PatientName": ["Doe^John", "Roe^Jane"], "NumberOfFrames": "007"},
    "empty-values": {"PatientName": "", "PatientSex": "", "NumberOfFrames": "",
                     "IssuerOfPatientID": ""},
    "nested-undefined-sequences": {"ReferencedStudySequence": nested_sequence()},
    "backslashes": {"StudyDescription": "Head \\Neck ", "PatientName": "A^B\\C^D ",
                    "AccessionNumber": "X1\\Y2", "StationName": "S1 \\ S2"},
}
# Bytes the declared character set cannot decode, a character set pydicom does not know:
# pydicom warns and falls back (replacement characters, the default encoding); so must the
# direct reader.
WARNED = {
    "undecodable-utf-8": {"SpecificCharacterSet": "ISO_IR 192",
                          "PatientName": b"M\xfcller^J\xfcrgen", "StationName": b"CT\xff01"},
    "unknown-character-set": {"SpecificCharacterSet": "ISO_IR 999", "PatientName": "Doe^John",
                              "InstitutionName": "General"},
}


def encode(ds: Dataset, syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def instance(variant: str) -> Dataset:
    ds = make_instance(study_uid=generate_uid(ROOT), series_uid=generate_uid(ROOT), size=8,
                       modality="CT")
    for name, value in {**VARIANTS, **WARNED}[variant].items():
        setattr(ds, name, value)
    if variant == "nested-undefined-sequences":
        ds["ReferencedStudySequence"].is_undefined_length = True
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_direct_reader_equals_pydicom(variant: str, syntax: str) -> None:
    part10 = encode(instance(variant), syntax)
    meta, offset = split_file_meta(part10)
    # The direct reader really reads these (not a silent fall back to pydicom) …
    assert header.read(part10, offset, meta["TransferSyntaxUID"], WANTED) is not None
    # … and gives exactly pydicom's answer.
    assert read_header(part10) == read_header_pydicom(part10)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("variant", sorted(WARNED))
def test_undecodable_values_read_as_pydicom_reads_them(variant: str, syntax: str) -> None:
    # pydicom warns when it writes and reads these (the direct reader once per character
    # set: its conversion is cached); the values are what count.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        part10 = encode(instance(variant), syntax)
        meta, offset = split_file_meta(part10)
        direct = header.read(part10, offset, meta["TransferSyntaxUID"], WANTED)
        theirs = read_header_pydicom(part10)
    assert direct is not None
    assert {k: v for k, v in theirs.items() if k in direct} == direct
    if variant == "undecodable-utf-8":
        assert "\ufffd" in direct["PatientName"] and "\ufffd" in direct["StationName"]


@pytest.mark.parametrize("syntax", [ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_other_encodings_are_left_to_pydicom(syntax: str) -> None:
    part10 = encode(instance("latin-1"), syntax)
    meta, offset = split_file_meta(part10)
    assert header.read(part10, offset, meta["TransferSyntaxUID"], WANTED) is None
    assert read_header(part10)["PatientName"] == "Müller^Jürgen"


def test_invalid_integer_string_reads_as_sent_on_both_readers() -> None:
    ds = instance("padding-and-integers")
    ds.InstanceNumber = "9173"
    part10 = encode(ds, ExplicitVRLittleEndian)
    # The whole element (tag, VR, length, value): the digits alone may occur in a random UID.
    element = b"\x20\x00\x13\x00IS\x04\x00"
    assert part10.count(element + b"9173") == 1
    part10 = part10.replace(element + b"9173", element + b"91x3")  # pydicom writes no bad IS
    assert read_header(part10)["InstanceNumber"] == "91x3"
    assert read_header(part10) == read_header_pydicom(part10)


def in_order(ds: Dataset, syntax: str, order: list[int]) -> bytes:
    """``ds`` as a Part 10 file whose top-level elements come in ``order`` (tags), which PS3.5
    7.1 forbids unless ascending; pydicom itself always writes them sorted."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    sorted_file = encode(ds, syntax)
    prefix = sorted_file[:split_file_meta(sorted_file)[1]]
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, syntax == ImplicitVRLittleEndian
    for tag in order:
        write_data_element(out, ds[tag])
    return prefix + out.getvalue()


PATIENT_ID, PATIENT_NAME, ROWS, PIXELS = 0x00100020, 0x00100010, 0x00280010, 0x7FE00010


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("case", ["late-patient-id", "rows-first", "patient-id-after-pixels",
                                  "patient-name-twice"])
def test_elements_out_of_order_read_as_pydicom_reads_them(case: str, syntax: str) -> None:
    """A sender that puts a wanted element after a higher tag (or repeats one) still gets its
    values catalogued as pydicom reads them, not lost where the walk once stopped early."""
    ds = instance("latin-1")
    tags = sorted(int(t) for t in ds.keys())
    if case == "late-patient-id":  # after (0028,0010), before the pixel data
        tags.remove(PATIENT_ID)
        tags.insert(tags.index(PIXELS), PATIENT_ID)
    elif case == "rows-first":
        tags.remove(ROWS)
        tags.insert(0, ROWS)
    elif case == "patient-id-after-pixels":  # pydicom stops at the pixel data: not read
        tags.remove(PATIENT_ID)
        tags.append(PATIENT_ID)
    else:
        tags.insert(tags.index(PATIENT_NAME) + 1, PATIENT_NAME)
    part10 = in_order(ds, syntax, tags)
    assert read_header(part10) == read_header_pydicom(part10)
    expected = "" if case == "patient-id-after-pixels" else ds.PatientID
    assert read_header(part10)["PatientID"] == expected
    assert read_header(part10)["PatientName"] == "Müller^Jürgen"


@lru_cache(maxsize=1)
def seeds() -> list[tuple[str, bytes]]:
    return [(syntax, encode(instance(variant), syntax)) for variant in sorted(VARIANTS)
            for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)]


EDITS = st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                           st.sampled_from(["flip", "cut", "insert", "overwrite", "end"]),
                           st.binary(min_size=1, max_size=8)), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 * len(VARIANTS) - 1), edits=EDITS)
def test_mutated_data_sets_read_as_pydicom_reads_them(seed: int, edits) -> None:
    """Bytes flipped, cut, inserted or overwritten anywhere in the data set: what passes the
    framing check has the header pydicom reads (or neither reader takes it), never another
    exception."""
    syntax, part10 = seeds()[seed]
    start = split_file_meta(part10)[1]
    data = bytearray(part10)
    for where, kind, chunk in edits:
        pos = start + int(where * (len(data) - start))
        if kind == "flip":
            data[pos:pos + 1] = chunk[:1]
        elif kind == "cut":
            del data[pos:pos + len(chunk) * 2]
        elif kind == "insert":
            data[pos:pos] = chunk
        elif kind == "overwrite":
            data[pos:pos + len(chunk)] = chunk
        else:
            del data[pos:]
    mutated = bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            check_framing(memoryview(mutated)[start:], syntax, 10 * len(mutated))
        except (Malformed, TooLarge):
            return  # refused before the header is read (0xC000 / 0xA700)
        ours = theirs = None
        with contextlib.suppress(Malformed):
            ours = read_header(mutated)
        with contextlib.suppress(Malformed):
            theirs = read_header_pydicom(mutated)
    assert (ours is None) == (theirs is None), (ours, theirs)
    assert ours == theirs


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_uids_are_read_as_sent_on_both_readers(syntax: str) -> None:
    """pydicom's UID strips surrounding whitespace; the header keeps it on both paths (the
    direct reader for little endian, pydicom for big endian), so the UID check refuses
    " 1.2.3" whichever way the object came instead of storing it as "1.2.3"."""
    ds = instance("latin-1")
    sop = ds.SOPInstanceUID
    ds.SOPInstanceUID = "9" * len(sop)  # a placeholder of the same length, replaced below
    part10 = encode(ds, syntax)
    start = split_file_meta(part10)[1]  # the file meta group names it too: left alone
    assert part10[start:].count(b"9" * len(sop)) == 1
    part10 = part10[:start] + part10[start:].replace(b"9" * len(sop), b" " + sop[1:].encode())
    assert read_header(part10)["SOPInstanceUID"] == " " + sop[1:]
    assert read_header(part10) == read_header_pydicom(part10)
