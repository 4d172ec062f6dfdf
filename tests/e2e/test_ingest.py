"""Ingest as a modality sees it: storescu into the gateway, findscu finds it through the
catalogue; the catalogue restarted mid-stream and the broker restarted during a send lose
nothing. Real gateway and catalogue processes, real broker, SQLite (and PostgreSQL for the
ingest story)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import httpx
import pytest
from pynetdicom import AE, _config

from dicomvault.bus.broker import EmbeddedBroker
from dicomvault.settings import BusSettings
from dicomvault.store.names import named_temp
from tests.e2e.conftest import AE_TITLE, MODALITY, Archive
from tests.peers.datasets import write_study

pytestmark = pytest.mark.e2e
# Kill, restart and drain scenarios test the services' own promises, which do not depend on
# the catalogue's database: they run on SQLite only. PostgreSQL keeps the full ingest story
# (test_study_sent_and_found_at_every_level) and, in tests/catalogue, the catalogue killed
# mid-stream (test_restart_mid_stream_loses_and_duplicates_nothing) and the full disk.
SQLITE_ONLY = pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)


def wait_catalogued(archive: Archive, sop_uids: list[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    missing = sop_uids
    while time.monotonic() < deadline:
        try:
            r = httpx.post(f"{archive.catalogue_url}/api/v1/instances/unknown",
                           json={"sop_instance_uids": sop_uids}, timeout=5)
            if r.status_code == 200:
                missing = r.json()["unknown"]
                if not missing:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{len(missing)} of {len(sop_uids)} instances never catalogued\n"
                         f"{archive.gateway.tail()}\n{archive.catalogue.tail()}")


def values(answers, keyword: str) -> list:
    return [a.get(keyword) for a in answers]


def test_study_sent_and_found_at_every_level(archive, tmp_path: Path) -> None:
    vault = archive()
    # Two patients: a three-series study in 2024 and a one-series MR study in 2023.
    a = write_study(tmp_path / "a", series=3, per_series=2, modalities=("CT", "OT"),
                    patient_id="PAT001", patient_name="DOE^JANE", study_date="20240105",
                    accession="ACC001")
    b = write_study(tmp_path / "b", series=1, per_series=2, modalities=("MR",),
                    patient_id="PAT002", patient_name="ROE^RICHARD", study_date="20230610",
                    accession="ACC002", seed=7)
    sent = vault.storescu([*a.files, *b.files])
    assert sent.returncode == 0, sent.stderr
    wait_catalogued(vault, a.sop_uids + b.sop_uids)

    # PATIENT level (Patient Root), with the computed patient keys.
    rc, ans, out = vault.findscu("PATIENT", "QueryRetrieveLevel=PATIENT", "PatientID=PAT001",
                                 "PatientName", "NumberOfPatientRelatedStudies",
                                 "NumberOfPatientRelatedSeries",
                                 "NumberOfPatientRelatedInstances")
    assert rc == 0, out
    assert len(ans) == 1
    assert str(ans[0].PatientName) == "DOE^JANE" and ans[0].QueryRetrieveLevel == "PATIENT"
    assert ans[0].SpecificCharacterSet == "ISO_IR 192"
    assert (int(ans[0].NumberOfPatientRelatedStudies), int(ans[0].NumberOfPatientRelatedSeries),
            int(ans[0].NumberOfPatientRelatedInstances)) == (1, 3, 6)
    rc, ans, out = vault.findscu("PATIENT", "QueryRetrieveLevel=PATIENT", "PatientID=PAT00?",
                                 "PatientName=*OE^*")
    assert rc == 0 and sorted(values(ans, "PatientID")) == ["PAT001", "PAT002"], out

    # STUDY level, both roots: date range, case-insensitive name wildcard, computed keys.
    for root in ("STUDY", "PATIENT"):
        rc, ans, out = vault.findscu(root, "QueryRetrieveLevel=STUDY",
                                     "StudyDate=20240101-20241231", "PatientName=doe*",
                                     "StudyInstanceUID", "AccessionNumber", "ModalitiesInStudy",
                                     "NumberOfStudyRelatedSeries",
                                     "NumberOfStudyRelatedInstances")
        assert rc == 0, out
        assert values(ans, "StudyInstanceUID") == [a.study_uid], (root, out)
        assert ans[0].AccessionNumber == "ACC001"
        assert sorted(ans[0].ModalitiesInStudy) == ["CT", "OT"]
        assert (int(ans[0].NumberOfStudyRelatedSeries),
                int(ans[0].NumberOfStudyRelatedInstances)) == (3, 6)
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=STUDY", "StudyDate=-20231231",
                                 "StudyInstanceUID", "ModalitiesInStudy=MR")
    assert rc == 0 and values(ans, "StudyInstanceUID") == [b.study_uid], out

    # SERIES level: the CT series of study A, with their instance counts.
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=SERIES",
                                 f"StudyInstanceUID={a.study_uid}", "Modality=CT",
                                 "SeriesInstanceUID", "SeriesNumber",
                                 "NumberOfSeriesRelatedInstances")
    assert rc == 0, out
    assert sorted(values(ans, "SeriesNumber")) == [1, 3]
    assert set(values(ans, "NumberOfSeriesRelatedInstances")) == {2}
    rc, ans, out = vault.findscu("PATIENT", "QueryRetrieveLevel=SERIES", "PatientID=PAT001",
                                 f"StudyInstanceUID={a.study_uid}", "SeriesInstanceUID")
    assert rc == 0 and sorted(values(ans, "SeriesInstanceUID")) == sorted(a.series), out

    # IMAGE level: one series' instances; then list-of-UID matching.
    series_uid, sops = next(iter(a.series.items()))
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=IMAGE",
                                 f"StudyInstanceUID={a.study_uid}",
                                 f"SeriesInstanceUID={series_uid}", "SOPInstanceUID",
                                 "SOPClassUID", "InstanceNumber")
    assert rc == 0, out
    assert sorted(values(ans, "SOPInstanceUID")) == sorted(sops)
    assert sorted(values(ans, "InstanceNumber")) == [1, 2]
    rc, ans, out = vault.findscu("PATIENT", "QueryRetrieveLevel=IMAGE", "PatientID=PAT002",
                                 f"StudyInstanceUID={b.study_uid}",
                                 f"SeriesInstanceUID={next(iter(b.series))}",
                                 f"SOPInstanceUID={b.sop_uids[0]}\\{a.sop_uids[0]}")
    assert rc == 0 and values(ans, "SOPInstanceUID") == [b.sop_uids[0]], out

    # A level the information model does not have: 0xA900, no answers.
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=PATIENT", "PatientID")
    assert ans == [] and "Error: DataSetDoesNotMatchSOPClass" in out, out


@SQLITE_ONLY
def test_catalogue_restarted_mid_stream(archive, tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import dcmtk, peer_env

    vault = archive()
    study = write_study(tmp_path / "s", series=1, per_series=120, size=32)
    sender = subprocess.Popen(
        [dcmtk("storescu"), "-aet", MODALITY, "-aec", AE_TITLE, "127.0.0.1",
         str(vault.dimse_port), *map(str, study.files)],
        env=peer_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # While the modality sends, the catalogue is killed and started again.
        cache = tmp_path / "cache"
        deadline = time.monotonic() + 60
        while len(list(cache.rglob("*.dcm"))) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        vault.catalogue.kill()
        assert sender.poll() is None, "the send ended before the catalogue was killed"
        time.sleep(0.5)
        vault.catalogue.start()
        out, _ = sender.communicate(timeout=120)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    assert sender.returncode == 0, out.decode()

    # Every instance is there exactly once.
    wait_catalogued(vault, study.sop_uids)
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=IMAGE",
                                 f"StudyInstanceUID={study.study_uid}", "SOPInstanceUID")
    assert rc == 0, out
    assert sorted(values(ans, "SOPInstanceUID")) == sorted(study.sop_uids)
    rc, ans, out = vault.findscu("STUDY", "QueryRetrieveLevel=STUDY",
                                 f"StudyInstanceUID={study.study_uid}",
                                 "NumberOfStudyRelatedInstances")
    assert rc == 0 and int(ans[0].NumberOfStudyRelatedInstances) == 120, out


@pytest.fixture
def own_broker(tmp_path: Path, bus_settings: BusSettings):
    """A broker for this test alone (it restarts it), with the test's topic names."""
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log")
    broker.start()
    yield broker, bus_settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
    broker.stop()


