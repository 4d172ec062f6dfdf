"""Stored values as readers may pass them on: the archive never alters an object's bytes.

A modality may send a value its VR does not allow (InstanceNumber ``1£``, a DS ``abc``, a DA
``2024-13-45``). The object is kept as sent; every reader that re-encodes values (C-FIND
answers, QIDO-RS DICOM JSON, the DICOMDIR) asks ``conformant(vr, value)`` first and leaves
the attribute empty when the answer is None, instead of failing the whole answer.
"""

from __future__ import annotations

import math
import re
from datetime import date

_IS = re.compile(r"\A *[+-]?[0-9]+ *\Z")
_DS = re.compile(r"\A *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *\Z")
_DA = re.compile(r"\A([0-9]{4})([0-9]{2})([0-9]{2})\Z")
_TM = re.compile(r"\A([0-9]{2})(([0-9]{2})(([0-9]{2})(\.[0-9]{1,6})?)?)?\Z")
_DT = re.compile(r"\A[0-9]{4}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?)?)?)?"
                 r"([+-][0-9]{4})?\Z")
_INTEGER_VRS = {"US": (0, 2**16 - 1), "SS": (-(2**15), 2**15 - 1), "UL": (0, 2**32 - 1),
                "SL": (-(2**31), 2**31 - 1), "UV": (0, 2**64 - 1), "SV": (-(2**63), 2**63 - 1)}
_FLOAT_VRS = {"FL", "FD"}
# Text VRs: any text goes; control characters other than the allowed ones are dropped.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]")


def _date(text: str) -> bool:
    m = _DA.match(text)
    if not m:
        return False
    try:
        date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


def _time(text: str) -> bool:
    m = _TM.match(text)
    return bool(m) and int(m[1]) < 24 and int(m[3] or 0) < 60 and int(m[5] or 0) < 61


def _one(vr: str, value: object) -> object | None:
    if isinstance(value, bytes):
        return None
    if vr in _INTEGER_VRS:
        low, high = _INTEGER_VRS[vr]
        try:
            number = int(str(value).strip())
        except ValueError:
            return None
        return number if low <= number <= high else None
    if vr in _FLOAT_VRS:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    text = str(value)
    if vr == "IS":
        ok = len(text) <= 12 and bool(_IS.match(text)) and abs(int(text)) < 2**31
        return text.strip() if ok else None
    if vr == "DS":
        ok = len(text) <= 16 and bool(_DS.match(text)) and math.isfinite(float(text))
        return text.strip() if ok else None
    if vr == "DA":
        # a range (``20240101-20241231``) as the catalogue may echo a matching value
        ok = all(not part or _date(part) for part in text.split("-")) and text.count("-") <= 1
        return text if ok and text.strip("-") else None
    if vr == "TM":
        ok = all(not part or _time(part) for part in text.split("-")) and text.count("-") <= 1
        return text if ok and text.strip("-") else None
    if vr == "DT":
        return text if _DT.match(text) else None
    return _CONTROL.sub("", text)


def conformant(vr: str, value: object) -> object | None:
    """``value`` (or the list of values) as its VR allows it, or None when it does not
    parse; in a list, values that do not parse are dropped."""
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        items = [v for v in (conformant(vr, v) for v in value) if v is not None]
        return items or None
    if isinstance(value, str) and "\\" in value and vr not in ("LT", "ST", "UT", "UR"):
        return conformant(vr, value.split("\\"))
    return _one(vr, value)
