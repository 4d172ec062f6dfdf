"""Burner back ends: write one copy of a volume's image to a medium (or where one is made).

- ``iso-folder``: copy the image to a folder, for manual or external burning.
- ``command``: run a burning tool per copy from a template (``xorriso -as cdrecord -v
  dev={device} {iso}``, ``growisofs -Z {device}={iso}``), recording exit status and output.
- ``robot-hotfolder``: hand the image plus a job file to a disc publisher's hot folder and
  wait for its done or error file.

Each returns what to read back for verification: the device or file written, or the image.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from optical_burner.settings import BurnerSettings

OUTPUT_TAIL = 4000


@dataclass
class BurnResult:
    ok: bool
    target: str
    readback: Path | None = None
    exit_status: int | None = None
    output: str = ""
    error: str = ""


class Burner(Protocol):
    name: str

    async def burn(self, label: str, copy: int, iso: Path, volid: str) -> BurnResult: ...


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".tmp-{dst.name}")
    shutil.copyfile(src, tmp)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)


class IsoFolderBurner:
    name = "iso-folder"

    def __init__(self, cfg: BurnerSettings) -> None:
        self.folder = Path(cfg.iso_folder)

    async def burn(self, label: str, copy: int, iso: Path, volid: str) -> BurnResult:
        dst = self.folder / f"{label}-{copy}.iso"
        try:
            await asyncio.to_thread(_copy_atomic, iso, dst)
        except OSError as exc:
            return BurnResult(False, str(dst), error=f"cannot write {dst}: {exc}")
        return BurnResult(True, str(dst), readback=dst, exit_status=0)


class CommandBurner:
    name = "command"

    def __init__(self, cfg: BurnerSettings) -> None:
        self.cfg = cfg

    def device(self, copy: int) -> str:
        return self.cfg.devices[(copy - 1) % len(self.cfg.devices)]

    async def burn(self, label: str, copy: int, iso: Path, volid: str) -> BurnResult:
        values = {"iso": str(iso), "device": self.device(copy), "label": label,
                  "copy": str(copy), "volid": volid}
        argv = [arg.format(**values) for arg in shlex.split(self.cfg.command)]
        target = values["device"]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            return BurnResult(False, target, error=f"cannot run {argv[0]}: {exc}")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=self.cfg.timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return BurnResult(False, target, exit_status=proc.returncode,
                              error=f"{argv[0]} did not finish in {self.cfg.timeout_s:g} s")
        output = out.decode("utf-8", "replace")[-OUTPUT_TAIL:]
        if proc.returncode != 0:
            return BurnResult(False, target, exit_status=proc.returncode, output=output,
                              error=f"{argv[0]} exited with status {proc.returncode}")
        readback = self.cfg.readback.format(**values).removeprefix("stdio:")
        return BurnResult(True, target, readback=Path(readback) if readback else iso,
                          exit_status=0, output=output)


class RobotHotfolderBurner:
    name = "robot-hotfolder"

    def __init__(self, cfg: BurnerSettings) -> None:
        self.cfg = cfg

    async def burn(self, label: str, copy: int, iso: Path, volid: str) -> BurnResult:
        hot = Path(self.cfg.hot_folder)
        job = f"{label}-{copy}"
        image = hot / f"{job}.iso"
        job_file = hot / f"{job}{self.cfg.job_suffix}"
        done = hot / f"{job}{self.cfg.done_suffix}"
        failed = hot / f"{job}{self.cfg.error_suffix}"
        for stale in (done, failed):
            stale.unlink(missing_ok=True)
        try:
            await asyncio.to_thread(_copy_atomic, iso, image)
            body = (f"JobID={job}\nClientID=dicomvault\nCopies=1\nDataImageType=ISO\n"
                    f"ImageFile={image}\nVolumeName={volid}\nLabel={label}\nCopy={copy}\n")
            job_file.with_name(f".tmp-{job_file.name}").write_text(body)
            os.replace(job_file.with_name(f".tmp-{job_file.name}"), job_file)
        except OSError as exc:
            return BurnResult(False, str(job_file), error=f"cannot write to {hot}: {exc}")
        deadline = time.monotonic() + self.cfg.timeout_s
        while time.monotonic() < deadline:
            if failed.exists():
                reason = failed.read_text(errors="replace")[-OUTPUT_TAIL:]
                return BurnResult(False, str(job_file), output=reason,
                                  error=f"robot reported an error for {job}: {reason.strip()}")
            if done.exists():
                answer = done.read_text(errors="replace")[-OUTPUT_TAIL:]
                return BurnResult(True, str(job_file), output=answer, exit_status=0,
                                  readback=image if image.exists() else iso)
            await asyncio.sleep(self.cfg.poll_s)
        return BurnResult(False, str(job_file),
                          error=f"robot did not answer job {job} in {self.cfg.timeout_s:g} s")


def make_burner(cfg: BurnerSettings) -> Burner:
    if cfg.backend == "command":
        return CommandBurner(cfg)
    if cfg.backend == "robot-hotfolder":
        return RobotHotfolderBurner(cfg)
    return IsoFolderBurner(cfg)
