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
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import dcmtk, peer_env
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_store_find_and_stop(tmp_path: Path) -> None:
    data = tmp_path / "var"
    # The services take consecutive ports after the gateway's (HTTP: +1..+6, commitment's
    # DIMSE: +1). Pick them below the ephemeral range, where client sockets of other
    # processes cannot take them between our check and the services' bind; the broker's
    # too, and all in one block so that they cannot overlap.
    base = _free_block(10)
    dimse, http, kafka = base, base + 2, base + 9
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

        status = subprocess.run([sys.executable, "-m", "dicomvault_cli", "status", "--data-dir",
                                 str(data)], capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stdout

        r = httpx.get(f"http://127.0.0.1:{http + 1}/api/v1/studies/{study.study_uid}/timeline")
        assert r.status_code == 200
        # The laptop default: no service's REST API needs a token, and each says so loudly.
        assert "no HTTP API needs a token" in printed
        assert httpx.get(f"http://127.0.0.1:{http + 3}/api/v1/volumes").status_code == 200
        for name in ("catalogue", "gateway", "hsm-archiver", "optical-burner", "commitment"):
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
