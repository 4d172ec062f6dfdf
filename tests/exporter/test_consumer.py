"""The consumer path on the real broker: StudyStable in, study in Orthanc, StudyExported out.

Embedded mode: the spec file holds a list of Exporter resources; each becomes an in-process
consumer (group ``dicomvault-exporter-<exporterID>``) with the same code path as a Deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import yaml

from dicomvault.bus import Publisher
from dicomvault.bus.broker import free_port
from dicomvault.events import Event
from dicomvault.events.v1 import events_pb2 as ev
from stow_exporter.events import ExportFailed, StudyExported
from stow_exporter.service import run
from tests.peers.datasets import write_study
from tests.peers.facts import read_until

EXPORTERS = [
    {"apiVersion": "dicomvault.io/v1", "kind": "Exporter", "metadata": {"name": "orthanc-web"},
     "spec": {"exporterID": "ORTHANC-WEB", "uri": "stowrs:orthanc", "queueName": "export1",
              "description": "CT to Orthanc over STOW-RS",
              "rules": [{"modalities": ["CT"], "callingAETitles": ["CT01"]}],
              "retry": {"maxRetries": 1, "initialDelaySeconds": 0},
              "webApplication": {"name": "orthanc", "url": "__URL__",
                                 "properties": {"chunked": True, "concurrency": 2}}}},
    {"apiVersion": "dicomvault.io/v1", "kind": "Exporter", "metadata": {"name": "orthanc-dimse"},
     "spec": {"exporterID": "ORTHANC-DIMSE", "uri": "dicom:ORTHANC",
              "rules": [{"modalities": ["MR"]}]}},
]


async def _events(bus, want: int, timeout_s: float = 60) -> list[Event]:
    return await read_until(bus, bus.topics.studies, lambda found: len(found) >= want,
                            keep=lambda e: isinstance(e.payload, StudyExported | ExportFailed),
                            timeout_s=timeout_s)


async def test_study_stable_to_orthanc_through_the_broker(
        tmp_path, bus_settings, orthanc, catalogue, make_settings):
    # Two exporters in one YAML list (embedded mode), written as an administrator would.
    spec_file = tmp_path / "exporters.yaml"
    spec_file.write_text(yaml.safe_dump(EXPORTERS).replace("__URL__", orthanc.dicomweb_url))
    settings = make_settings(
        catalogue[1], spec_file=spec_file,
        modalities={"ORTHANC": {"host": "127.0.0.1", "port": orthanc.dicom_port}})
    settings.bus = bus_settings
    settings.http.port = free_port()
    base = f"http://127.0.0.1:{settings.http.port}"
    # A CT study is in the cache and the catalogue.
    study = write_study(tmp_path / "study", series=2, per_series=2, modalities=("CT",))
    catalogue[0].add(study)

    stop = asyncio.Event()
    service = asyncio.create_task(run(settings, stop))
    try:
        async with httpx.AsyncClient(base_url=base) as api:
            # Ready once both consumers have their partitions.
            async with asyncio.timeout(60):
                while True:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await api.get("/readyz")).status_code == 200:
                            break
                    assert not service.done(), service
                    await asyncio.sleep(0.1)
            exporters = (await api.get("/api/v1/exporters")).json()
            assert [e["exporter_id"] for e in exporters] == ["ORTHANC-WEB", "ORTHANC-DIMSE"]
            # The catalogue says the study is stable.
            async with Publisher(bus_settings, client_id="test") as pub:
                await pub.publish(bus_settings.topics.studies, Event(
                    payload=ev.StudyStable(study_instance_uid=study.study_uid,
                                           number_of_instances=4, modalities=["CT"],
                                           calling_aes=["CT01"], station_names=["CT01"]),
                    source="dicomvault/catalogue", subject=study.study_uid),
                    key=study.study_uid)
            # The STOW-RS exporter delivers it and says so on the studies topic.
            (event,) = await _events(bus_settings, 1)
            assert isinstance(event.payload, StudyExported)
            assert event.type == "dicomvault.study.exported.v1"
            assert event.subject == study.study_uid
            assert event.payload.exporter_id == "ORTHANC-WEB"
            assert event.payload.number_of_instances == 4
            assert event.payload.destination == f"{orthanc.dicomweb_url}/studies"
            assert sorted(orthanc.files_by_sop_uid_of(study.study_uid)) == sorted(study.sop_uids)
            # The MR-only exporter ignored it. (The export reads "exported" once its job's
            # JobCompleted is out, which follows StudyExported.)
            deadline = time.monotonic() + 30
            while True:
                listing = [(e["exporter_id"], e["state"])
                           for e in (await api.get("/api/v1/exports")).json()]
                if listing == [("ORTHANC-WEB", "exported")] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            assert listing == [("ORTHANC-WEB", "exported")]
            metrics = (await api.get("/metrics")).text
            assert 'dicomvault_exporter_studies_total{exporter="ORTHANC-WEB",outcome="exported"}' \
                in metrics
            assert (await api.get("/healthz")).status_code == 200
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
