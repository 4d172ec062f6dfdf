"""Files the services re-read when they change: mounted Kubernetes Secrets (bearer tokens,
the issuer's keys). The kubelet replaces a Secret's file through a symlink swap, so a change
is noticed by inode, modification time (ns) or size; reading again costs one ``stat``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class WatchedFile:
    """The text of ``path``, read again only when the file changed; thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._text = ""
        self.version = 0  # increases with every (re)read, so callers can cache what they parse
        self._lock = threading.Lock()

    def text(self) -> str:
        """The current text. Raises OSError when the file cannot be read (the cached text
        is dropped: a removed Secret does not keep working)."""
        with self._lock:
            try:
                st = os.stat(self.path)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp != self._stamp:
                    self._text = self.path.read_text()
                    self._stamp = stamp
                    self.version += 1
            except OSError:
                self._stamp, self._text = None, ""
                raise
            return self._text
