"""Fill claims: who is decoding a shard right now, so others do not decode it twice.

A claim is taken before a shard is decoded and released once it is written. Within a
process it is an entry in a set; on a local cache it is also a file created with
``O_CREAT | O_EXCL`` under ``claims/``, which the kernel grants to one process only.
A claim older than ``STALE_S`` (its owner died mid-fill) is taken over. On remote
caches there is no cheap exclusive create, so two processes may decode the same shard;
both then write the same bytes, atomically, and nothing is lost.

A claim only saves work: correctness never depends on it, since every shard is written
whole and atomically by whoever decoded it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable

STALE_S = 120.0


class Claims:
    """Claims on shards of one cache; ``local_dir`` is the claims folder on local disk, if any."""

    def __init__(self, local_dir: str | None) -> None:
        self.local_dir = local_dir
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def take(self, name: str) -> Callable[[], None] | None:
        """Claim ``name``; returns the release function, or None when someone else holds it."""
        with self._lock:
            if name in self._held:
                return None
            self._held.add(name)
        path = self._file(name)
        if path is not None and not _create(path):
            with self._lock:
                self._held.discard(name)
            return None

        def release() -> None:
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            with self._lock:
                self._held.discard(name)

        return release

    def _file(self, name: str) -> str | None:
        if self.local_dir is None:
            return None
        return os.path.join(self.local_dir, name.replace("/", "~"))


def _create(path: str) -> bool:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                age = time.time() - os.stat(path).st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if age < STALE_S:
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # its owner died mid-fill
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return True
    return False
