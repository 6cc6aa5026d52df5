"""Local disk: plain paths and ``file://`` URLs."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from robostore.errors import NotFound, StoreError
from robostore.store import AtomicWriter, Store

#: Marker in the names of temporary files, so listings skip those a crash left.
TMP_MARKER = ".robostore-tmp-"


class LocalStore(Store):
    """A dataset folder on local disk.

    Writes go to a temporary file in the destination folder, are flushed to disk, and
    renamed over the destination, so a reader (or a crash) never sees half a file.
    """

    schemes = ("file", "local")
    #: Full paths remembered by :meth:`read_into` (normalising a path costs as much as
    #: reading a cached frame); cleared when it grows past this many.
    _PATHS_REMEMBERED = 1 << 16

    def __init__(
        self, url: str, fs: LocalFileSystem, root: str, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(url, fs, root, storage_options)
        self._full_paths: dict[str, str] = {}

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[LocalFileSystem, str]:
        fs = LocalFileSystem(**storage_options)
        path = url.removeprefix("file://")
        return fs, os.path.abspath(os.path.expanduser(path))

    # ------------------------------------------------------------------ capabilities
    def local_path(self, path: str = "") -> str | None:
        return self.full_path(path) if path else self.root

    def read_into(self, path: str, buffers: Sequence[Any], offset: int) -> int:
        full = self._full_paths.get(path)
        if full is None:
            if len(self._full_paths) >= self._PATHS_REMEMBERED:
                self._full_paths.clear()
            full = self._full_paths[path] = self.full_path(path)
        try:
            fd = os.open(full, os.O_RDONLY)
            try:
                return os.preadv(fd, buffers, offset)
            finally:
                os.close(fd)
        except FileNotFoundError as exc:
            raise NotFound(f"{self.describe(path)}: not found") from exc
        except OSError as exc:
            raise StoreError(f"{self.describe(path)}: {type(exc).__name__}: {exc}") from exc

    def write_parts(self, path: str, parts: Sequence[bytes | memoryview], *, durable: bool = True) -> None:
        full = self.full_path(path)
        with self._errors(path):
            atomic_write(full, lambda fh: fh.writelines(parts), fsync=durable)

    def scratch_file(self, path: str) -> str:
        full = self.full_path(path)
        folder, name = os.path.split(full)
        with self._errors(path):
            os.makedirs(folder, exist_ok=True)
            fd, local = tempfile.mkstemp(prefix=f".{name}{TMP_MARKER}", suffix=os.path.splitext(name)[1], dir=folder)
            os.close(fd)
        return local

    def adopt_file(self, path: str, local: str) -> None:
        # A hard link publishes without copying; across filesystems it falls back to a copy.
        full = self.full_path(path)
        folder, name = os.path.split(full)
        with self._errors(path):
            os.makedirs(folder, exist_ok=True)
            tmp = os.path.join(folder, f".{name}{TMP_MARKER}{uuid.uuid4().hex[:8]}")
            try:
                os.link(local, tmp)
            except OSError:  # another filesystem, or no hard links there
                self.write(path, local)
                return
            os.replace(tmp, full)

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        return LocalWriter(self.full_path(path))

    # ------------------------------------------------------------------ backend hooks
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


class LocalWriter(AtomicWriter):
    """A temporary file beside the target, flushed and renamed over it on commit."""

    def __init__(self, full: str) -> None:
        self.full = full
        folder, name = os.path.split(full)
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{name}{TMP_MARKER}", dir=folder)
        self.fh: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def commit(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.full)

    def abort(self) -> None:
        self.fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)