@SQLITE_ONLY
def test_broker_restarted_during_a_send(own_broker, archive, tmp_path: Path) -> None:
    # (own_broker first: set up before the archive, so it is stopped after the services,
    # whose shutdown would otherwise wait for a broker that is gone)
    broker, bus = own_broker
    vault = archive(bus=bus)
    study = write_study(tmp_path / "s", series=2, per_series=20, size=32)
    # The catalogue is down: what the broker acknowledged before its restart is lost with it,
    # and only the gateway's reconciliation can bring it back.
    vault.catalogue.stop()

    statuses: dict[str, int] = {}

    def send() -> None:
        ae = AE(ae_title=MODALITY)
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
        ae.add_requested_context("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", vault.dimse_port, ae_title=AE_TITLE)
        assert assoc.is_established
        try:
            for path, sop in zip(study.files, study.sop_uids, strict=True):
                rsp = assoc.send_c_store(path)
                statuses[sop] = int(rsp.Status) if "Status" in rsp else -1
        finally:
            assoc.release()
            ae.shutdown()

    _config.STORE_SEND_CHUNKED_DATASET = True
    sender = threading.Thread(target=send, name="modality")
    try:
        sender.start()
        while len(statuses) < 10 and sender.is_alive():
            time.sleep(0.01)
        broker.restart()  # killed and back, empty, while the modality is sending
        sender.join(180)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert not sender.is_alive() and len(statuses) == 40

    acknowledged = [sop for sop, status in statuses.items() if status == 0]
    refused = [sop for sop, status in statuses.items() if status != 0]
    assert len(acknowledged) >= 10
    assert all(statuses[sop] == 0xA701 for sop in refused), statuses
    # Nothing half-recorded: a file exactly for each acknowledged instance.
    on_disk = sorted(p.name.removesuffix(".dcm") for p in (tmp_path / "cache").rglob("*.dcm"))
    assert on_disk == sorted(acknowledged)

    # The catalogue comes back; every acknowledged instance is catalogued.
    vault.catalogue.start()
    wait_catalogued(vault, acknowledged, timeout_s=90)
    metrics = httpx.get(f"http://127.0.0.1:{vault.gateway_port}/metrics", timeout=10).text
    reemitted = [line for line in metrics.splitlines()
                 if line.startswith("dicomvault_gateway_reconcile_reemitted_total ")]
    assert reemitted and float(reemitted[0].split()[1]) >= 10, metrics


