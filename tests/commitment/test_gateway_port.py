"""One AE, one port: a modality stores through the gateway's DIMSE port (dcmtk storescu) and
asks for storage commitment on that same port (pynetdicom: dcmtk has no commitment SCU). The
gateway checks the request against its own modalities table and hands it over on the bus;
the commitment service (no modalities table of its own) verifies against the real catalogue
and reports on a new association to the host/port the gateway's table gives."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from pydicom.uid import CTImageStorage, generate_uid

from dicomvault.bus.broker import free_port
from tests.conftest import dcmtk, peer_env
from tests.gateway.conftest import AE_TITLE, RunningGateway, gateway_settings, sample
from tests.peers.datasets import write_study

from .helpers import pair
from .modality import Modality, request_info
from .test_scp import catalogued

NO_SUCH_OBJECT_INSTANCE = 0x0112
INVALID_ARGUMENT_VALUE = 0x0115
NOT_AUTHORIZED = 0x0124


async def report_of(modality: Modality, port: int, pairs: list[tuple[str, str]]):
    """Send one request on the gateway port, release; (N-ACTION status, the report)."""
    modality.got_report.clear()
    txn = generate_uid()
    status = await asyncio.to_thread(modality.request, port, request_info(txn, pairs))
    assert await asyncio.to_thread(modality.got_report.wait, 60), "no N-EVENT-REPORT"
    event_type, info, how = modality.reports[-1]
    assert (str(info.TransactionUID), how) == (txn, "new association")
    return status, event_type, info


async def test_a_modality_stores_and_commits_on_the_gateway_port(
        bus_settings, start_vault, catalogue, tmp_path: Path) -> None:
    modality = Modality("CT1")
    modality.listen(reply_port := free_port())
    gw = RunningGateway(gateway_settings(
        tmp_path, bus_settings, catalogue_url=catalogue, allowed_calling_aes=[], modalities={
            "CT1": {"host": "127.0.0.1", "port": reply_port},  # may_request_commitment: default
            "VIEWER": {"may_request_commitment": False}}))
    await asyncio.to_thread(gw.start)
    try:
        before = await asyncio.to_thread(gw.metrics)  # one registry per process: deltas
        # The commitment service shares the cache tier and has no modalities table of its own.
        await start_vault(bus_settings, catalogue_url=catalogue)

        # The modality stores a study through the gateway's port with dcmtk's storescu.
        study = write_study(tmp_path / "study", series=1, per_series=2)
        sent = await asyncio.to_thread(
            subprocess.run, [dcmtk("storescu"), "-aet", "CT1", "-aec", AE_TITLE, "127.0.0.1",
                             str(gw.port), *map(str, study.files)],
            env=peer_env(), capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, sent.stderr
        await catalogued(catalogue, study.study_uid, 2)
        stored = sorted(pair(f) for f in study.files)

        # It asks, on the same port, for both: Success, then Event Type 1 naming both.
        status, event_type, info = await report_of(modality, gw.port, stored)
        assert (status, event_type) == (0x0000, 1)
        assert sorted((str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID))
                      for i in info.ReferencedSOPSequence) == stored
        assert "FailedSOPSequence" not in info

        # With one instance the archive never received: Event Type 2, that one 0x0112.
        unknown = (CTImageStorage, generate_uid())
        status, event_type, info = await report_of(modality, gw.port, [stored[0], unknown])
        assert (status, event_type) == (0x0000, 2)
        assert [str(i.ReferencedSOPInstanceUID) for i in info.ReferencedSOPSequence] == [
            stored[0][1]]
        assert [(str(i.ReferencedSOPInstanceUID), int(i.FailureReason))
                for i in info.FailedSOPSequence] == [(unknown[1], NO_SUCH_OBJECT_INSTANCE)]

        # The gateway's table governs: a known AE without the permission gets 0x0124, an
        # unknown AE cannot associate, a malformed request (no Transaction UID) gets 0x0115.
        good = request_info(generate_uid(), stored)
        assert await asyncio.to_thread(Modality("VIEWER").request, gw.port, good) == NOT_AUTHORIZED
        assert await asyncio.to_thread(Modality("STRANGER").request, gw.port, good) is None
        no_txn = request_info(None, stored)
        assert await asyncio.to_thread(modality.request, gw.port, no_txn) == INVALID_ARGUMENT_VALUE

        # The gateway counts what it received on its port.
        after = await asyncio.to_thread(gw.metrics)
        assert [sample(after, "dicomvault_gateway_commitment_requests_total", outcome=o)
                - sample(before, "dicomvault_gateway_commitment_requests_total", outcome=o)
                for o in ("accepted", "refused", "invalid")] == [2.0, 1.0, 1.0]
    finally:
        await asyncio.to_thread(gw.stop)
        modality.close()
