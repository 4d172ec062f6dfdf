"""The DICOM JSON model (PS3.18 F.2) for DICOMweb answers, via pydicom datasets."""

from __future__ import annotations

import json

from fastapi.responses import Response
from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from dicomvault.dicom.values import conformant

MEDIA_TYPE = "application/dicom+json"
CHARSET = "ISO_IR 192"


def keyword(name: str) -> str | None:
    """A keyword (``PatientID``) or a tag (``00100020``) as a dictionary keyword, else None."""
    name = name.strip()
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        try:
            return keyword_for_tag(Tag(int(name, 16))) or None
        except (ValueError, OverflowError):
            return None
    return name if tag_for_keyword(name) is not None else None


def dataset(values: dict[str, object]) -> Dataset:
    """A dataset of ``keyword -> value`` (catalogue matches), VRs from the dictionary; keys
    without a value are present with no Value (PS3.18 F.2.5). A stored value its VR does not
    allow (InstanceNumber ``1£``) is answered as no Value, never as an error
    (docs/conformance.md, "Values that do not conform")."""
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    for kw, value in values.items():
        tag = tag_for_keyword(kw)
        if tag is None:
            continue
        vr = dictionary_VR(tag)
        ds[tag] = DataElement(tag, vr, conformant(vr, value), validation_mode=config.IGNORE)
    return ds


def to_json(datasets: list[Dataset]) -> bytes:
    return json.dumps([d.to_json_dict(suppress_invalid_tags=True) for d in datasets]).encode()


def response(datasets: list[Dataset] | Dataset, status_code: int = 200,
             headers: dict[str, str] | None = None) -> Response:
    if isinstance(datasets, Dataset):
        body = json.dumps(datasets.to_json_dict(suppress_invalid_tags=True)).encode()
    else:
        body = to_json(datasets)
    return Response(body, status_code=status_code, media_type=MEDIA_TYPE, headers=headers)
