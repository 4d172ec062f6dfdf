"""Who may ask us to commit, and what a malformed request gets (no job in either case)."""

from __future__ import annotations

import asyncio

import httpx
from pydicom.uid import CTImageStorage, generate_uid

from .modality import Modality, request_info

NOT_AUTHORIZED = 0x0124
INVALID_ARGUMENT_VALUE = 0x0115
NO_SUCH_ACTION_TYPE = 0x0123


async def test_only_permitted_modalities_may_request_commitment(bus_settings, start_vault,
                                                              caplog) -> None:
    caplog.set_level("WARNING", logger="commitment.service")
    vault = await start_vault(bus_settings, catalogue_url="http://127.0.0.1:9", modalities={
        "CT_PERMITTED": {"host": "127.0.0.1", "port": 9,
                         "permissions": {"may_request_commitment": True}},
        "CT_NO_PERM": {"host": "127.0.0.1", "port": 9}})
    good = request_info(generate_uid(), [(CTImageStorage, generate_uid())])
    # This table still governs this (deprecated) listener; the start said so, naming who uses it.
    [warning] = [r for r in caplog.records if r.getMessage().startswith("DEPRECATED")]
    assert "DICOMVAULT_GATEWAY__MODALITIES" in warning.getMessage()
    assert warning.calling_aes == ["CT_PERMITTED"]

    # A known modality without the permission: refused, Not authorized.
    assert await asyncio.to_thread(Modality("CT_NO_PERM").request, vault.dimse_port, good) == NOT_AUTHORIZED
    # An AE the archive does not know cannot even associate.
    assert await asyncio.to_thread(Modality("STRANGER").request, vault.dimse_port, good) is None

    # A permitted modality with malformed requests: Invalid argument value.
    permitted = Modality("CT_PERMITTED")
    no_txn = request_info(None, [(CTImageStorage, generate_uid())])
    assert await asyncio.to_thread(permitted.request, vault.dimse_port, no_txn) == INVALID_ARGUMENT_VALUE
    no_refs = request_info(generate_uid(), [])
    assert await asyncio.to_thread(permitted.request, vault.dimse_port, no_refs) == INVALID_ARGUMENT_VALUE
    no_instance = request_info(generate_uid(), [(CTImageStorage, generate_uid())])
    del no_instance.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert await asyncio.to_thread(permitted.request, vault.dimse_port, no_instance) == INVALID_ARGUMENT_VALUE
    assert await asyncio.to_thread(permitted.request, vault.dimse_port, good, 2) == NO_SUCH_ACTION_TYPE

    # None of them became a job or a transaction; the refusals are counted.
    assert await vault.commitments() == []
    async with httpx.AsyncClient() as c:
        text = (await c.get(f"{vault.url}/metrics")).text
    assert 'dicomvault_commitment_requests_total{outcome="refused",role="scp"} 1.0' in text
    assert 'dicomvault_commitment_requests_total{outcome="invalid",role="scp"} 4.0' in text
