"""DICOM UID validation (PS3.5 §9.1) and the storage keys built only from valid UIDs."""

from __future__ import annotations

import re

# Components are digits, no leading zero unless the component is "0"; at most 64 chars.
# \A…\Z, not ^…$: "$" also matches before a trailing newline ("1.2.3\n" is no UID).
_UID = re.compile(r"\A(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z", re.ASCII)


class InvalidUID(ValueError):
    """A UID that is missing, too long or not of the form digits[.digits]…"""


# Valid UIDs seen lately. A C-STORE's SOP Instance UID is checked five times on its way (the
# command, the header, the storage key, the response) and its study's UIDs at every instance:
# a set lookup instead of the regular expression each time after the first (~0.1 against
# ~1 µs). Only valid UIDs are kept, at most _SEEN_MAX, forgotten all at once when full.
_seen: set[str] = set()
_SEEN_MAX = 4096


def is_valid_uid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    if value in _seen:
        return True
    if 0 < len(value) <= 64 and _UID.match(value):
        if len(_seen) >= _SEEN_MAX:
            _seen.clear()
        _seen.add(value)
        return True
    return False


def validate_uid(value: object, what: str = "UID") -> str:
    """``value`` without its NUL padding (PS3.5 9.1) when it is a valid UID, else InvalidUID.
    Spaces, newlines or any other character around or inside make it invalid."""
    if value is None or value == "":
        raise InvalidUID(f"missing {what}")
    text = str(value).rstrip("\x00")
    if not is_valid_uid(text):
        raise InvalidUID(f"invalid {what}: {text[:80]!r}")
    return text


def instance_key(study_uid: str, series_uid: str, sop_instance_uid: str) -> str:
    """The relative key of an instance: ``<study>/<series>/<sop>.dcm``, UIDs validated."""
    return "/".join(
        (
            validate_uid(study_uid, "Study Instance UID"),
            validate_uid(series_uid, "Series Instance UID"),
            validate_uid(sop_instance_uid, "SOP Instance UID") + ".dcm",
        )
    )