@SQLITE_ONLY
def test_a_file_whose_name_a_power_loss_lost_is_named_again_and_catalogued(
        archive, tmp_path: Path) -> None:
    """Batched folder flushes (``cache.folder_flush``, on by default on ext4): power lost after
    a store's own flush, before its folder's, leaves the file only under its temp name, and
    the embedded broker forgets its event. The gateway's start-up sweep names it again and the
    catalogue records it; a temp file whose write was cut short is dropped, never named."""
    vault = archive()
    study = write_study(tmp_path / "s", series=1, per_series=3, size=32)
    assert vault.storescu(study.files[2:]).returncode == 0  # a store through the batched path
    wait_catalogued(vault, study.sop_uids[2:])
    vault.gateway.stop()

    series = next(iter(study.series))
    folder = tmp_path / "cache" / study.study_uid / series
    whole, cut = (study.files[0].read_bytes(), study.files[1].read_bytes())
    left = time.time() - 120  # the crash was two minutes ago
    for n, (data, written) in enumerate([(whole, whole), (cut, cut[:len(cut) // 2])]):
        name = f"{study.sop_uids[n]}.dcm"
        tmp = named_temp(f"{folder}/.tmp-999-1-{n}", hashlib.sha256(data).hexdigest(), name)
        assert tmp is not None
        Path(tmp).write_bytes(written)
        os.utime(tmp, (left, left))

    vault.gateway.start()
    wait_catalogued(vault, study.sop_uids[:1])
    assert (folder / f"{study.sop_uids[0]}.dcm").read_bytes() == whole
    assert not (folder / f"{study.sop_uids[1]}.dcm").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{study.sop_uids[0]}.dcm", f"{study.sop_uids[2]}.dcm"])
    unknown = httpx.post(f"{vault.catalogue_url}/api/v1/instances/unknown",
                         json={"sop_instance_uids": study.sop_uids[1:2]}, timeout=5).json()
    assert unknown["unknown"] == study.sop_uids[1:2]
    metrics = httpx.get(f"http://127.0.0.1:{vault.gateway_port}/metrics", timeout=10).text
    assert 'dicomvault_gateway_recovered_files_total{outcome="named"} 1.0' in metrics
    assert 'dicomvault_gateway_recovered_files_total{outcome="dropped"} 1.0' in metrics


def _send_dimse(port: int, files: list[Path], statuses: dict[str, int]) -> None:
    """C-STORE each file on one association (storage only: the fast path); statuses by SOP."""
    ae = AE(ae_title=MODALITY)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.1.2.1")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title=AE_TITLE)
    assert assoc.is_established
    try:
        for path in files:
            rsp = assoc.send_c_store(path)
            if not assoc.is_established:
                return
            statuses[path.stem] = int(rsp.Status) if "Status" in rsp else -1
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _send_stow(url: str, files: list[Path], statuses: dict[str, int]) -> None:
    """STOW-RS in requests of 10; an instance counts as acknowledged when a 200 lists it."""
    boundary = "KILLTEST"
    for start in range(0, len(files), 10):
        batch = files[start:start + 10]
        body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                        + p.read_bytes() + b"\r\n" for p in batch) + f"--{boundary}--".encode()
        try:
            r = httpx.post(url, content=body, timeout=30, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; '
                                f"boundary={boundary}",
                "Accept": "application/dicom+json"})
        except httpx.HTTPError:
            return  # the gateway died under us
        stored = {item["00081155"]["Value"][0]
                  for item in r.json().get("00081199", {}).get("Value", [])} \
            if r.status_code in (200, 202) else set()
        for p in batch:
            statuses[p.stem] = 0 if p.stem in stored else r.status_code


def _send_dimse_x4(port: int, files: list[Path], statuses: dict[str, int]) -> None:
    """Four associations at once, a quarter of the files each: a worker's stores overlap, and
    those written on its loop while another is under way await their flushes (native AIO)."""
    senders = [threading.Thread(target=_send_dimse, args=(port, files[i::4], statuses))
               for i in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(60)


@SQLITE_ONLY
@pytest.mark.parametrize("door", ["dimse", "dimse x4", "stow"])
def test_gateway_killed_mid_stream_loses_no_acknowledged_instance(
        archive, tmp_path: Path, door: str) -> None:
    from pydicom import dcmread

    vault = archive(env={"DICOMVAULT_AUTH__ENABLED": "false"})
    study = write_study(tmp_path / "s", series=1, per_series=150, size=32)
    for path, sop in zip(study.files, study.sop_uids, strict=True):
        path.rename(path.with_name(f"{sop}.dcm"))  # name each file by its SOP Instance UID
    files = sorted(path.parent / f"{sop}.dcm" for path, sop in
                   zip(study.files, study.sop_uids, strict=True))
    statuses: dict[str, int] = {}
    _config.STORE_SEND_CHUNKED_DATASET = True
    sender = threading.Thread(
        target={"dimse": _send_dimse, "dimse x4": _send_dimse_x4, "stow": _send_stow}[door],
        name="modality",
        args=(vault.dimse_port if door.startswith("dimse") else
              f"http://127.0.0.1:{vault.gateway_port}/dicomweb/studies", files, statuses))
    try:
        sender.start()
        # The gateway process is killed (kill -9) while the modality is sending.
        deadline = time.monotonic() + 60
        while len(statuses) < 20 and sender.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        vault.gateway.kill()
        sender.join(60)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert not sender.is_alive()
    acknowledged = [sop for sop, status in statuses.items() if status == 0]
    assert 20 <= len(acknowledged) < 150, f"{len(acknowledged)} acknowledged before the kill"

    # Every acknowledged instance is on disk, whole and byte-identical to what was sent …
    cache = {p.stem: p for p in (tmp_path / "cache").rglob("*.dcm")}
    for sop in acknowledged:
        stored = dcmread(cache[sop])
        sent = dcmread(files[0].parent / f"{sop}.dcm")
        assert stored.PixelData == sent.PixelData and stored.SOPInstanceUID == sop
    # … and catalogued once the gateway is back (its event, or the reconciliation sweep).
    vault.gateway.start()
    wait_catalogued(vault, acknowledged, timeout_s=90)


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, started by any of its threads."""
    from pathlib import Path as P

    found = []
    for task in P(f"/proc/{pid}/task").iterdir():
        try:
            found += (task / "children").read_text().split()
        except FileNotFoundError:  # that thread ended after the listing
            continue
    return sorted(int(x) for x in found)


@SQLITE_ONLY
def test_workers_restarted_one_after_another_fail_no_store(archive, tmp_path: Path) -> None:
    import os
    import signal

    vault = archive(workers="2", drain_s="60")
    study = write_study(tmp_path / "s", series=1, per_series=300, size=32)
    gateway_pid = vault.gateway.process.pid
    workers = _children(gateway_pid)
    assert len(workers) == 2, workers
    statuses: dict[str, int] = {}

    def modality() -> None:
        # The study in 12 associations of 25 instances, one after another.
        for start in range(0, 300, 25):
            _send_dimse(vault.dimse_port, study.files[start:start + 25], statuses)

    _config.STORE_SEND_CHUNKED_DATASET = True
    sender = threading.Thread(target=modality, name="modality")
    try:
        sender.start()
        # A rolling restart: each worker gets SIGTERM (as a pod does), drains its associations
        # and is replaced; then the next one.
        restarted = []
        for old in workers:
            while len(statuses) < 25 * (len(restarted) + 1) and sender.is_alive():
                time.sleep(0.01)
            os.kill(old, signal.SIGTERM)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                now = _children(gateway_pid)
                if old not in now and len(now) == 2 and httpx.get(
                        f"http://127.0.0.1:{vault.gateway_port}/readyz", timeout=5
                ).status_code == 200:
                    break  # replaced and listening again: the next one may go
                time.sleep(0.05)
            else:
                raise AssertionError(f"worker {old} was not replaced: {_children(gateway_pid)}")
            restarted.append(old)
        sender.join(180)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert not sender.is_alive()
    # Not one C-STORE failed and not one instance is missing.
    assert len(statuses) == 300, f"{len(statuses)} answered"
    assert {s for s in statuses.values()} == {0}, statuses
    wait_catalogued(vault, study.sop_uids, timeout_s=90)
