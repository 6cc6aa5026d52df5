"""The Store: one dataset root on one fsspec filesystem.

Everything above this layer speaks in dataset-relative paths (``meta/info.json``,
``data/chunk-000/file-000.parquet``), never in URLs. A backend is a subclass of
:class:`Store` that adapts the few things that differ between filesystems: how the
filesystem is built from a URL, what an atomic write is, which field of a listing is a
content token, and whether writes are transactions (:meth:`Store.commit`).

Code above this layer never asks which backend it has; it asks the store for a
capability (as zarr's ``supports_*`` properties and fsspec's ``local_file`` flag do):

- :attr:`Store.transactional` — writes become visible only at :meth:`Store.commit`;
- :meth:`Store.local_path` — the file's path on local disk, or None: callers hand it
  to libraries that read files best by path (PyAV, pyarrow, zarr);
- :meth:`Store.read_into` — a vectored read into caller-owned buffers (``preadv`` on
  local disk, no copy);
- :meth:`Store.write_parts` — an atomic write of several buffers, optionally without
  flushing to stable storage (caches whose files carry their own checksums);
- :meth:`Store.adopt_file` — publish a local file the caller hands over (a hard link
  on local disk, an upload elsewhere);
- :meth:`Store.open_writer` — an atomic streaming writer (:class:`AtomicWriter`) for
  files too large to hold in memory;
- :meth:`Store.upload_checksum` — which checksum of the bytes the backend reports as
  the content token of a fresh upload, so a copy can be verified without reading back.

The base class works on any fsspec filesystem, so it is also the generic fallback for
protocols robostore has no dedicated backend for.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any, ClassVar

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.spec import AbstractFileSystem

from robostore.errors import NotFound, PathError, RobostoreError, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a listing says about one file.

    ``token`` changes whenever the content changes (an ETag, md5, git oid, or on local
    disk size + mtime + inode). Tokens are only comparable within one backend.
    """

    path: str
    size: int
    token: str | None


@dataclass(frozen=True, slots=True)
class UploadChecksum:
    """Which checksum of the bytes a backend reports as the content token of an upload.

    ``md5``: the md5 of the whole content (S3's ETag of a single PUT, GCS's md5Hash);
    ``etag_part_size``: S3's multipart ETag, ``md5(part md5s)-N``, for parts of that size.
    Neither: the backend's tokens are not a checksum a writer can compute.
    """

    md5: bool = False
    etag_part_size: int | None = None


