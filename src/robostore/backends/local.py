"""Local disk: plain paths and ``file://`` URLs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from robostore.store import Store

#: Marker in the names of temporary files, so listings skip those a crash left.
TMP_MARKER = ".robostore-tmp-"


class LocalStore(Store):
    """A dataset folder on local disk.

    Writes go to a temporary file in the destination folder, are flushed to disk, and
    renamed over the destination, so a reader (or a crash) never sees half a file.
    """

    schemes = ("file", "local")

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[LocalFileSystem, str]:
        fs = LocalFileSystem(**storage_options)
        path = url.removeprefix("file://")
        return fs, os.path.abspath(os.path.expanduser(path))

    def _write_bytes(self, full: str, data: bytes) -> None:
        atomic_write(full, lambda fh: fh.write(data))

    def _write_file(self, full: str, local: str) -> None:
        def copy(fh: Any) -> None:
            with open(local, "rb") as src:
                while chunk := src.read(1 << 22):
                    fh.write(chunk)

        atomic_write(full, copy)

    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        # os.replace gives a new inode, so inode + mtime + size changes with every write.
        return f"{detail.get('size')}-{detail.get('mtime')}-{detail.get('ino')}"

    def _is_internal(self, path: str) -> bool:
        return TMP_MARKER in path.rsplit("/", 1)[-1]


def atomic_write(full: str, fill: Callable[[IO[bytes]], object], *, fsync: bool = True) -> None:
    """Write a local file atomically: ``fill`` writes a temporary file in the same
    folder, which is then renamed over ``full``. With ``fsync`` the bytes are on disk
    before the rename, so not even a power loss leaves a torn file behind.
    """
    folder, name = os.path.split(full)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}{TMP_MARKER}", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, full)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
