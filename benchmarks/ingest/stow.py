"""A STOW-RS client for the benchmark: the same Part 10 files, in requests of ``batch``
instances (multipart/related; type="application/dicom"), one request after another."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx


def bodies(paths: list[Path], batch: int) -> list[tuple[str, bytes]]:
    """(boundary, body) of every request, built before timing."""
    out = []
    for start in range(0, len(paths), batch):
        boundary = uuid.uuid4().hex
        chunks = []
        for path in paths[start:start + batch]:
            chunks += [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
                       path.read_bytes(), b"\r\n"]
        chunks.append(f"--{boundary}--\r\n".encode())
        out.append((boundary, b"".join(chunks)))
    return out


def send(url: str, requests: list[tuple[str, bytes]]) -> float:
    """POST every request to ``url`` (…/studies); seconds taken. Any failure raises."""
    start = time.perf_counter()
    with httpx.Client(timeout=300) as client:
        for boundary, body in requests:
            r = client.post(url, content=body, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; '
                                f"boundary={boundary}",
                "Accept": "application/dicom+json"})
            if r.status_code != 200:
                raise RuntimeError(f"STOW-RS to {url} answered {r.status_code}: {r.text[:500]}")
    return time.perf_counter() - start
