"""Parsing STOW-RS response datasets: DICOM JSON and Native DICOM Model XML."""

from __future__ import annotations

from stow_exporter.stowresponse import parse
from tests.exporter.servers import _ds_json

XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">
  <DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081150" vr="UI"><Value number="1">1.2.840.10008.5.1.4.1.1.2</Value></DicomAttribute>
      <DicomAttribute tag="00081155" vr="UI"><Value number="1">1.2.3.1</Value></DicomAttribute>
      <DicomAttribute tag="00081196" vr="US"><Value number="1">45056</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
  <DicomAttribute tag="00081198" vr="SQ" keyword="FailedSOPSequence">
    <Item number="1">
      <DicomAttribute tag="00081155" vr="UI"><Value number="1">1.2.3.2</Value></DicomAttribute>
      <DicomAttribute tag="00081197" vr="US"><Value number="1">290</Value></DicomAttribute>
    </Item>
  </DicomAttribute>
</NativeDicomModel>"""


def test_json_failed_and_warnings():
    body = _ds_json([("1.2.840.10008.5.1.4.1.1.2", "1.2.3.1", 0xB007),
                     ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.3", None)],
                    [("1.2.840.10008.5.1.4.1.1.2", "1.2.3.2", 0xC000)])
    r = parse("application/dicom+json; charset=utf-8", body)
    assert r.stored == ["1.2.3.1", "1.2.3.3"]
    assert r.warnings == {"1.2.3.1": "0xB007 Data set does not match SOP class"}
    assert r.failed == {"1.2.3.2": "0xC000 Error: cannot understand"}


def test_xml_failed_and_warnings():
    r = parse("application/dicom+xml", XML)
    assert r.stored == ["1.2.3.1"]
    assert r.warnings == {"1.2.3.1": "0xB000 Coercion of data elements"}
    assert r.failed == {"1.2.3.2": "0x0122 Referenced SOP Class not supported"}


def test_empty_and_array_bodies():
    assert parse("application/dicom+json", b"").stored == []
    wrapped = b"[" + _ds_json([("1.2", "1.2.3.9", None)], []) + b"]"
    assert parse("application/dicom+json", wrapped).stored == ["1.2.3.9"]
