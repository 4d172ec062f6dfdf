"""DICOM audit messages (PS3.15 A.5.1 schema) from ``Record``s: one XML document each.

Event IDs and types are the DCM codes of PS3.16 (PS3.15 A.5.3): Application Activity 110100,
Begin Transferring DICOM Instances 110102, DICOM Instances Accessed 110103, DICOM Instances
Transferred 110104, Export 110106, Query 110112, Security Alert 110113, User Authentication
110114. Elements appear in the schema's order: EventIdentification, ActiveParticipant+,
AuditSourceIdentification, ParticipantObjectIdentification*.
"""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET

from audit.record import Record

# kind -> (EventID code, display name)
EVENTS = {
    "application-activity": ("110100", "Application Activity"),
    "begin-transfer": ("110102", "Begin Transferring DICOM Instances"),
    "accessed": ("110103", "DICOM Instances Accessed"),
    "transferred": ("110104", "DICOM Instances Transferred"),
    "export": ("110106", "Export"),
    "query": ("110112", "Query"),
    "security-alert": ("110113", "Security Alert"),
    "authentication": ("110114", "User Authentication"),
}
EVENT_TYPES = {
    "start": ("110120", "Application Start"),
    "stop": ("110121", "Application Stop"),
    "login": ("110122", "Login"),
    "node-authentication": ("110126", "Node Authentication"),
}
LOCAL_SCHEME = "99DICOMVAULT"  # our own EventTypeCodes: administrators' commands
ROLES = {
    "source": ("110153", "Source Role ID"),
    "destination": ("110152", "Destination Role ID"),
    "application": ("110150", "Application"),
    "launcher": ("110151", "Application Launcher"),
    "media": ("110154", "Destination Media"),
}


def _code(parent: ET.Element, tag: str, code: tuple[str, str], system: str = "DCM") -> None:
    ET.SubElement(parent, tag, {"csd-code": code[0], "codeSystemName": system,
                                "originalText": code[1]})


def _host(peer: str) -> str:
    """The host part of host:port (IPv6 in brackets or bare)."""
    if peer.startswith("["):
        return peer[1:].split("]", 1)[0]
    if peer.count(":") == 1:
        return peer.rsplit(":", 1)[0]
    return peer


def _access_point(element: ET.Element, peer: str) -> None:
    host = _host(peer)
    if not host:
        return
    try:
        ipaddress.ip_address(host)
        kind = "2"  # IP address
    except ValueError:
        kind = "1"  # machine name
    element.set("NetworkAccessPointID", host)
    element.set("NetworkAccessPointTypeCode", kind)


def _participant(root: ET.Element, user_id: str, requestor: bool, peer: str = "",
                 role: str = "", alternative: str = "") -> None:
    attrs = {"UserID": user_id or "unknown"}
    if alternative:
        attrs["AlternativeUserID"] = alternative
    attrs["UserIsRequestor"] = "true" if requestor else "false"
    element = ET.SubElement(root, "ActiveParticipant", attrs)
    _access_point(element, peer)
    if role:
        _code(element, "RoleIDCode", ROLES[role])


def _participants(root: ET.Element, rec: Record, us: str, hostname: str) -> None:
    """Who took part: the requestor and the archive (in the roles the event asks for)."""
    requestor = rec.user_id or rec.calling_ae
    alt = rec.calling_ae if rec.calling_ae and rec.calling_ae != requestor else ""
    kind = rec.event
    if kind == "transferred" and rec.action == "C":  # received: the sender is the source
        _participant(root, requestor, True, rec.peer_address, "source", alt)
        _participant(root, rec.called_ae or us, False, hostname, "destination")
    elif kind in ("transferred", "begin-transfer", "export"):  # sent by the archive
        if requestor and requestor != us:
            _participant(root, requestor, True, rec.peer_address, "", alt)
        _participant(root, us, not requestor or requestor == us, hostname, "source")
        if rec.destination:
            _participant(root, rec.destination, False, "",
                         "media" if kind == "export" else "destination")
    elif kind == "application-activity":
        _participant(root, rec.application or us, False, hostname, "application")
    else:  # query, accessed, security alert, authentication
        _participant(root, requestor or us, True, rec.peer_address, "", alt)
        _participant(root, rec.called_ae or us, False, hostname, "")


def _study(root: ET.Element, uid: str, rec: Record) -> None:
    element = ET.SubElement(root, "ParticipantObjectIdentification", {
        "ParticipantObjectID": uid, "ParticipantObjectTypeCode": "2",
        "ParticipantObjectTypeCodeRole": "3"})
    _code(element, "ParticipantObjectIDTypeCode", ("110180", "Study Instance UID"))
    for sop_class, count in sorted(rec.sop_classes.items()):
        ET.SubElement(element, "SOPClass", {"UID": sop_class, "NumberOfInstances": str(count)})


def to_xml(rec: Record, source_id: str, enterprise_site_id: str = "",
           hostname: str = "") -> bytes:
    """The audit message of ``rec`` as UTF-8 XML on one line (no newline inside)."""
    code = EVENTS[rec.event]
    root = ET.Element("AuditMessage")
    ident = ET.SubElement(root, "EventIdentification", {
        "EventActionCode": rec.action, "EventDateTime": rec.time,
        "EventOutcomeIndicator": str(rec.outcome)})
    _code(ident, "EventID", code)
    if rec.event_type in EVENT_TYPES:
        _code(ident, "EventTypeCode", EVENT_TYPES[rec.event_type])
    elif rec.event_type.startswith("local:"):  # e.g. local:RETRY_JOB -> RETRY_JOB "Retry Job"
        code = rec.event_type[len("local:"):]
        _code(ident, "EventTypeCode", (code, code.replace("_", " ").title()), LOCAL_SCHEME)
    if rec.description:
        ET.SubElement(ident, "EventOutcomeDescription").text = rec.description[:1000]
    _participants(root, rec, rec.called_ae or source_id, hostname)
    src = ET.SubElement(root, "AuditSourceIdentification",
                        {**({"AuditEnterpriseSiteID": enterprise_site_id}
                            if enterprise_site_id else {}), "AuditSourceID": source_id})
    _code(src, "AuditSourceTypeCode", ("4", "Application Server Process"))
    if rec.patient_id:
        patient = ET.SubElement(root, "ParticipantObjectIdentification", {
            "ParticipantObjectID": rec.patient_id, "ParticipantObjectTypeCode": "1",
            "ParticipantObjectTypeCodeRole": "1"})
        _code(patient, "ParticipantObjectIDTypeCode", ("2", "Patient Number"), "RFC-3881")
    if rec.event == "query":
        query = ET.SubElement(root, "ParticipantObjectIdentification", {
            "ParticipantObjectID": rec.query_sop_class or rec.service or "query",
            "ParticipantObjectTypeCode": "2", "ParticipantObjectTypeCodeRole": "3"})
        _code(query, "ParticipantObjectIDTypeCode", ("110181", "SOP Class UID"))
        ET.SubElement(query, "ParticipantObjectQuery").text = rec.query
    for uid in rec.studies:
        _study(root, uid, rec)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False)
