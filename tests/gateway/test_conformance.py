"""docs/conformance.md lists exactly the SOP classes and transfer syntaxes the DIMSE AE offers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dicom_gateway.commitment import CommitmentHandOff
from dicom_gateway.ingest import Ingest
from dicom_gateway.listener import Listener
from dicom_gateway.modalities import Modalities
from dicom_gateway.settings import GatewaySettings
from dicomvault.bus import Publisher
from dicomvault.dicom.bridge import Bridge
from dicomvault.query import CatalogueClient
from dicomvault.store import FileStore

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
UID = re.compile(r"`(\d+(?:\.\d+)+)`")


def section(name: str) -> list[list[str]]:
    """The UIDs of each table row between <!-- conformance:name --> and <!-- /conformance -->."""
    text = DOC.read_text()
    match = re.search(rf"<!-- conformance:{name} -->(.*?)<!-- /conformance -->", text, re.S)
    assert match, f"section {name} missing from {DOC}"
    return [UID.findall(line) for line in match.group(1).splitlines() if UID.search(line)]


@pytest.fixture
async def dimse(tmp_path: Path) -> AsyncIterator[Listener]:
    """The gateway's AE as the service builds it (not started: only its contexts matter)."""
    import asyncio

    settings = GatewaySettings(cache={"root": tmp_path / "cache"})
    loop = asyncio.get_running_loop()
    catalogue = CatalogueClient("http://127.0.0.1:9")
    bridge = Bridge(loop, 1.0)
    publisher = Publisher(settings.bus, "t")
    ingest = Ingest(settings, FileStore(tmp_path / "cache"), publisher, bridge)
    commitment = CommitmentHandOff(publisher, settings.bus.topics.studies,
                                   Modalities(settings.gateway), bridge, 1.0)
    try:
        yield Listener(settings.gateway, ingest, catalogue, bridge, commitment=commitment)
    finally:
        await catalogue.close()


async def test_conformance_statement_matches_the_ae(dimse: Listener) -> None:
    offered = {str(cx.abstract_syntax): [str(ts) for ts in cx.transfer_syntax]
               for cx in dimse.ae.supported_contexts}
    storage_doc = [row[0] for row in section("storage-sop-classes")]
    storage_ts_doc = [row[0] for row in section("storage-transfer-syntaxes")]
    other_doc = {row[0]: row[1:] for row in section("other-sop-classes")}

    assert len(storage_doc) == len(set(storage_doc)), "a storage SOP class is listed twice"
    # Every SOP class offered is documented, and nothing else is.
    assert set(storage_doc) | set(other_doc) == set(offered)
    assert not set(storage_doc) & set(other_doc)
    # Storage: each class with exactly the documented transfer syntaxes.
    for uid in storage_doc:
        assert sorted(offered[uid]) == sorted(storage_ts_doc), uid
    # Verification and Q/R: each with its documented transfer syntaxes.
    for uid, syntaxes in other_doc.items():
        assert sorted(offered[uid]) == sorted(syntaxes), uid
