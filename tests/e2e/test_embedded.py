"""`make run` as a user sees it: `dicomvault up`, then dcmtk tools from another shell.

Starts the real embedded archive (Tansu, catalogue on SQLite, gateway, every service that
exists) on free loopback ports, sends a study with storescu, finds it with findscu, and
stops everything with Ctrl-C (SIGINT), leaving no process behind.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trustme
from pydicom import dcmread
from pydicom.uid import generate_uid

from dicomvault_cli.embedded import gateway_workers
from tests.commitment.modality import Modality, request_info
from tests.conftest import dcmtk, peer_env
from tests.gateway.dicomweb_peers import multipart_dicom
from tests.peers.datasets import write_study


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line.rstrip())
            if needle in line:
                return
        elif proc.poll() is not None:
            break
    raise AssertionError(f"{needle!r} not printed; output:\n" + "\n".join(seen))


def dimse_workers_of(pid: int) -> int:
    """How many ``dicom_gateway.workers`` processes ``pid`` has started (/proc)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid \
                and b"dicom_gateway.workers" in cmdline:
            count += 1
    return count


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_store_find_and_stop(tmp_path: Path) -> None:
    data = tmp_path / "var"
    # The services take consecutive ports after the gateway's (HTTP: +1..+7, commitment's
    # DIMSE: +1). Pick them below the ephemeral range, where client sockets of other
    # processes cannot take them between our check and the services' bind; the broker's
    # too, and all in one block so that they cannot overlap.
    base = _free_block(11)
    dimse, http, kafka = base, base + 2, base + 10
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomvault_cli", "up", "--data-dir", str(data),
         "--dimse-port", str(dimse), "--http-port", str(http), "--broker-port", str(kafka),
         "--stable-after", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, "Ctrl-C stops everything", 120, seen)
        printed = "\n".join(seen)
        assert f"DICOMVAULT@127.0.0.1:{dimse}" in printed
        assert f"http://127.0.0.1:{http}/dicomweb" in printed
        assert "NOT READY" not in printed, printed
        state = json.loads((data / "embedded.json").read_text())
        children = [svc["pid"] for svc in state["services"].values()]
        assert {"catalogue", "gateway"} <= set(state["services"])
        # One DIMSE worker process per CPU (4 at most), as the benchmarks run the gateway.
        assert dimse_workers_of(state["services"]["gateway"]["pid"]) == gateway_workers()

        env = peer_env()
        echo = subprocess.run([dcmtk("echoscu"), "-aec", "DICOMVAULT", "127.0.0.1", str(dimse)],
                              env=env, capture_output=True, text=True, timeout=30)
        assert echo.returncode == 0, echo.stderr

        study = write_study(tmp_path / "study", series=2, per_series=2)
        store = subprocess.run([dcmtk("storescu"), "-aec", "DICOMVAULT", "127.0.0.1", str(dimse),
                                *map(str, study.files)], env=env, capture_output=True, text=True,
                               timeout=60)
        assert store.returncode == 0, store.stderr

        # findscu -v prints each matching identifier (as the README shows); the catalogue
        # projects asynchronously, so ask until the study is there with all its instances.
        out = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            find = subprocess.run(
                [dcmtk("findscu"), "-v", "-aec", "DICOMVAULT", "-S",
                 "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study.study_uid}",
                 "-k", "NumberOfStudyRelatedInstances", "-k", "ModalitiesInStudy",
                 "127.0.0.1", str(dimse)],
                env=env, capture_output=True, text=True, timeout=30)
            assert find.returncode == 0, find.stderr
            out = find.stdout + find.stderr
            if re.search(r"\[4 ?\]", out):
                break
            time.sleep(0.5)
        # (dcmtk shows values with their even-length padding: "[4 ]", "[CT\\OT ]")
        assert study.study_uid in out and re.search(r"\[4 ?\]", out) and "CT\\OT" in out, out

        # Storage commitment on the same port, from any AE, in the same loud way as storing
        # (the request is taken; its report needs the AE's host/port in the gateway's table).
        ds = dcmread(study.files[0], stop_before_pixels=True)
        asked = request_info(generate_uid(), [(str(ds.SOPClassUID), str(ds.SOPInstanceUID))])
        assert Modality("ANY_AE").request(dimse, asked) == 0x0000
        gateway_log = (data / "logs" / "gateway.log").read_text()
        assert "store, query and request storage commitment" in gateway_log

        status = subprocess.run([sys.executable, "-m", "dicomvault_cli", "status", "--data-dir",
                                 str(data)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stdout

        r = httpx.get(f"http://127.0.0.1:{http + 1}/api/v1/studies/{study.study_uid}/timeline")
        assert r.status_code == 200
        # The laptop default: no service's REST API needs a token, and each says so loudly.
        assert "no HTTP API needs a token" in printed
        assert httpx.get(f"http://127.0.0.1:{http + 3}/api/v1/volumes").status_code == 200
        for name in ("catalogue", "gateway", "hsm-archiver", "optical-burner", "commitment",
                     "audit"):
            assert name in state["services"], name
            assert "AUTHENTICATION DISABLED" in (data / "logs" / f"{name}.log").read_text(), name

        # kill -9 the catalogue: the supervisor restarts it, and `status` shows the new pid
        # and the restart count (not the first pid).
        first = state["services"]["catalogue"]["pid"]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        now = state["services"]["catalogue"]
        while time.monotonic() < deadline and (now["pid"] in (first, None)):
            time.sleep(0.3)
            now = json.loads((data / "embedded.json").read_text())["services"]["catalogue"]
        assert now["pid"] not in (first, None) and now["restarts"] == 1, now
        status = subprocess.run([sys.executable, "-m", "dicomvault_cli", "status", "--data-dir",
                                 str(data)], capture_output=True, text=True, timeout=30)
        line = next(x for x in status.stdout.splitlines() if x.startswith("catalogue"))
        assert f"pid {now['pid']}" in line and "restarts 1" in line, status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    assert not any(pid_alive(p) for p in children), "a service outlived Ctrl-C"
    assert not (data / "embedded.json").exists()


def _free_block(size: int) -> int:
    rng = random.Random()
    while True:
        base = rng.randrange(12000, 20000 - size)  # below free_port()'s range
        if not any(_busy(base + i) or not _bindable(base + i) for i in range(size)):
            return base


def _bindable(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _walk(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_up_over_https_from_another_folder_keeps_everything_under_the_data_dir(
        tmp_path: Path) -> None:
    """A laptop trying TLS end to end: a test CA's certificate for 127.0.0.1 in
    DICOMVAULT_HTTP__CERT_FILE/KEY_FILE and the CA in DICOMVAULT_CLIENT__CA_FILE. `dicomvault
    up --data-dir` started from another folder reports every service ready over https://,
    STOW-RS and QIDO-RS work over HTTPS, the optical burner (given a rule) burns an ISO image,
    and nothing at all is written outside the data folder."""
    tls = tmp_path / "tls"
    tls.mkdir()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tls / "tls.crt", tls / "tls.key", tls / "ca.crt"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(cert_file, append=True)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    verify = ssl.create_default_context(cafile=str(ca_file))

    cwd, data = tmp_path / "cwd", tmp_path / "data"
    cwd.mkdir()
    before = _walk(cwd)
    base = _free_block(11)
    dimse, http, kafka = base, base + 2, base + 10
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMVAULT_")}
    env.update({
        "DICOMVAULT_HTTP__CERT_FILE": str(cert_file), "DICOMVAULT_HTTP__KEY_FILE": str(key_file),
        "DICOMVAULT_CLIENT__CA_FILE": str(ca_file),
        # The optical archive takes every study; its volume closes a second after its first
        # study and the sweep burns it (iso-folder back end, the default).
        "DICOMVAULT_OPTICAL__RULES": '[{"name": "all"}]',
        "DICOMVAULT_OPTICAL__CLOSE_AFTER_S": "1", "DICOMVAULT_OPTICAL__SWEEP_S": "0.5",
    })
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicomvault_cli", "up", "--data-dir", str(data),
         "--dimse-port", str(dimse), "--http-port", str(http), "--broker-port", str(kafka),
         "--stable-after", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, cwd=cwd,
        env=env,
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, "Ctrl-C stops everything", 180, seen)
        printed = "\n".join(seen)
        assert "NOT READY" not in printed, printed
        for name in ("catalogue", "gateway", "hsm-archiver", "optical-burner", "commitment",
                     "audit"):
            assert re.search(rf"^{name}\s+https://127\.0\.0\.1:\d+\s+ready$", printed, re.M), (
                name, printed)
        assert f"https://127.0.0.1:{http}/dicomweb" in printed
        dicomweb = f"https://127.0.0.1:{http}/dicomweb"

        # STOW-RS over HTTPS (the laptop default needs no token), then QIDO-RS finds it.
        study = write_study(tmp_path / "study", series=1, per_series=2)
        body, ctype = multipart_dicom([p.read_bytes() for p in study.files])
        stored = httpx.post(f"{dicomweb}/studies", content=body, verify=verify, timeout=60,
                            headers={"Content-Type": ctype, "Accept": "application/dicom+json"})
        assert stored.status_code == 200, stored.text
        deadline = time.monotonic() + 30
        found: list = []
        while not found and time.monotonic() < deadline:
            r = httpx.get(f"{dicomweb}/studies", params={"StudyInstanceUID": study.study_uid},
                          verify=verify, timeout=10)
            assert r.status_code in (200, 204), r.text
            found = r.json() if r.status_code == 200 else []
            time.sleep(0.3)
        assert found and found[0]["0020000D"]["Value"] == [study.study_uid]
        # Plain http:// is not served on those ports.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{http + 1}/readyz", timeout=5)

        # The catalogue over HTTPS shows the study; the burner writes its ISO image under the
        # data folder once StudyStable, the STORE job, the close and the burn have happened.
        r = httpx.get(f"https://127.0.0.1:{http + 1}/api/v1/studies/{study.study_uid}",
                      verify=verify, timeout=10)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 120
        while not list((data / "optical-iso").glob("*.iso")):
            assert time.monotonic() < deadline, (data / "logs" / "optical-burner.log").read_text()[-3000:]
            time.sleep(0.5)

        # `dicomvault status` checks the services over HTTPS with the CA `up` was given.
        status = subprocess.run([sys.executable, "-m", "dicomvault_cli", "status", "--data-dir",
                                 str(data)], capture_output=True, text=True, timeout=30,
                                cwd=cwd, env=env)
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    # Nothing was written outside the data folder (the working directory is as it was).
    assert _walk(cwd) == before, sorted(_walk(cwd) - before)
    assert list((data / "optical").iterdir()), "no volume under data/optical"
