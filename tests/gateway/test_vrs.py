"""The VR sets both readers of received bytes use agree with PS3.5 Table 7.1-1 as pydicom has it."""

from __future__ import annotations

from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR

from dicom_gateway import vrs


def test_long_vrs_are_those_with_a_32_bit_length() -> None:
    assert vrs.LONG == {str(v).encode("ascii") for v in EXPLICIT_VR_LENGTH_32}


def test_every_explicit_vr_is_long_or_short_and_has_its_text() -> None:
    explicit = {v.value.encode("ascii") for v in VR if " or " not in v.value}
    assert vrs.LONG | vrs.SHORT == explicit
    assert not vrs.LONG & vrs.SHORT
    assert vrs.TEXT == {vr: vr.decode("ascii") for vr in explicit}
