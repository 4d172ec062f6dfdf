"""HSM archive: studies written under a mounted file system's subdirectory, read back, verified.

Layouts (``<folder>`` = mount point / subdirectory):
- file-per-instance: ``<folder>/<study>/<series>/<sop>.dcm``
- tar-per-study: ``<folder>/<study>.tar`` (members ``<series>/<sop>.dcm``)
Both write ``<folder>/<study>.index.json`` last: the instances, their sizes and SHA-256 (and
for tar the archive's own size and digest). A retrieve reads the index, then waits (bounded)
for the data files, which a tape-backed HSM may take minutes to stage back.

Every file is written atomically (temp file, fsync, rename, fsync folder); a crashed job
leaves only temp files, which the next attempt removes. A STORE skips instances whose file
is already there with the catalogue's checksum, so resuming writes no duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dicomvault.dicom import instance_stored
from dicomvault.events import deterministic_id
from dicomvault.events.v1 import archive_pb2 as ar
from dicomvault.events.v1 import events_pb2 as ev
from dicomvault.jobs import Job, Outcome, ProgressReporter
from dicomvault.query import InstanceLocation
from dicomvault.store import instance_key, validate_uid
from hsm_archiver import metrics
from hsm_archiver.context import CatalogueError, Context
from hsm_archiver.settings import ArchiveConfig

log = logging.getLogger(__name__)

TMP = ".tmp-"


@dataclass(frozen=True)
class Entry:
    series: str
    sop: str
    size: int
    sha256: str
    sop_class: str = ""
    transfer_syntax: str = ""

    @property
    def member(self) -> str:
        return f"{self.series}/{self.sop}.dcm"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes, fsync: bool = True) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(target.parent)


class HsmArchive:
    def __init__(self, config: ArchiveConfig, ctx: Context) -> None:
        assert config.hsm is not None
        self.config = config
        self.t = config.hsm
        self.ctx = ctx
        self.last_reason: str | None = None
        self.free_bytes: int | None = None

    # --- readiness ------------------------------------------------------------------------
    def check(self) -> str | None:
        """None when ready, else why not (mount, sentinel, writability, free space)."""
        t, folder = self.t, self.t.folder
        if t.require_mount and not os.path.ismount(t.mount_point):
            return f"{t.mount_point} is not mounted"
        if not folder.is_dir():
            return f"archive folder {folder} is missing or not a folder"
        sentinel = folder / t.sentinel
        try:
            owner = sentinel.read_text().strip()
        except OSError:
            return f"sentinel file {sentinel} is missing"
        if owner != self.config.id:
            return f"sentinel file {sentinel} names {owner!r}, not {self.config.id!r}"
        try:  # really try: permission bits mean nothing to root
            fd, probe = tempfile.mkstemp(dir=folder, prefix=TMP + "probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            return f"archive folder {folder} is not writable: {exc.strerror or exc}"
        st = os.statvfs(folder)
        self.free_bytes = st.f_bavail * st.f_frsize
        metrics.HSM_FREE.labels(self.config.id).set(self.free_bytes)
        if self.free_bytes < t.free_space_min_bytes:
            return (f"free space {self.free_bytes} bytes in {folder} is below the threshold "
                    f"{t.free_space_min_bytes}")
        return None

    async def readiness(self) -> str | None:
        reason = await asyncio.to_thread(self.check)
        self.last_reason = reason
        metrics.ARCHIVE_READY.labels(self.config.id).set(0 if reason else 1)
        return reason

    # --- paths ----------------------------------------------------------------------------
    def index_path(self, study: str) -> Path:
        return self.t.folder / f"{validate_uid(study)}.index.json"

    def tar_path(self, study: str) -> Path:
        return self.t.folder / f"{validate_uid(study)}.tar"

    def file_path(self, study: str, e: Entry) -> Path:
        return self.t.folder / instance_key(study, e.series, e.sop)

    def location(self, study: str) -> str:
        if self.t.layout == "tar-per-study":
            return str(self.tar_path(study))
        return str(self.t.folder / validate_uid(study))

    def read_index(self, study: str) -> dict | None:
        try:
            return json.loads(self.index_path(study).read_text())
        except (OSError, ValueError):
            return None

    def _write_index(self, study: str, entries: list[Entry], extra: dict) -> None:
        doc = {"study_instance_uid": study, "archive_id": self.config.id,
               "layout": self.t.layout, "written_at": time.time(), **extra,
               "instances": [e.__dict__ | {"member": e.member} for e in entries]}
        atomic_write(self.index_path(study), json.dumps(doc, indent=1).encode(), self.t.fsync)

    def _clean_temps(self, study: str) -> None:
        """Remove what a crashed attempt left behind (temp files only, never data)."""
        for p in self.t.folder.glob(f"{TMP}{study}*"):
            p.unlink(missing_ok=True)
        study_dir = self.t.folder / study
        if study_dir.is_dir():
            for p in study_dir.rglob(f"{TMP}*"):
                p.unlink(missing_ok=True)

    # --- STORE ----------------------------------------------------------------------------
    async def store(self, job: Job, progress: ProgressReporter) -> Outcome:
        reason = await self.readiness()
        if reason:
            return Outcome.retry(reason)
        study = job.study_uid
        try:
            cached = await self.ctx.catalogue.instances(study, tier="cache")
        except CatalogueError as exc:
            return Outcome.retry(str(exc))
        if job.sop_uids:
            cached = [i for i in cached if i.sop_instance_uid in set(job.sop_uids)]
        if not cached:
            return Outcome.retry("the catalogue lists no instance of the study in the cache")
        await asyncio.to_thread(self._clean_temps, study)
        entries = [Entry(i.series_instance_uid, i.sop_instance_uid, i.size_bytes, i.sha256,
                         i.sop_class_uid, i.transfer_syntax_uid) for i in cached]
        keys = {i.sop_instance_uid: i.storage_key for i in cached}
        if self.t.layout == "tar-per-study":
            written, entries = await self._store_tar(study, entries, keys, progress)
        else:
            written = await self._store_files(study, entries, keys, progress)
        # Every instance is on the archive and was read back with the catalogue's checksum.
        metrics.ARCHIVED_BYTES.labels(self.config.id).inc(written)
        metrics.ARCHIVED_INSTANCES.labels(self.config.id).inc(len(entries))
        held = sorted(entries, key=lambda e: e.sop)
        fact = ev.StudyArchived(
            study_instance_uid=study, tier="hsm", archive_id=self.config.id,
            location=self.location(study), number_of_instances=len(entries),
            size_bytes=sum(e.size for e in entries),
            sop_instance_uids=[e.sop for e in held], sha256s=[e.sha256 for e in held],
            verified=True, job_id=job.id)
        await self.ctx.publish(self.ctx.topics.studies, fact, study,
                               deterministic_id("archived", self.config.id, job.id))
        return Outcome.done(f"{len(entries)} instances archived and verified",
                            completed=len(entries), result={"location": self.location(study)})

    def _cache_bytes(self, key: str, e: Entry) -> bytes:
        data = self.ctx.cache.get(key)
        if _sha(data) != e.sha256:
            raise ValueError(f"cache copy of {e.sop} does not match the catalogue checksum")
        return data

    async def _store_files(self, study: str, entries: list[Entry], keys: dict[str, str],
                           progress: ProgressReporter) -> int:
        written = 0

        def one(e: Entry) -> int:
            path = self.file_path(study, e)
            try:
                if path.stat().st_size == e.size and _sha(path.read_bytes()) == e.sha256:
                    return 0  # already archived by an earlier (interrupted) attempt
            except FileNotFoundError:
                pass
            data = self._cache_bytes(keys[e.sop], e)
            atomic_write(path, data, self.t.fsync)
            return len(data)

        for n, e in enumerate(entries, 1):
            written += await asyncio.to_thread(one, e)
            await progress(n, 0, len(entries) - n, "writing")

        def verify() -> list[str]:
            bad = []
            for e in entries:
                try:
                    if _sha(self.file_path(study, e).read_bytes()) != e.sha256:
                        bad.append(e.sop)
                except OSError:
                    bad.append(e.sop)
            return bad

        bad = await asyncio.to_thread(verify)
        if bad:
            raise OSError(f"read-back checksum mismatch for {len(bad)} instance(s): {bad[:3]}")
        await asyncio.to_thread(self._write_index, study, entries, {})
        return written

    async def _store_tar(self, study: str, entries: list[Entry], keys: dict[str, str],
                         progress: ProgressReporter) -> tuple[int, list[Entry]]:
        index = self.read_index(study)
        tar = self.tar_path(study)
        if index and tar.exists():
            have = {i["sop"]: Entry(**{k: i[k] for k in Entry.__dataclass_fields__})
                    for i in index.get("instances", [])}
            if all(e.sop in have and have[e.sop].sha256 == e.sha256 for e in entries):
                if await asyncio.to_thread(self._verify_tar, tar, list(have.values())) == []:
                    return 0, list(have.values())  # done by an earlier attempt
        else:
            have = {}
        # Keep what an earlier revision archived and the cache may no longer hold.
        wanted = {e.sop: e for e in entries}
        keep = [e for sop, e in have.items() if sop not in wanted]

        def build() -> tuple[int, str]:
            fd, tmp = tempfile.mkstemp(dir=self.t.folder, prefix=f"{TMP}{study}-", suffix=".tar")
            try:
                with os.fdopen(fd, "wb") as fh:
                    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tf:
                        old = tarfile.open(tar) if keep else None
                        try:
                            for e in keep:
                                assert old is not None
                                src = old.extractfile(e.member)
                                assert src is not None
                                _add(tf, e.member, src.read())
                        finally:
                            if old is not None:
                                old.close()
                        for e in entries:
                            _add(tf, e.member, self._cache_bytes(keys[e.sop], e))
                    fh.flush()
                    if self.t.fsync:
                        os.fsync(fh.fileno())
                size = os.path.getsize(tmp)
                os.replace(tmp, tar)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            if self.t.fsync:
                _fsync_dir(self.t.folder)
            return size, _file_sha(tar)

        await progress(0, 0, len(entries), "writing tar", force=True)
        size, digest = await asyncio.to_thread(build)
        all_entries = keep + entries
        bad = await asyncio.to_thread(self._verify_tar, tar, all_entries)
        if bad:
            raise OSError(f"read-back checksum mismatch in {tar.name}: {bad[:3]}")
        await asyncio.to_thread(self._write_index, study, all_entries,
                                {"tar": tar.name, "tar_size": size, "tar_sha256": digest})
        await progress(len(entries), 0, 0, "tar written and verified", force=True)
        return size, all_entries

    @staticmethod
    def _verify_tar(tar: Path, entries: list[Entry]) -> list[str]:
        bad = []
        try:
            with tarfile.open(tar) as tf:
                for e in entries:
                    try:
                        f = tf.extractfile(e.member)
                        if f is None or _sha(f.read()) != e.sha256:
                            bad.append(e.sop)
                    except KeyError:
                        bad.append(e.sop)
        except (OSError, tarfile.TarError):
            return [e.sop for e in entries]
        return bad

    # --- RETRIEVE -------------------------------------------------------------------------
    async def retrieve(self, job: Job, progress: ProgressReporter) -> Outcome:
        reason = await self.readiness()
        if reason:
            return Outcome.retry(reason)
        study = job.study_uid
        index = await asyncio.to_thread(self.read_index, study)
        if index is None:
            return Outcome.failed_permanently(f"no index of study {study} on {self.config.id}")
        entries = [Entry(**{k: i[k] for k in Entry.__dataclass_fields__})
                   for i in index.get("instances", [])]
        if job.sop_uids:
            entries = [e for e in entries if e.sop in set(job.sop_uids)]
        pending = {e.sop: e for e in entries}
        recalled: list[str] = []
        deadline = time.monotonic() + self.t.recall_timeout_s
        tar_layout = index.get("layout") == "tar-per-study"
        while True:
            ready = await asyncio.to_thread(self._readable, study, index, list(pending.values()),
                                            tar_layout)
            for e, data in ready:
                key = instance_key(study, e.series, e.sop)
                await asyncio.to_thread(self.ctx.cache.put, key, data)
                fact = instance_stored(data, key, source="recall")
                await self.ctx.publish(self.ctx.topics.instances, fact, study,
                                       deterministic_id("recall", job.id, e.sop))
                metrics.RECALLED_INSTANCES.labels(self.config.id).inc()
                recalled.append(e.sop)
                del pending[e.sop]
            if ready or not pending:
                await progress(len(recalled), 0, len(pending),
                               "recalled" if not pending else "waiting for the HSM to stage "
                               f"{len(pending)} file(s)", force=True)
            if not pending:
                break
            if time.monotonic() >= deadline:
                return Outcome.retry(f"{len(pending)} of {len(entries)} instance(s) did not come "
                                     f"back from the HSM within {self.t.recall_timeout_s:g} s",
                                     completed=len(recalled), failed=len(pending))
            await asyncio.sleep(min(self.t.recall_poll_s, max(0.0, deadline - time.monotonic())))
        fact = ar.StudyRecalled(
            study_instance_uid=study, tier="hsm", archive_id=self.config.id, job_id=job.id,
            number_of_instances=len(recalled), location=self.location(study),
            sop_instance_uids=sorted(recalled))
        await self.ctx.publish(self.ctx.topics.studies, fact, study,
                               deterministic_id("recalled", self.config.id, job.id))
        return Outcome.done(f"{len(recalled)} instances recalled", completed=len(recalled))

    def _readable(self, study: str, index: dict, entries: list[Entry],
                  tar_layout: bool) -> list[tuple[Entry, bytes]]:
        """The entries whose bytes can be read now and match their checksum."""
        out = []
        if tar_layout:
            tar = self.tar_path(study)
            try:
                if tar.stat().st_size != index.get("tar_size"):
                    return []  # still being staged back from tape
                with tarfile.open(tar) as tf:
                    for e in entries:
                        f = tf.extractfile(e.member)
                        data = f.read() if f is not None else b""
                        if _sha(data) == e.sha256:
                            out.append((e, data))
            except (OSError, tarfile.TarError, KeyError):
                return []
            return out
        for e in entries:
            try:
                data = self.file_path(study, e).read_bytes()
            except OSError:
                continue
            if _sha(data) == e.sha256:
                out.append((e, data))
        return out


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entries_of(instances: list[InstanceLocation]) -> list[Entry]:
    return [Entry(i.series_instance_uid, i.sop_instance_uid, i.size_bytes, i.sha256,
                  i.sop_class_uid, i.transfer_syntax_uid) for i in instances]
