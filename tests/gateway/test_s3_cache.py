"""The cache tier on S3-compatible storage (moto's S3 server): what a modality, a viewer and a
DICOMweb client see is the same as on a file system, and every byte goes out as it came in.

Real processes (catalogue and gateway via `dicomvault run`, configured by DICOMVAULT_CACHE__*),
the real broker, dcmtk storescu/movescu/getscu/storescp, boto3 to look into the bucket.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from dicomweb_client import DICOMwebClient
from pydicom import dcmread

from dicom_gateway import statuses as st
from dicomvault.bus import Publisher
from dicomvault.bus.broker import EmbeddedBroker, free_port
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.query import CatalogueClient
from dicomvault.settings import BusSettings, CacheSettings
from dicomvault.store import instance_key
from tests.gateway import retrieve_peers
from tests.gateway.conftest import RunningGateway, gateway_settings, read_events, send_files
from tests.gateway.dicomweb_peers import Issuer, WebArchive, bus_settings_for
from tests.gateway.retrieve_peers import (
    final_status,
    getscu,
    modalities,
    movescu,
    run_storescp,
)
from tests.peers import s3 as s3_peers
from tests.peers.datasets import dataset_bytes, write_study
from tests.peers.s3 import Bucket

moto_url = s3_peers.moto_url  # fixtures
bucket = s3_peers.bucket
catalogue = retrieve_peers.catalogue


def keys_of(study) -> dict[str, str]:
    """SOP Instance UID -> the cache key the gateway must use."""
    return {sop: instance_key(study.study_uid, series, sop)
            for series, sops in study.series.items() for sop in sops}


def test_store_move_get_and_wado_from_an_s3_cache(broker: EmbeddedBroker, bucket: Bucket,
                                                  tmp_path: Path) -> None:
    folder = tmp_path / "archive"
    folder.mkdir()
    with run_storescp(tmp_path) as scp:
        archive = WebArchive(folder, bus_settings_for(broker), Issuer(folder), **bucket.env(),
                             DICOMVAULT_GATEWAY__MODALITIES=json.dumps(modalities(scp.port)))
        try:
            archive.start()
            study = write_study(tmp_path / "sent", series=2, per_series=2)
            sent = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
                    for p in study.files}

            # A modality stores the study with dcmtk storescu: every object lands in the
            # bucket under its key, with the dataset bytes the modality sent; none on disk.
            done = archive.storescu(study.files)
            assert done.returncode == 0, done.stdout + done.stderr
            archive.wait_indexed(study.study_uid, len(study.files))
            objects = bucket.objects()
            keys = keys_of(study)
            assert set(objects) == set(keys.values())
            for sop, key in keys.items():
                assert dataset_bytes(objects[key]) == dataset_bytes(sent[sop]), sop
            assert not archive.files()

            # The catalogue knows every instance in the cache tier, under those keys.
            rows = asyncio.run(_lookup(f"http://127.0.0.1:{archive.catalogue_port}",
                                       list(keys)))
            assert {r.sop_instance_uid: r.storage_key for r in rows if r.tier == "cache"} \
                == keys

            # C-MOVE to a dcmtk storescp: byte-identical datasets.
            rc, out = movescu(archive.dimse_port, "QueryRetrieveLevel=STUDY",
                              f"StudyInstanceUID={study.study_uid}")
            assert final_status(out) == st.SUCCESS, out
            got = scp.received()
            assert set(got) == set(sent)
            for sop, path in got.items():
                assert dataset_bytes(path) == dataset_bytes(sent[sop]), sop

            # C-GET with dcmtk getscu: the same.
            rc, out = getscu(archive.dimse_port, tmp_path / "got", "QueryRetrieveLevel=STUDY",
                             f"StudyInstanceUID={study.study_uid}")
            assert rc == 0 and final_status(out) == st.SUCCESS, out
            got = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
                   for p in (tmp_path / "got").iterdir()}
            assert set(got) == set(sent)
            for sop, path in got.items():
                assert dataset_bytes(path) == dataset_bytes(sent[sop]), sop

            # WADO-RS: the stored objects, byte for byte.
            client: DICOMwebClient = archive.client()
            headers = {"Accept": 'multipart/related; type="application/dicom"'}
            response = client._session.get(f"{archive.url}/studies/{study.study_uid}",
                                           headers=headers, timeout=60)
            assert response.status_code == 200, response.text
            parts = list(client._decode_multipart_message(response, stream=False))
            assert sorted(bytes(p) for p in parts) == sorted(objects.values())

            # An object gone from the bucket is not in the cache any more: WADO-RS says
            # 503 (a recall is asked for), it is not served from anywhere else.
            first = next(iter(keys.values()))
            bucket.delete(first)
            response = client._session.get(f"{archive.url}/studies/{study.study_uid}",
                                           headers=headers, timeout=60)
            assert response.status_code == 503, response.text

            # STOW-RS takes the same path: its objects land in the bucket, byte for byte the
            # Part 10 the client sent, and come back by WADO-RS.
            stowed = write_study(tmp_path / "stowed", series=1, per_series=2,
                                 patient_id="STOWS3")
            client.store_instances([dcmread(p) for p in stowed.files])
            archive.wait_indexed(stowed.study_uid, len(stowed.files))
            stow_keys = keys_of(stowed)
            objects = bucket.objects()
            assert set(stow_keys.values()) <= set(objects)
            by_sop = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
                      for p in stowed.files}
            for sop, key in stow_keys.items():
                assert dataset_bytes(objects[key]) == dataset_bytes(by_sop[sop]), sop
            response = client._session.get(f"{archive.url}/studies/{stowed.study_uid}",
                                           headers=headers, timeout=60)
            assert response.status_code == 200, response.text
            parts = list(client._decode_multipart_message(response, stream=False))
            assert sorted(bytes(p) for p in parts) == sorted(objects[k]
                                                             for k in stow_keys.values())
            assert not archive.files()
        finally:
            archive.stop()


async def _lookup(url: str, sops: list[str]):
    client = CatalogueClient(url)
    try:
        return await client.lookup(sops)
    finally:
        await client.close()


def test_unreachable_s3_fails_the_store_and_acknowledges_nothing(
        bus_settings: BusSettings, tmp_path: Path) -> None:
    # Nothing listens on the endpoint: the PUT cannot be made durable.
    dead = {"backend": "s3", "s3": {"endpoint_url": f"http://127.0.0.1:{free_port()}",
                                    "bucket": "nowhere", "access_key_id": "testing",
                                    "secret_access_key": "testing", "timeout_s": 2.0}}
    settings = gateway_settings(tmp_path, bus_settings).model_copy(
        update={"cache": CacheSettings(**dead)})
    gw = RunningGateway(settings).start()
    try:
        study = write_study(tmp_path / "sent", series=1, per_series=2)
        assert send_files(gw.port, study.files) == [st.OUT_OF_RESOURCES] * 2
        events = asyncio.run(read_events(bus_settings, bus_settings.topics.instances, 0))
        assert events == []
    finally:
        gw.stop()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.dcm"))


# --- an identical resend after an eviction is a new fact -------------------------------------
@pytest.mark.parametrize("backend", ["fs", "s3"])
async def test_identical_resend_after_eviction_is_catalogued_again(
        backend: str, request: pytest.FixtureRequest, catalogue: str,
        bus_settings: BusSettings, tmp_path: Path) -> None:
    settings = gateway_settings(tmp_path, bus_settings, catalogue_url=catalogue)
    s3: Bucket | None = None
    if backend == "s3":
        s3 = request.getfixturevalue("bucket")
        settings = settings.model_copy(update={"cache": CacheSettings(**s3.settings())})
    gw = RunningGateway(settings)
    await asyncio.to_thread(gw.start)
    try:
        study = write_study(tmp_path / "sent", series=1, per_series=1)
        (path,) = study.files
        (sop, key), = keys_of(study).items()

        # Stored and catalogued in the cache tier.
        assert await asyncio.to_thread(send_files, gw.port, [path]) == [st.SUCCESS]
        await until_cached(catalogue, sop, True)

        # The cache copy is evicted (deleted; StudyEvicted as the archiver publishes it).
        if s3 is not None:
            s3.delete(key)
        else:
            (gw.cache / key).unlink()
        fact = ev.StudyEvicted(study_instance_uid=study.study_uid, tier="cache",
                               archive_id="cache", location=study.study_uid, reason="test")
        async with Publisher(bus_settings, "test") as pub:
            await pub.publish(bus_settings.topics.studies,
                              Event(payload=fact, source="dicomvault/test",
                                    subject=study.study_uid), key=study.study_uid)
        await until_cached(catalogue, sop, False)

        # The modality sends the very same bytes again: the copy is written anew, and the
        # catalogue records it (a new fact, not the original's duplicate).
        assert await asyncio.to_thread(send_files, gw.port, [path]) == [st.SUCCESS]
        await until_cached(catalogue, sop, True)

        # Sent once more while that copy is there: one copy, the same fact again.
        assert await asyncio.to_thread(send_files, gw.port, [path]) == [st.SUCCESS]
        events = await read_events(bus_settings, bus_settings.topics.instances, 3)
        ids = [e.id for e in events]
        assert len(ids) == 3 and ids[0] != ids[1] and ids[1] == ids[2], ids
        if s3 is not None:
            assert list(s3.objects()) == [key]
        else:
            assert [p.relative_to(gw.cache).as_posix() for p in gw.files()] == [key]
    finally:
        await asyncio.to_thread(gw.stop)


async def until_cached(catalogue_url: str, sop: str, cached: bool,
                       timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await _lookup(catalogue_url, [sop])
        if any(r.tier == "cache" for r in rows) == cached:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the catalogue never showed {sop} {'in' if cached else 'out of'}"
                                 f" the cache: {rows}")
        await asyncio.sleep(0.2)
