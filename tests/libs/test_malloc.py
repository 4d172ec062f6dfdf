"""Service processes reuse large buffers instead of mapping each one afresh (glibc)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import ctypes, json, sys
from dicomvault.lifecycle import malloc

class Info(ctypes.Structure):  # struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
tuned = malloc.keep_large_buffers() if sys.argv[1] == "tune" else None
body = bytearray(8 << 20)  # a STOW-RS body's worth
mapped = libc.mallinfo2().hblkhd  # bytes in blocks of their own mmap
del body
kept = libc.mallinfo2().fordblks  # bytes free in the heap, kept for reuse
print(json.dumps({"tuned": tuned, "mapped": mapped, "kept": kept}))
"""


def _probe(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], env={**environ, **env},
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_large_buffers_come_from_the_heap_and_stay_for_reuse() -> None:
    before = _probe("default")
    assert before["mapped"] >= 8 << 20  # glibc's default: a fresh mmap, unmapped when freed
    assert before["kept"] < 8 << 20

    after = _probe("tune")
    assert after["tuned"] is True
    assert after["mapped"] < 8 << 20  # from the heap ...
    assert after["kept"] >= 8 << 20  # ... and kept there once freed, warm for the next one


def test_the_operators_own_glibc_settings_win() -> None:
    probe = _probe("tune", MALLOC_TRIM_THRESHOLD_="131072")
    assert probe["tuned"] is False
    assert probe["mapped"] >= 8 << 20  # nothing changed
