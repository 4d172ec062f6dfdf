"""The direct header reader gives exactly what pydicom's reader gives, for character sets,
padding, multiple values, integer strings, nested undefined-length sequences and both VR
encodings; what it leaves to pydicom (big endian, deflated) still reads the same."""

from __future__ import annotations

import warnings
from io import BytesIO

import pytest
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
    assert part10.count(b"9173") == 1
    part10 = part10.replace(b"9173", b"91x3")  # pydicom will not write a bad IS itself
    assert read_header(part10)["InstanceNumber"] == "91x3"
    assert read_header(part10) == read_header_pydicom(part10)


def in_order(ds: Dataset, syntax: str, order: list[int]) -> bytes:
    """``ds`` as a Part 10 file whose top-level elements come in ``order`` (tags), which PS3.5
    7.1 forbids unless ascending; pydicom itself always writes them sorted."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    meta_end = split_file_meta(encode(ds, syntax))[1]
    prefix = encode(ds, syntax)[:meta_end]
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
