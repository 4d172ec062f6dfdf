"""The hsm-archiver archiving from an S3 cache tier the gateway filled: a modality's study,
stored by the real gateway into a bucket (moto's S3 server), lands on the HSM folder with the
stored bytes, verified. Real catalogue process, real broker, archiver and gateway in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dicom_gateway import statuses as st
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.settings import BusSettings, CacheSettings
from tests.archiver.conftest import (
    catalogue,  # noqa: F401 - fixture: the catalogue subprocess
    hsm_archive,
    hsm_mount,  # noqa: F401 - fixture
    make_settings,
    running,
    stable,
)
from tests.gateway.conftest import RunningGateway, gateway_settings, send_files
from tests.gateway.retrieve_peers import wait_catalogued
from tests.peers import s3 as s3_peers
from tests.peers.cache import publish
from tests.peers.datasets import write_study
from tests.peers.s3 import Bucket
from tests.peers.wait import wait_until

moto_url = s3_peers.moto_url  # fixtures
bucket = s3_peers.bucket


async def test_archiver_archives_a_study_from_the_s3_cache(
        bus_settings: BusSettings, catalogue, hsm_mount: Path, bucket: Bucket,  # noqa: F811
        tmp_path: Path) -> None:
    cache = CacheSettings(**bucket.settings())
    gw = RunningGateway(gateway_settings(tmp_path, bus_settings, catalogue_url=catalogue.url)
                        .model_copy(update={"cache": cache}))
    await asyncio.to_thread(gw.start)
    try:
        # A modality stores a study: it is in the bucket and the catalogue.
        study = write_study(tmp_path / "sent", series=1, per_series=3)
        assert await asyncio.to_thread(send_files, gw.port, study.files) == [st.SUCCESS] * 3
        await asyncio.to_thread(wait_catalogued, catalogue.url, study.sop_uids)
        objects = bucket.objects()
        assert len(objects) == 3

        # The archiver reads the same bucket (DICOMVAULT_CACHE__BACKEND=s3) and archives the
        # stable study to HSM: the files there are the bucket's objects, byte for byte.
        settings = make_settings(bus_settings, tmp_path / "unused", catalogue.url,
                                 [hsm_archive(hsm_mount)]).model_copy(update={"cache": cache})
        async with running(settings):
            await publish(bus_settings, stable(study), study.study_uid)
            await wait_until(lambda: [a for a in catalogue.of_type(ev.StudyArchived)
                                      if a.study_instance_uid == study.study_uid],
                             what="StudyArchived")
        (fact,) = [a for a in catalogue.of_type(ev.StudyArchived)
                   if a.study_instance_uid == study.study_uid]
        assert fact.verified and fact.number_of_instances == 3
        folder = hsm_mount / "vault"
        for key, data in objects.items():
            assert (folder / key).read_bytes() == data, key
    finally:
        await asyncio.to_thread(gw.stop)
