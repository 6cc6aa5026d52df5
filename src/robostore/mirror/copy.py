"""Moving bytes: copy one file between stores in bounded memory, hashing on the way.

A file no larger than one part is read whole and written with one
:meth:`Store.write`. A larger one is read in parts of ``part_size`` bytes (ranged
reads) and written through a *sink* that keeps the destination atomic:

- local disk: a temporary file beside the target, renamed over it when complete;
- S3 / GCS: the filesystem's streaming writer (multipart upload on S3, resumable
  upload on GCS), completed on close and aborted (``discard``) on failure, so an
  interrupted upload never becomes a visible object;
- anything else (the Hub, memory, third-party backends): a local spool file handed to
  :meth:`Store.write`, which is atomic on every backend.

At most two parts per transfer are in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from fsspec.implementations.local import LocalFileSystem

from robostore.backends.local import TMP_MARKER
from robostore.errors import RobostoreError, StoreError
from robostore.store import Store

#: Bytes per ranged read and per uploaded part (S3 parts must be at least 5 MiB).
PART_SIZE = 8 * 2**20
#: Filesystems whose streaming writers are atomic (object appears on close) and abortable.
STREAMING_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs"})

ProgressFn = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Written:
    """What landed at the destination: its size and sha256."""

    size: int
    sha256: str


def _protocols(store: Store) -> set[str]:
    proto = store.fs.protocol
    return {proto} if isinstance(proto, str) else set(proto)


def _read_parts(store: Store, path: str, part_size: int, size: int | None = None) -> Any:
    """``path`` in ranged reads of ``part_size``, up to ``size`` bytes (looked up when None)."""
    if size is None:
        size = store.info(path).size
    offset = 0
    # Ranges stay inside the file: S3 answers a range that starts at the end with 416.
    while offset < size:
        chunk = store.read_range(path, offset, min(size, offset + part_size))
        if not chunk:
            return
        yield chunk
        offset += len(chunk)
    if size == 0:
        yield b""


class _Sink:
    def write(self, chunk: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class _LocalSink(_Sink):
    """Temporary file in the target folder, renamed over the target when complete."""

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


class _StreamSink(_Sink):
    """The object store's own streaming upload (multipart / resumable)."""

    def __init__(self, store: Store, full: str, part_size: int) -> None:
        self.fh = store.fs.open(full, "wb", block_size=part_size)

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def commit(self) -> None:
        self.fh.close()

    def abort(self) -> None:
        # discard() aborts the multipart / resumable upload; close() would complete it.
        with contextlib.suppress(Exception):
            self.fh.discard()
        # Mark it closed so the file's finaliser does not try to complete the upload.
        self.fh.closed = True


class _SpoolSink(_Sink):
    """A local spool file uploaded with the store's atomic ``write`` at the end."""

    def __init__(self, store: Store, path: str) -> None:
        self.store = store
        self.path = path
        fd, self.tmp = tempfile.mkstemp(prefix="robostore-mirror-")
        self.fh: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.fh.write(chunk)

    def commit(self) -> None:
        self.fh.close()
        try:
            self.store.write(self.path, self.tmp)
        finally:
            os.unlink(self.tmp)

    def abort(self) -> None:
        self.fh.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


def _sink(store: Store, path: str, part_size: int) -> _Sink:
    if isinstance(store.fs, LocalFileSystem):
        return _LocalSink(store.full_path(path))
    if _protocols(store) & STREAMING_PROTOCOLS:
        return _StreamSink(store, store.full_path(path), part_size)
    return _SpoolSink(store, path)


def write_chunks(
    dst: Store, path: str, chunks: Any, *, part_size: int = PART_SIZE, on_bytes: ProgressFn | None = None
) -> Written:
    """Write an iterable of byte chunks to ``dst`` atomically; returns size and sha256."""
    digest = hashlib.sha256()
    size = 0
    iterator = iter(chunks)
    first = next(iterator, b"")
    second = next(iterator, None)
    if second is None:
        # One part: a single write (one PUT on object stores).
        digest.update(first)
        dst.write(path, first)
        if on_bytes:
            on_bytes(len(first))
        return Written(len(first), digest.hexdigest())
    try:
        sink = _sink(dst, path, part_size)
    except RobostoreError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"{dst.describe(path)}: cannot start the upload: {exc}") from exc
    try:
        for chunk in _chain(first, second, iterator):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
            if on_bytes:
                on_bytes(len(chunk))
        sink.commit()
    except BaseException as exc:
        sink.abort()
        if isinstance(exc, (RobostoreError, KeyboardInterrupt, SystemExit)) or not isinstance(exc, Exception):
            raise
        raise StoreError(f"{dst.describe(path)}: upload failed: {type(exc).__name__}: {exc}") from exc
    return Written(size, digest.hexdigest())


def _chain(first: bytes, second: bytes, rest: Any) -> Any:
    yield first
    yield second
    yield from rest


def copy_file(
    src: Store,
    src_path: str,
    dst: Store,
    dst_path: str,
    *,
    part_size: int = PART_SIZE,
    size: int | None = None,
    on_bytes: ProgressFn | None = None,
) -> Written:
    """Copy ``src_path`` of ``src`` (``size`` bytes, from the listing) to ``dst_path`` of ``dst``.

    Returns what was written.
    """
    parts = _read_parts(src, src_path, part_size, size)
    return write_chunks(dst, dst_path, parts, part_size=part_size, on_bytes=on_bytes)


def write_local_file(
    dst: Store, path: str, local: str, *, part_size: int = PART_SIZE, on_bytes: ProgressFn | None = None
) -> Written:
    """Upload the local file ``local`` to ``path`` of ``dst``; returns what was written."""

    def parts() -> Any:
        with open(local, "rb") as fh:
            while chunk := fh.read(part_size):
                yield chunk

    return write_chunks(dst, path, parts(), part_size=part_size, on_bytes=on_bytes)


def sha256_of(store: Store, path: str, *, size: int | None = None, part_size: int = PART_SIZE) -> Written:
    """Size and sha256 of ``path`` of ``store`` (``size`` bytes when known), read in parts."""
    digest = hashlib.sha256()
    total = size
    size = 0
    for chunk in _read_parts(store, path, part_size, total):
        digest.update(chunk)
        size += len(chunk)
    return Written(size, digest.hexdigest())
