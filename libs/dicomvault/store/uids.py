"""DICOM UID validation (PS3.5 §9.1) and the storage keys built only from valid UIDs."""

from __future__ import annotations

import re

# Components are digits, no leading zero unless the component is "0"; at most 64 chars.
# \A…\Z, not ^…$: "$" also matches before a trailing newline ("1.2.3\n" is no UID).
_UID = re.compile(r"\A(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z", re.ASCII)


class InvalidUID(ValueError):
    """A UID that is missing, too long or not of the form digits[.digits]…"""


def is_valid_uid(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID.match(value))


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
