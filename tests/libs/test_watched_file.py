"""A mounted Secret rotated the way the kubelet does it (a new file, then a symlink swap) is
read again, even when the new content has the same size and modification time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dicomvault.files import WatchedFile


def _rotate(mount: Path, name: str, text: str, mtime: float) -> None:
    data = mount / f"..{name}-{text}"
    data.mkdir()
    (data / "token").write_text(text)
    os.utime(data / "token", (mtime, mtime))
    tmp = mount / "..data_tmp"
    tmp.symlink_to(data.name)
    os.replace(tmp, mount / "..data")


def test_symlink_swap_with_same_size_and_mtime_is_noticed(tmp_path: Path) -> None:
    _rotate(tmp_path, "a", "token-AAAA", 1_700_000_000)
    (tmp_path / "token").symlink_to("..data/token")
    watched = WatchedFile(tmp_path / "token")
    assert watched.text() == "token-AAAA"
    first = watched.version
    assert watched.text() == "token-AAAA" and watched.version == first  # no change, no read
    _rotate(tmp_path, "b", "token-BBBB", 1_700_000_000)
    assert watched.text() == "token-BBBB"
    assert watched.version == first + 1


def test_a_removed_file_raises_and_forgets_the_old_text(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{}")
    watched = WatchedFile(path)
    assert watched.text() == "{}"
    path.unlink()
    with pytest.raises(OSError):
        watched.text()
    path.write_text("{}")
    assert watched.text() == "{}"