class AtomicWriter:
    """A file written in pieces that appears whole on :meth:`commit` or not at all."""

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        raise NotImplementedError

    def commit(self) -> None:
        """Make the file visible with everything written so far."""
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was written; the destination is left as it was."""
        raise NotImplementedError


class SpoolWriter(AtomicWriter):
    """The default writer: a local spool file handed to :meth:`Store.write` at the end
    (atomic on every backend)."""

    def __init__(self, store: Store, path: str) -> None:
        self.store = store
        self.path = path
        fd, self.tmp = tempfile.mkstemp(prefix="robostore-spool-")
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


class FileObjectWriter(AtomicWriter):
    """An fsspec streaming upload (S3 multipart, GCS resumable): the object appears on
    ``close``; ``discard`` aborts the upload so an interrupted one never becomes visible."""

    def __init__(self, store: Store, path: str, part_size: int) -> None:
        self.fh = store.fs.open(store.full_path(path), "wb", block_size=part_size)

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


def normalize_path(path: str, *, allow_root: bool = False) -> str:
    """Return ``path`` as a canonical dataset-relative POSIX path.

    Raises :class:`PathError` for anything that could leave the dataset root: absolute
    paths, ``..`` segments, backslashes, NUL bytes, or URL schemes.
    """
    if not isinstance(path, str):
        raise PathError(f"dataset path must be a string, got {type(path).__name__}: {path!r}")
    if "\x00" in path or "\\" in path or "://" in path:
        raise PathError(f"dataset path {path!r} contains a NUL byte, a backslash or a URL scheme")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise PathError(f"dataset path {path!r} is absolute; paths are relative to the dataset root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PathError(f"dataset path {path!r} contains '..' and could leave the dataset root")
    if not parts and not allow_root:
        raise PathError("dataset path is empty")
    return "/".join(parts)


def _first(detail: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = detail.get(key)
        if value not in (None, ""):
            return value
    return None


class Store:
    """A dataset root on an fsspec filesystem.

    Create one with :func:`robostore.open_store` (which picks the backend by URL scheme)
    or ``SomeStore.from_url(url, storage_options)``.

    Args:
        url: the dataset root as the user gave it, used in messages.
        fs: the filesystem.
        root: the root as a path on ``fs`` (no protocol, no trailing slash).
        storage_options: what ``fs`` was built from; kept so the store can be pickled
            into DataLoader workers and rebuilt there.
    """

    #: URL schemes this class serves (informational; the registry maps schemes).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: Block size of :meth:`open` for remote files (ranged reads of this size, cached).
    open_block_size: ClassVar[int | None] = None
    #: How many requests :meth:`read_many` keeps in flight.
    max_concurrency: ClassVar[int] = 32
    #: Threads :meth:`read_many` uses on filesystems that are not async.
    max_threads: ClassVar[int] = 8
    #: Exception types of the backend's client library that mean "the backend failed".
    client_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def __init__(
        self,
        url: str,
        fs: AbstractFileSystem,
        root: str,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.fs = fs
        self.root = root.rstrip("/")
        self.storage_options: dict[str, Any] = dict(storage_options or {})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
        """Build the store for ``url``; ``storage_options`` go to the fsspec filesystem."""
        options = dict(storage_options or {})
        try:
            fs, root = cls.make_filesystem(url, options)
        except RobostoreError:
            raise
        except (ImportError, ValueError, TypeError) as exc:
            raise StoreError(f"{url}: cannot open the storage backend: {exc}") from exc
        return cls(url, fs, root, options)

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[AbstractFileSystem, str]:
        """Build the filesystem and the root path on it for ``url``."""
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        return fs, root

    def reopen(self) -> Store:
        """A new store on the same root, with its own connections (for a forked process:
        event loops and sockets do not survive a fork). Nothing pending is carried over."""
        return type(self).from_url(self.url, self.storage_options)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the URL in the unpickling process: live connections and event
        # loops do not survive pickling, and workers started with spawn need a store.
        return (type(self).from_url, (self.url, self.storage_options))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    # ------------------------------------------------------------------ capabilities
    @property
    def transactional(self) -> bool:
        """Writes and deletes are staged and become visible to others only at
        :meth:`commit` (a Hub repo). Callers commit less often on such stores, and a
        lease on one needs no expiry (nothing is visible before the commit)."""
        return False

    # ------------------------------------------------------------------ paths
    def full_path(self, path: str) -> str:
        """The path of dataset-relative ``path`` on the filesystem."""
        rel = normalize_path(path)
        return f"{self.root}/{rel}" if self.root else rel

    def describe(self, path: str = "") -> str:
        """A human-readable location for messages: the dataset URL plus ``path``."""
        return f"{self.url}/{path}" if path else self.url

    def relative(self, full: str) -> str:
        """Inverse of :meth:`full_path` for paths returned by the filesystem."""
        full = self.fs._strip_protocol(full).rstrip("/")
        root = self.fs._strip_protocol(self.root).rstrip("/") if self.root else ""
        if root and not (full == root or full.startswith(root + "/")):
            raise PathError(f"{full!r} is not under the dataset root {self.url!r}")
        return full[len(root) :].lstrip("/") if root else full

    @contextlib.contextmanager
    def _errors(self, path: str = "") -> Iterator[None]:
        """Turn the backend's exceptions into the robostore hierarchy."""
        transport: tuple[type[BaseException], ...] = (OSError, TimeoutError, *self.client_errors)
        try:
            yield
        except RobostoreError:
            raise
        except FileNotFoundError as exc:
            cause = f" ({exc})" if str(exc) else ""
            raise NotFound(f"{self.describe(path)}: not found{cause}") from exc
        except IsADirectoryError as exc:
            raise NotFound(f"{self.describe(path)}: is a folder, not a file") from exc
        except PermissionError as exc:
            raise StoreError(
                f"{self.describe(path)}: permission denied ({exc}); check the credentials "
                "in storage_options or the environment"
            ) from exc
        except transport as exc:
            raise StoreError(f"{self.describe(path)}: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ reading
    def read(self, path: str) -> bytes:
        """The whole content of ``path``."""
        with self._errors(path):
            data: bytes = self.fs.cat_file(self.full_path(path))
            return data

    def read_range(self, path: str, start: int, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of ``path``.

        A negative ``start`` with ``end=None`` is a suffix read: the last ``-start``
        bytes. Ranges past the end of the file are clipped, as in HTTP.
        """
        if end is not None and start >= 0 and end < start:
            raise ValueError(f"read_range: end {end} < start {start}")
        if end is not None and end == start:
            # An empty HTTP range ("bytes=5-4") is invalid; S3 answers it with the whole object.
            self.info(path)  # still a typed NotFound for a missing file
            return b""
        with self._errors(path):
            data: bytes = self.fs.cat_file(self.full_path(path), start=start, end=end)
            return data

    def read_many(self, paths: Iterable[str], max_concurrency: int | None = None) -> dict[str, bytes]:
        """Read several files concurrently; returns ``{path: bytes}`` in input order.

        On async filesystems (s3, gcs, http) all requests run on the filesystem's one
        event loop with at most ``max_concurrency`` in flight; other filesystems use a
        small thread pool. A missing file raises :class:`NotFound` naming it.
        """
        rel = list(dict.fromkeys(paths))
        if not rel:
            return {}
        limit = max_concurrency or self.max_concurrency
        full = [self.full_path(p) for p in rel]
        if isinstance(self.fs, AsyncFileSystem):
            results = self._read_many_async(full, limit)
        elif len(full) == 1 or limit == 1:
            results = [self._capture(self.fs.cat_file, f) for f in full]
        else:
            with ThreadPoolExecutor(max_workers=min(limit, self.max_threads, len(full))) as pool:
                results = list(pool.map(lambda f: self._capture(self.fs.cat_file, f), full))
        out: dict[str, bytes] = {}
        for path, result in zip(rel, results, strict=True):
            if isinstance(result, BaseException):
                with self._errors(path):
                    raise result
            out[path] = result
        return out

    @staticmethod
    def _capture(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - re-raised, translated, by the caller
            return exc

    def _read_many_async(self, full: list[str], limit: int) -> list[Any]:
        fs = self.fs

        async def gather() -> list[Any]:
            sem = asyncio.Semaphore(limit)

            async def one(p: str) -> Any:
                async with sem:
                    try:
                        return await fs._cat_file(p)
                    except Exception as exc:  # noqa: BLE001 - re-raised, translated, by the caller
                        return exc

            return await asyncio.gather(*(one(p) for p in full))

        results: list[Any] = fsspec.asyn.sync(fs.loop, gather)
        return results

    def open(self, path: str, block_size: int | None = None) -> IO[bytes]:
        """A seekable binary file object for ``path`` (for PyAV, pyarrow, ...).

        Remote backends read it in ranged requests of ``block_size`` bytes, keeping
        recently used blocks, so a decoder seeking inside a large mp4 never downloads
        the whole file.
        """
        size = block_size or self.open_block_size
        kwargs: dict[str, Any] = {}
        if size:
            kwargs = {"block_size": size, "cache_type": "blockcache"}
        with self._errors(path):
            fh: IO[bytes] = self.fs.open(self.full_path(path), "rb", **kwargs)
            return fh

    def local_path(self, path: str = "") -> str | None:
        """The path of dataset-relative ``path`` (the root when empty) on local disk, or
        None when the store is not on local disk."""
        normalize_path(path, allow_root=True)
        return None

    def read_into(self, path: str, buffers: Sequence[Any], offset: int) -> int:
        """Read ``path`` from byte ``offset`` into the writable ``buffers``, filling
        them in order; returns the bytes read (fewer at the end of the file).

        Local disk reads straight into the buffers (one ``preadv``, no copy); other
        backends read the range and copy it in.
        """
        views = [memoryview(b).cast("B") for b in buffers]
        data = memoryview(self.read_range(path, offset, offset + sum(v.nbytes for v in views)))
        pos = 0
        for view in views:
            take = min(view.nbytes, len(data) - pos)
            view[:take] = data[pos : pos + take]
            pos += take
        return pos

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists as a file."""
        with self._errors(path):
            return bool(self.fs.isfile(self.full_path(path)))

    def info(self, path: str) -> FileInfo:
        """Size and content token of ``path``."""
        with self._errors(path):
            detail = self.fs.info(self.full_path(path))
        if detail.get("type") == "directory":
            raise NotFound(f"{self.describe(path)}: is a folder, not a file")
        return FileInfo(normalize_path(path), int(detail.get("size") or 0), self._token(path, detail))

    def list(self, prefix: str = "") -> list[str]:
        """Every file under the folder ``prefix`` (recursively), as sorted relative paths."""
        return [f.path for f in self.list_info(prefix)]

    def list_info(self, prefix: str = "") -> builtins.list[FileInfo]:  # `list` here is the method above
        """Like :meth:`list` with sizes and content tokens, from one listing."""
        rel = normalize_path(prefix, allow_root=True)
        base = f"{self.root}/{rel}" if rel else self.root
        with self._errors(prefix):
            try:
                found = self.fs.find(base, detail=True, withdirs=False)
            except FileNotFoundError:
                return []
        out = []
        for name, detail in found.items():
            if detail.get("type") == "directory":
                continue
            path = self.relative(name)
            if not path or self._is_internal(path):
                continue
            out.append(FileInfo(path, int(detail.get("size") or 0), self._token(path, detail)))
        out.sort(key=lambda f: f.path)
        return out

    # ------------------------------------------------------------------ writing
    def write(self, path: str, data: bytes | bytearray | memoryview | os.PathLike[str] | str) -> None:
        """Write ``data`` (bytes, or the path of a local file to upload) to ``path``.

        Atomic: a reader sees either the old content or the new one, never half a file.
        A ``str`` is taken as a local file path, not as content.
        """
        full = self.full_path(path)
        with self._errors(path):
            if isinstance(data, (bytes, bytearray, memoryview)):
                self._write_bytes(full, bytes(data))
            else:
                self._write_file(full, os.fspath(data))

    def _write_bytes(self, full: str, data: bytes) -> None:
        # One PUT is atomic on object stores.
        self.fs.pipe_file(full, data)

    def _write_file(self, full: str, local: str) -> None:
        self.fs.put_file(local, full)

    def write_parts(self, path: str, parts: Sequence[bytes | memoryview], *, durable: bool = True) -> None:
        """Write the concatenation of ``parts`` to ``path``, atomically like :meth:`write`.

        ``durable=False`` allows skipping the flush to stable storage (local disk): after
        a power loss the file may be empty or torn, so only files that carry their own
        checksums (the frame cache's shards) should be written that way.
        """
        self.write(path, b"".join(parts))

    def scratch_file(self, path: str) -> str:
        """A new, empty local file in which to build ``path`` before :meth:`adopt_file`.

        Local stores make it beside the target (so adopting it is a link) and name it so
        that listings leave it out; others make it in the system's temporary folder. The
        caller deletes it once adopted or given up.
        """
        normalize_path(path)
        fd, local = tempfile.mkstemp(prefix="robostore-scratch-", suffix=os.path.splitext(path)[1])
        os.close(fd)
        return local

    def adopt_file(self, path: str, local: str) -> None:
        """Make the local file ``local`` the content of ``path``.

        The caller hands the file over: it will neither change nor need it afterwards
        (it may delete it). Local stores link it in place (no copy); others upload it.
        """
        self.write(path, local)

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        """An atomic writer of ``path`` for content that arrives in pieces of about
        ``part_size`` bytes (see :class:`AtomicWriter`)."""
        normalize_path(path)
        return SpoolWriter(self, path)

    def upload_checksum(self, *, part_size: int | None = None, file_size: int | None = None) -> UploadChecksum:
        """The checksum this backend reports as the content token of an upload: of bytes
        given to :meth:`write` (no argument), of content written through
        :meth:`open_writer` in parts of ``part_size``, or of a local file of
        ``file_size`` bytes given to :meth:`write`."""
        return UploadChecksum()

    def delete(self, path: str, missing_ok: bool = False) -> None:
        """Delete ``path``; a missing file raises :class:`NotFound` unless ``missing_ok``."""
        full = self.full_path(path)
        with self._errors(path):
            # Deleting a missing object succeeds silently on S3, so look first.
            if not self.fs.isfile(full):
                if missing_ok:
                    return
                raise FileNotFoundError(full)
            self.fs.rm_file(full)

    def commit(self, message: str = "robostore commit") -> None:
        """Make pending writes visible, for backends where writes are transactions
        (:attr:`transactional`). A no-op on filesystems where each write is visible at once.
        """

    def close(self) -> None:
        """Flush pending work and release resources."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ backend hooks
    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        """The content token in one entry of ``fs.info``/``fs.find(detail=True)``."""
        value = _first(detail, "ETag", "etag", "md5Hash", "crc32c", "sha256", "oid", "checksum")
        if value is not None:
            return str(value).strip('"')
        mtime = _first(detail, "mtime", "LastModified", "last_modified", "updated", "created")
        return f"{detail.get('size')}-{mtime}" if mtime is not None else None

    def _is_internal(self, path: str) -> bool:
        """Files the backend keeps for itself that listings should not show."""
        return False


def content_hash(data: bytes) -> str:
    """A short content token for backends whose listings have none."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()
