"""The STOW-RS response (PS3.18 10.5.3): which instances were stored, with warnings, or failed.

The body is a dataset in DICOM JSON (``application/dicom+json``) or the Native DICOM Model
XML (``application/dicom+xml``). ReferencedSOPSequence (0008,1199) lists the stored
instances, each possibly with a WarningReason (0008,1196); FailedSOPSequence (0008,1198)
lists the failed ones with their FailureReason (0008,1197).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
REFERENCED_SOP_CLASS_UID = "00081150"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"

REASONS = {
    0x0110: "Processing failure",
    0x0112: "No such object instance",
    0x0117: "Invalid object instance",
    0x0119: "Class-instance conflict",
    0x0122: "Referenced SOP Class not supported",
    0x0124: "Refused: not authorized",
    0x0210: "Duplicate invocation",
    0xA700: "Refused: out of resources",
    0xA770: "Transfer syntax not supported",
    0xA900: "Error: data set does not match SOP class",
    0xB000: "Coercion of data elements",
    0xB006: "Elements discarded",
    0xB007: "Data set does not match SOP class",
    0xC000: "Error: cannot understand",
    0xC122: "Referenced transfer syntax not supported",
}


def describe(code: int | None) -> str:
    if code is None:
        return "no reason given"
    return f"0x{code:04X} {REASONS.get(code, 'unknown reason')}"


@dataclass
class StowResult:
    """Per-instance outcome of one STOW-RS response."""

    stored: list[str] = field(default_factory=list)
    warnings: dict[str, str] = field(default_factory=dict)   # sop uid -> reason
    failed: dict[str, str] = field(default_factory=dict)     # sop uid -> reason
    top_warning: str = ""


def _num(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def parse_json(body: bytes) -> StowResult:
    data = json.loads(body or b"{}")
    if isinstance(data, list):  # some servers wrap the dataset in an array
        data = data[0] if data else {}
    if not isinstance(data, dict):
        raise ValueError("STOW-RS response is not a DICOM JSON dataset")

    def values(ds: dict, tag: str) -> list:
        return (ds.get(tag) or {}).get("Value") or []

    def first(ds: dict, tag: str) -> object:
        v = values(ds, tag)
        return v[0] if v else None

    result = StowResult()
    for item in values(data, REFERENCED_SOP_SEQUENCE):
        uid = str(first(item, REFERENCED_SOP_INSTANCE_UID) or "")
        result.stored.append(uid)
        warning = _num(first(item, WARNING_REASON))
        if warning is not None:
            result.warnings[uid] = describe(warning)
    for item in values(data, FAILED_SOP_SEQUENCE):
        uid = str(first(item, REFERENCED_SOP_INSTANCE_UID) or "")
        result.failed[uid] = describe(_num(first(item, FAILURE_REASON)))
    top = _num(first(data, WARNING_REASON))
    if top is not None:
        result.top_warning = describe(top)
    return result


def parse_xml(body: bytes) -> StowResult:
    root = ET.fromstring(body)

    def attr(el: ET.Element, tag: str) -> ET.Element | None:
        for child in el:
            if child.tag.endswith("DicomAttribute") and child.get("tag", "").upper() == tag:
                return child
        return None

    def first(el: ET.Element, tag: str) -> str | None:
        a = attr(el, tag)
        if a is None:
            return None
        for v in a:
            if v.tag.endswith("Value"):
                return (v.text or "").strip()
        return None

    def items(tag: str) -> list[ET.Element]:
        a = attr(root, tag)
        return [] if a is None else [i for i in a if i.tag.endswith("Item")]

    result = StowResult()
    for item in items(REFERENCED_SOP_SEQUENCE):
        uid = first(item, REFERENCED_SOP_INSTANCE_UID) or ""
        result.stored.append(uid)
        warning = _num(first(item, WARNING_REASON))
        if warning is not None:
            result.warnings[uid] = describe(warning)
    for item in items(FAILED_SOP_SEQUENCE):
        uid = first(item, REFERENCED_SOP_INSTANCE_UID) or ""
        result.failed[uid] = describe(_num(first(item, FAILURE_REASON)))
    top = _num(first(root, WARNING_REASON))
    if top is not None:
        result.top_warning = describe(top)
    return result


def parse(content_type: str, body: bytes) -> StowResult:
    """Parse a response body by its media type (an empty body says nothing per instance)."""
    if not body.strip():
        return StowResult()
    ct = content_type.split(";")[0].strip().lower()
    if ct.endswith("xml"):
        return parse_xml(body)
    return parse_json(body)
