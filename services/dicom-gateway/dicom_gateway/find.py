"""C-FIND identifiers <-> the catalogue's FindRequest / matches (never a file scan)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dicomvault.dicom.values import conformant
from dicomvault.query import ATTRIBUTES, COMPUTED, FindRequest, Level

PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
ROOTS = {PATIENT_ROOT_FIND: "PATIENT", STUDY_ROOT_FIND: "STUDY"}
SUPPORTED = {k for keys in ATTRIBUTES.values() for k in keys} | {
    k for keys in COMPUTED.values() for k in keys}
NOT_KEYS = {"QueryRetrieveLevel", "SpecificCharacterSet"}
CHARSET = "ISO_IR 192"  # the catalogue holds decoded text; answers are UTF-8
_NUMERIC_VRS = {"IS", "US", "UL", "SS", "SL", "DS", "FL", "FD"}


class BadIdentifier(ValueError):
    """The identifier does not match the information model (0xA900)."""


@dataclass
class Query:
    request: FindRequest
    identifier: Dataset  # the peer's identifier: every key in it is answered
    unsupported: list[str] = field(default_factory=list)  # matching keys we had to ignore


def _matching_value(elem: DataElement) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return str(value).strip()


def parse(identifier: Dataset, sop_class_uid: str) -> Query:
    """Turn a C-FIND identifier into a FindRequest for the catalogue."""
    root = ROOTS.get(str(sop_class_uid))
    if root is None:
        raise BadIdentifier(f"not a supported FIND model: {sop_class_uid}")
    level_text = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if not level_text:
        raise BadIdentifier("Query/Retrieve Level is missing")
    try:
        level = Level(level_text)
    except ValueError as exc:
        raise BadIdentifier(f"unknown Query/Retrieve Level {level_text!r}") from exc
    if root == "STUDY" and level is Level.PATIENT:
        raise BadIdentifier("PATIENT level is not part of the Study Root model")
    filters: dict[str, str] = {}
    return_keys: list[str] = []
    unsupported: list[str] = []
    for elem in identifier:
        keyword = elem.keyword or keyword_for_tag(elem.tag)
        if not keyword or keyword in NOT_KEYS or elem.tag.is_private:
            continue
        if elem.VR == "SQ":
            continue  # sequence keys: answered empty
        value = _matching_value(elem)
        if keyword not in SUPPORTED:
            if value not in ("", "*"):
                unsupported.append(keyword)
            continue
        return_keys.append(keyword)
        if value:
            filters[keyword] = value
    request = FindRequest(level=level, root=root, filters=filters, return_keys=return_keys)
    return Query(request=request, identifier=identifier, unsupported=unsupported)


def answer(query: Query, match: dict[str, object], retrieve_ae: str) -> Dataset:
    """One pending response: every key the peer asked for, filled where we know it."""
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    ds.QueryRetrieveLevel = query.request.level.value
    for elem in query.identifier:
        keyword = elem.keyword
        if elem.tag.is_private or keyword in NOT_KEYS or not keyword:
            continue
        if elem.VR == "SQ":
            ds.add_new(elem.tag, "SQ", [])
            continue
        vr = dictionary_VR(elem.tag)
        if keyword == "RetrieveAETitle":
            ds.add_new(elem.tag, vr, retrieve_ae)
            continue
        # a stored value its VR does not allow is answered empty, never 0xC311
        value = conformant(vr, match.get(keyword))
        ds[elem.tag] = DataElement(elem.tag, vr, "" if value is None and vr not in _NUMERIC_VRS
                                   else value, validation_mode=config.IGNORE)
    return ds
