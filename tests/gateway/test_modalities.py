"""The modalities table from the environment, and what each kind of AE may do."""

from __future__ import annotations

import json

import pytest

from dicom_gateway.modalities import Modalities, Operation
from dicom_gateway.settings import GatewaySettings


def test_table_from_env_json_and_permissions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMVAULT_GATEWAY__MODALITIES", json.dumps({
        "STORESCP": {"host": "127.0.0.1", "port": 11113, "tls": True},
        "VIEWER1": {"may_store": False},
        "CT01": {"may_retrieve": False}}))
    monkeypatch.setenv("DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES", '["OLDCT", "CT01"]')
    m = Modalities(GatewaySettings().gateway)

    assert m.calling_aes() == ["CT01", "OLDCT", "STORESCP", "VIEWER1"]
    dest = m.destination("STORESCP")
    assert dest is not None and (dest.host, dest.port, dest.tls) == ("127.0.0.1", 11113, True)
    assert m.destination("VIEWER1") is None  # no host/port: not a move destination
    assert m.permitted("VIEWER1", Operation.RETRIEVE)
    assert not m.permitted("VIEWER1", Operation.STORE)
    # The table entry wins over the allowlist.
    assert not m.permitted("CT01", Operation.RETRIEVE) and m.permitted("CT01", Operation.STORE)
    # Only in allowed_calling_aes: store and query as before, no retrieve, no destination.
    assert m.permitted("OLDCT", Operation.STORE) and m.permitted("OLDCT", Operation.QUERY)
    assert not m.permitted("OLDCT", Operation.RETRIEVE)
    assert m.destination("OLDCT") is None
    assert not m.permitted("STRANGER", Operation.STORE)


def test_accept_any_stores_queries_and_requests_commitment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMVAULT_GATEWAY__ACCEPT_ANY_CALLING_AE", "true")
    monkeypatch.setenv("DICOMVAULT_GATEWAY__ALLOWED_CALLING_AES", '["OLDCT"]')
    m = Modalities(GatewaySettings().gateway)
    assert m.calling_aes() is None
    assert m.permitted("ANYONE", Operation.QUERY)
    assert m.permitted("ANYONE", Operation.COMMITMENT)  # the embedded archive (make run)
    assert not m.permitted("ANYONE", Operation.RETRIEVE)
    assert m.permitted("OLDCT", Operation.COMMITMENT)  # listed in the older allowlist too
