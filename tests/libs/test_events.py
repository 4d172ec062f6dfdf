"""Events travel as protobuf values with CloudEvents binary-mode headers."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dicomvault.events import ID_NAMESPACE, EnvelopeError, Event, deterministic_id
from dicomvault.events.v1 import events_pb2 as ev


def test_round_trip_keeps_attributes_and_payload() -> None:
    event = Event(ev.InstanceStored(sop_instance_uid="1.2.3", size_bytes=7), source="dicomvault/t",
               subject="1.2")
    value, headers = event.to_record()
    names = dict(headers)
    assert names["ce_type"] == b"dicomvault.instance.stored.v1"
    assert names["content-type"] == b"application/protobuf"
    assert names["ce_subject"] == b"1.2"
    back = Event.from_record(value, headers)
    assert back.id == event.id and back.payload == event.payload and back.subject == "1.2"


@pytest.mark.parametrize("drop", ["ce_id", "ce_type", "ce_source"])
def test_missing_required_header_is_refused(drop: str) -> None:
    value, headers = Event(ev.StudyStable(study_instance_uid="1.2"), source="s").to_record()
    with pytest.raises(EnvelopeError, match=drop):
        Event.from_record(value, [h for h in headers if h[0] != drop])


def test_unknown_type_and_garbage_payload_are_refused() -> None:
    value, headers = Event(ev.StudyStable(study_instance_uid="1.2"), source="s").to_record()
    bad_type = [(k, b"x.y.z" if k == "ce_type" else v) for k, v in headers]
    with pytest.raises(EnvelopeError, match="unknown ce_type"):
        Event.from_record(value, bad_type)
    with pytest.raises(EnvelopeError, match="undecodable"):
        Event.from_record(b"\xff\xff\xff", headers)


@given(st.lists(st.text(), min_size=1, max_size=6))
def test_deterministic_ids_are_the_uuid5_of_their_parts(parts: list[str]) -> None:
    """Ids already in journals and on the broker must stay what they were: a fact re-emitted
    by a newer version (reconciliation, an identical resend) is the same fact."""
    assert deterministic_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))
    assert deterministic_id("dicomvault.instance.stored.v1", "1.2/3.4/5.6", "ab") == \
        "9887db8a-c8ee-51a7-986a-715580d6743b"


def test_deterministic_ids_repeat() -> None:
    assert deterministic_id("1.2", "7") == deterministic_id("1.2", "7")
    assert deterministic_id("1.2", "7") != deterministic_id("1.2", "8")
