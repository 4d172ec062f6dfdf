"""Fuzz fixtures: one real archive (catalogue + gateway processes) per module, the example
budget (``DICOMVAULT_FUZZ_EXAMPLES``: small in `make test`, >= 10,000 in `make fuzz`), the
per-door counts printed at the end, and the checks every door ends with."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicomvault.bus.broker import EmbeddedBroker
from tests.fuzz.budget import COUNTS
from tests.gateway.dicomweb_peers import READ, Issuer, WebArchive, bus_settings_for


@pytest.fixture(scope="session", autouse=True)
def print_counts() -> Iterator[None]:
    yield
    for door, counts in COUNTS.items():
        total = sum(counts.values())
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        print(f"\nfuzz {door}: {total} inputs ({detail})")


@pytest.fixture(scope="module")
def archive(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[WebArchive]:
    folder = tmp_path_factory.mktemp("fuzz")
    # A C-STORE whose data set never comes is aborted after dimse_timeout_s: shorter here
    # than the fuzz client's own wait for an answer.
    a = WebArchive(folder, bus_settings_for(broker), Issuer(folder),
                   DICOMVAULT_GATEWAY__DIMSE_TIMEOUT_S="1.5")
    try:
        yield a.start()
    finally:
        a.stop()


def long_http(archive: WebArchive, *scopes: str) -> httpx.Client:
    """A client whose bearer token outlives the door's run: `make fuzz` spends more than the
    tests' usual 10-minute tokens on one door (every request was then a 401)."""
    token = archive.issuer.token(*scopes, expires_in=6 * 3600)
    return httpx.Client(base_url=archive.url, headers={"Authorization": f"Bearer {token}"},
                        timeout=60)


_KEY = re.compile(r"\A[0-9.]{1,64}/[0-9.]{1,64}/[0-9.]{1,64}\.dcm\Z")


def outside_files(archive: WebArchive) -> set[str]:
    """Every file of the archive's folder and its parent, except inside the cache tier."""
    found = set()
    for root in (archive.folder, archive.folder.parent):
        for p in root.iterdir() if root == archive.folder.parent else root.rglob("*"):
            if p.is_file() and archive.cache not in p.parents:
                found.add(str(p))
    return found


def check_survived(archive: WebArchive, acknowledged: set[str], before: set[str]) -> None:
    """The door's end: both processes alive, cache keys only UID paths, nothing new outside
    the data folder but logs and the catalogue's files, every acknowledged instance in the
    cache and listed by the catalogue."""
    for proc in (archive.gateway, archive.catalogue):
        assert proc.process is not None and proc.process.poll() is None, proc.tail()
    keys = [str(p.relative_to(archive.cache)) for p in archive.files()]
    assert all(_KEY.match(k) for k in keys), [k for k in keys if not _KEY.match(k)][:5]
    new = {Path(p).name for p in outside_files(archive) - before}
    assert all(n.endswith((".log", ".db", ".db-wal", ".db-shm", ".db-journal")) or
               n.startswith(("find-", "rsp")) for n in new), new
    stems = {Path(k).stem for k in keys}
    assert acknowledged <= stems, sorted(acknowledged - stems)[:5]
    deadline = time.monotonic() + 60
    listed: set[str] = set()
    with archive.http(READ) as http:
        while time.monotonic() < deadline and not acknowledged <= listed:
            listed = set()
            todo = sorted(acknowledged)
            for i in range(0, len(todo), 50):
                r = http.get("/instances", params={"SOPInstanceUID": ",".join(todo[i:i + 50]),
                                                   "includefield": "SOPInstanceUID"})
                assert r.status_code in (200, 204), r.text
                if r.status_code == 200:
                    listed |= {m["00080018"]["Value"][0] for m in r.json()}
            if not acknowledged <= listed:
                time.sleep(0.5)
    assert acknowledged <= listed, sorted(acknowledged - listed)[:5]
