"""Moving bytes: copy one file between stores in bounded memory, hashing on the way.

A file of known size up to ``whole_max`` bytes (:class:`Limits`) moves whole: one read
request and one :meth:`Store.write` (one GET and one PUT on object stores: no
multipart bookkeeping for the servers, no extra round trips), holding its size from a
:class:`ByteBudget` shared by all transfers so that memory stays bounded. A larger
local file is uploaded by the destination store from disk. A larger remote one is read
in parts of ``part_size`` bytes (ranged reads) and written through the destination's
atomic writer (:meth:`Store.open_writer`): a temporary file renamed over the target on
local disk, the multipart / resumable upload on S3 and GCS (aborted on failure, so an
interrupted upload never becomes a visible object), a local spool file handed to
:meth:`Store.write` elsewhere.

While the bytes pass, they are hashed: sha256 always, and the checksum the destination
reports as its content token (:meth:`Store.upload_checksum`), so the copy is verified
from a listing without reading it back.

Streamed transfers hold at most two parts each in memory; whole-file transfers
together hold at most the budget.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from robostore.errors import RobostoreError, StoreError
from robostore.store import Store, UploadChecksum

#: Bytes per ranged read and per uploaded part (S3 parts must be at least 5 MiB).
PART_SIZE = 8 * 2**20
#: Files up to this size move whole: one read, one write request. Below s3fs's 100 MiB
#: multipart threshold, so that write is a single PUT whose ETag is the md5.
WHOLE_FILE_MAX = 64 * 2**20
#: Bytes that whole-file transfers together may hold in memory.
MEMORY_LIMIT = 256 * 2**20

#: Told the bytes moved, step by step (and 0 before a transfer starts); raising from it
#: cancels the transfer.
ProgressFn = Callable[[int], None]


class ByteBudget:
    """A semaphore counted in bytes: bounds the file content held in memory at once."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._used = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        """Wait until ``nbytes`` (at most the whole budget) are free, and hold them."""
        nbytes = min(nbytes, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self._used + nbytes <= self.limit)
            self._used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self._used -= nbytes
                self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class Limits:
    """How files move: ranged reads and uploaded parts of ``part_size`` bytes; files up
    to ``whole_max`` bytes whole, holding their size from ``budget`` while they do."""

    part_size: int = PART_SIZE
    whole_max: int = WHOLE_FILE_MAX
    budget: ByteBudget | None = None


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Written:
    """What landed at the destination: its size, sha256, and the content tokens an
    object store would report for these bytes (S3 ETags, GCS md5Hash)."""

    size: int
    sha256: str
    tokens: frozenset[str] = frozenset()


class Hasher:
    """sha256 of a byte stream plus, where the destination reports one, its checksum.

    ``md5=True`` (S3, GCS): the md5 as S3 (hex ETag of a single PUT) and GCS (base64
    md5Hash) report it; ``etag_part_size``: the S3 multipart ETag ``md5(part md5s)-N``
    for parts of that size. Each checksum costs a pass of CPU over the bytes, so only
    the one the destination can confirm is computed.
    """

    def __init__(self, md5: bool = False, etag_part_size: int | None = None) -> None:
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5() if md5 else None
        self.size = 0
        sizes = (etag_part_size,) if etag_part_size else ()
        self._parts: dict[int, list[bytes]] = {p: [] for p in sizes}
        self._current = {p: hashlib.md5() for p in sizes}
        self._fill = dict.fromkeys(sizes, 0)

    @classmethod
    def for_upload(cls, checksum: UploadChecksum) -> Hasher:
        """The hasher that computes ``checksum`` (see :meth:`Store.upload_checksum`)."""
        return cls(md5=checksum.md5, etag_part_size=checksum.etag_part_size)

    def update(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)
        view = memoryview(chunk)
        for part, md5 in self._current.items():
            pos = 0
            while pos < len(view):
                take = min(part - self._fill[part], len(view) - pos)
                md5.update(view[pos : pos + take])
                self._fill[part] += take
                pos += take
                if self._fill[part] == part:
                    self._parts[part].append(md5.digest())
                    md5 = self._current[part] = hashlib.md5()
                    self._fill[part] = 0

    def result(self) -> Written:
        tokens: set[str] = set()
        if self.md5 is not None:
            tokens |= {self.md5.hexdigest(), base64.b64encode(self.md5.digest()).decode()}
        for part, digests in self._parts.items():
            done = digests + ([self._current[part].digest()] if self._fill[part] else [])
            if len(done) > 1:
                tokens.add(f"{hashlib.md5(b''.join(done)).hexdigest()}-{len(done)}")
        return Written(self.size, self.sha.hexdigest(), frozenset(tokens))


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


def write_chunks(
    dst: Store, path: str, chunks: Any, *, part_size: int = PART_SIZE, on_bytes: ProgressFn | None = None
) -> Written:
    """Write an iterable of byte chunks to ``dst`` atomically; returns size and sha256."""
    iterator = iter(chunks)
    first = next(iterator, b"")
    second = next(iterator, None)
    if second is None:
        # One part: a single write (one PUT on object stores).
        hasher = Hasher.for_upload(dst.upload_checksum())
        hasher.update(first)
        dst.write(path, first)
        if on_bytes:
            on_bytes(len(first))
        return hasher.result()
    hasher = Hasher.for_upload(dst.upload_checksum(part_size=part_size))
    try:
        sink = dst.open_writer(path, part_size)
    except RobostoreError:
        raise
    except (OSError, ValueError) as exc:
        raise StoreError(f"{dst.describe(path)}: cannot start the upload: {exc}") from exc
    try:
        for chunk in _chain(first, second, iterator):
            hasher.update(chunk)
            sink.write(chunk)
            if on_bytes:
                on_bytes(len(chunk))
        sink.commit()
    except BaseException as exc:
        sink.abort()
        if isinstance(exc, (RobostoreError, KeyboardInterrupt, SystemExit)) or not isinstance(exc, Exception):
            raise
        raise StoreError(f"{dst.describe(path)}: upload failed: {type(exc).__name__}: {exc}") from exc
    return hasher.result()


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
    size: int | None = None,
    on_bytes: ProgressFn | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Written:
    """Copy ``src_path`` of ``src`` (``size`` bytes, from the listing) to ``dst_path`` of ``dst``.

    Returns what was written. A file up to ``limits.whole_max`` moves whole (see the
    module docs). A larger file on local disk is handed to the destination's own upload
    (``Store.write(path, local_file)``: s3fs/gcsfs upload it in concurrent parts), which
    measured faster than pushing parts through a streaming writer.
    """
    if size is not None and size <= limits.whole_max:
        with limits.budget.hold(size) if limits.budget else contextlib.nullcontext():
            if on_bytes:
                on_bytes(0)  # a transfer waiting for the budget may have been cancelled meanwhile
            whole = _read_parts(src, src_path, max(size, 1), size)
            return write_chunks(dst, dst_path, whole, part_size=limits.part_size, on_bytes=on_bytes)
    local = src.local_path(src_path)
    if local is not None:
        hasher = Hasher.for_upload(dst.upload_checksum(file_size=os.path.getsize(local)))
        with open(local, "rb") as fh:
            while chunk := fh.read(limits.part_size):
                hasher.update(chunk)
        dst.write(dst_path, local)
        if on_bytes:
            on_bytes(hasher.size)
        return hasher.result()
    parts = _read_parts(src, src_path, limits.part_size, size)
    return write_chunks(dst, dst_path, parts, part_size=limits.part_size, on_bytes=on_bytes)


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
    hasher = Hasher()
    for chunk in _read_parts(store, path, part_size, size):
        hasher.update(chunk)
    return hasher.result()
