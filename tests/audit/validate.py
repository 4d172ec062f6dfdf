"""The required content of a DICOM audit message (PS3.15 A.5.1, A.5.3), checked field by field
on the XML a syslog receiver got."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

CODED = ("csd-code", "codeSystemName", "originalText")


def audit_message(xml: str) -> ET.Element:
    """Parse ``xml`` and assert every element PS3.15 A.5.1 requires; return the root."""
    root = ET.fromstring(xml)
    assert root.tag == "AuditMessage", root.tag
    ident = root.find("EventIdentification")
    assert ident is not None, xml
    assert ident.get("EventActionCode") in ("C", "R", "U", "D", "E"), xml
    datetime.fromisoformat(ident.get("EventDateTime", "").replace("Z", "+00:00"))
    assert ident.get("EventOutcomeIndicator") in ("0", "4", "8", "12"), xml
    event_id = ident.find("EventID")
    assert event_id is not None and all(event_id.get(a) for a in CODED), xml
    participants = root.findall("ActiveParticipant")
    assert participants, xml
    for p in participants:
        assert p.get("UserID"), xml
        assert p.get("UserIsRequestor") in ("true", "false"), xml
    source = root.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID"), xml
    for obj in root.findall("ParticipantObjectIdentification"):
        assert obj.get("ParticipantObjectID") and obj.get("ParticipantObjectTypeCode"), xml
        code = obj.find("ParticipantObjectIDTypeCode")
        assert code is not None and all(code.get(a) for a in CODED), xml
    # the schema's order of the top-level elements
    order = [child.tag for child in root]
    assert order[0] == "EventIdentification", order
    assert order.index("AuditSourceIdentification") > max(
        i for i, t in enumerate(order) if t == "ActiveParticipant"), order
    return root


def event_code(root: ET.Element) -> str:
    return root.find("EventIdentification/EventID").get("csd-code")


def studies(root: ET.Element) -> list[str]:
    return [o.get("ParticipantObjectID") for o in root.findall("ParticipantObjectIdentification")
            if o.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"]


def requestor(root: ET.Element) -> ET.Element | None:
    return next((p for p in root.findall("ActiveParticipant")
                 if p.get("UserIsRequestor") == "true"), None)


def outcome(root: ET.Element) -> str:
    return root.find("EventIdentification").get("EventOutcomeIndicator")
