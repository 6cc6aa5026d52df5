"""A wrapper store that stages writes and deletes until :meth:`StagedStore.commit`.

:class:`WrapperStore` hands every call to an inner store (as zarr's ``WrapperStore``
does); :class:`StagedStore` keeps writes and deletes in memory (small files) or in
private local copies (files given by path) and sends them all at once to a
:class:`CommitTarget` — the Hub repo store, whose commit is one ``create_commit``.
Reads through the wrapper see the staged state (read-your-writes); other stores and
processes see it once committed. The wrapper commits by itself when the staged files or
bytes reach its thresholds, and :meth:`StagedStore.close` commits what is left.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, runtime_checkable

from robostore.errors import NotFound, StoreError
from robostore.store import (
    AtomicWriter,
    FileInfo,
    SpoolWriter,
    Store,
    UploadChecksum,
    normalize_path,
)

log = logging.getLogger(__name__)


class WrapperStore(Store):
    """A store that hands every call to ``inner``; subclasses change some of them.

    Attributes the wrapper does not have (a backend's own, e.g. a Hub store's ``api``)
    are looked up on ``inner``.
    """

    def __init__(self, inner: Store) -> None:
        super().__init__(inner.url, inner.fs, inner.root, inner.storage_options)
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.inner,))

    def reopen(self) -> Store:
        return type(self)(self.inner.reopen())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    @property
    def transactional(self) -> bool:
        return self.inner.transactional

    def full_path(self, path: str) -> str:
        return self.inner.full_path(path)

    def describe(self, path: str = "") -> str:
        return self.inner.describe(path)

    def relative(self, full: str) -> str:
        return self.inner.relative(full)

    def read(self, path: str) -> bytes:
        return self.inner.read(path)

    def read_range(self, path: str, start: int, end: int | None = None) -> bytes:
        return self.inner.read_range(path, start, end)

    def read_many(self, paths: Iterable[str], max_concurrency: int | None = None) -> dict[str, bytes]:
        return self.inner.read_many(paths, max_concurrency)

    def read_into(self, path: str, buffers: Sequence[Any], offset: int) -> int:
        return self.inner.read_into(path, buffers, offset)

    def open(self, path: str, block_size: int | None = None) -> IO[bytes]:
        return self.inner.open(path, block_size)

    def local_path(self, path: str = "") -> str | None:
        return self.inner.local_path(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def info(self, path: str) -> FileInfo:
        return self.inner.info(path)

    def list_info(self, prefix: str = "") -> list[FileInfo]:
        return self.inner.list_info(prefix)

    def write(self, path: str, data: bytes | bytearray | memoryview | os.PathLike[str] | str) -> None:
        self.inner.write(path, data)

    def write_parts(self, path: str, parts: Sequence[bytes | memoryview], *, durable: bool = True) -> None:
        self.inner.write_parts(path, parts, durable=durable)

    def scratch_file(self, path: str) -> str:
        return self.inner.scratch_file(path)

    def adopt_file(self, path: str, local: str) -> None:
        self.inner.adopt_file(path, local)

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        return self.inner.open_writer(path, part_size)

    def upload_checksum(self, *, part_size: int | None = None, file_size: int | None = None) -> UploadChecksum:
        return self.inner.upload_checksum(part_size=part_size, file_size=file_size)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        self.inner.delete(path, missing_ok)

    def commit(self, message: str = "robostore commit") -> None:
        self.inner.commit(message)

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True, slots=True)
class StagedFile:
    """A staged file: in memory (``data``) or a private copy on local disk (``file``)."""

    size: int
    data: bytes | None = None
    file: str | None = None

    def content(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.file is not None
        with open(self.file, "rb") as fh:
            return fh.read()

    def open(self) -> IO[bytes]:
        return io.BytesIO(self.data) if self.data is not None else open(self.file or "", "rb")


@runtime_checkable
class CommitTarget(Protocol):
    """What :class:`StagedStore` commits to (:class:`robostore.backends.hf.HfRepoStore`)."""

    def commit_changes(self, changes: Mapping[str, StagedFile | None], message: str) -> None:
        """Apply every write (a :class:`StagedFile`) and delete (None) as one transaction."""

    def staged_token(self, item: StagedFile) -> str:
        """The content token the backend will report for ``item`` once committed."""


class StagedStore(WrapperStore):
    """Writes and deletes wait for :meth:`commit`, which sends them as one transaction.

    Args:
        inner: the store reads fall through to, and the :class:`CommitTarget` commits go to.
        commit_every_files, commit_every_bytes: commit by itself when this many
            operations or bytes are staged.
    """

    def __init__(self, inner: Store, commit_every_files: int, commit_every_bytes: int) -> None:
        super().__init__(inner)
        self.commit_every_files = commit_every_files
        self.commit_every_bytes = commit_every_bytes
        if not isinstance(inner, CommitTarget):
            raise TypeError(f"{inner!r} cannot take staged commits (no commit_changes / staged_token)")
        self._target: CommitTarget = inner
        self._staged: dict[str, StagedFile | None] = {}
        self._staged_bytes = 0
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._staging_dir: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.inner, self.commit_every_files, self.commit_every_bytes))

    def reopen(self) -> Store:
        return type(self)(self.inner.reopen(), self.commit_every_files, self.commit_every_bytes)

    @property
    def transactional(self) -> bool:
        return True

    # ------------------------------------------------------------------ staging
    def _lookup(self, rel: str) -> tuple[bool, StagedFile | None]:
        """``(True, staged or None-for-deleted)`` when ``rel`` has a staged operation."""
        with self._lock:
            if rel in self._staged:
                return True, self._staged[rel]
        return False, None

    def _stage(self, rel: str, item: StagedFile | None) -> None:
        with self._lock:
            old = self._staged.get(rel)
            if old is not None:
                self._staged_bytes -= old.size
                if old.file:
                    with contextlib.suppress(OSError):
                        os.unlink(old.file)
            self._staged[rel] = item
            if item is not None:
                self._staged_bytes += item.size
            due = len(self._staged) >= self.commit_every_files or self._staged_bytes >= self.commit_every_bytes
        if due:
            self.commit(f"robostore: upload {len(self._staged)} files")

    def _private_copy(self, local: str) -> str:
        """A private copy of ``local``, so later changes to it do not leak into the commit.

        (A hard link would be cheaper but shares the inode: a caller rewriting the file in
        place would change what gets committed.)
        """
        with self._lock:
            if self._staging_dir is None:
                self._staging_dir = tempfile.mkdtemp(prefix="robostore-staged-")
            target = os.path.join(self._staging_dir, uuid.uuid4().hex)
        shutil.copyfile(local, target)
        return target

    @property
    def pending(self) -> int:
        """How many staged operations the next :meth:`commit` will send."""
        with self._lock:
            return len(self._staged)

    # ------------------------------------------------------------------ writing
    def write(self, path: str, data: bytes | bytearray | memoryview | os.PathLike[str] | str) -> None:
        """Stage ``data`` for ``path``; it is sent by the next :meth:`commit`."""
        rel = normalize_path(path)
        if isinstance(data, (bytes, bytearray, memoryview)):
            item = StagedFile(len(data), data=bytes(data))
        else:
            local = os.fspath(data)
            try:
                item = StagedFile(os.path.getsize(local), file=self._private_copy(local))
            except OSError as exc:
                raise StoreError(f"{self.describe(path)}: cannot read local file {local!r}: {exc}") from exc
        self._stage(rel, item)

    # The base class's composites, so that they stage through :meth:`write`.
    write_parts = Store.write_parts
    adopt_file = Store.adopt_file
    read_into = Store.read_into

    def open_writer(self, path: str, part_size: int) -> AtomicWriter:
        normalize_path(path)
        return SpoolWriter(self, path)

    def upload_checksum(self, *, part_size: int | None = None, file_size: int | None = None) -> UploadChecksum:
        return UploadChecksum()

    def delete(self, path: str, missing_ok: bool = False) -> None:
        """Stage the deletion of ``path``."""
        rel = normalize_path(path)
        staged, item = self._lookup(rel)
        if staged and item is None:
            if missing_ok:
                return
            raise NotFound(f"{self.describe(path)}: not found (deleted, not yet committed)")
        if self._committed_exists(rel):
            self._stage(rel, None)
        elif staged:
            with self._lock:
                dropped = self._staged.pop(rel, None)
                if dropped is not None:
                    self._staged_bytes -= dropped.size
        elif not missing_ok:
            raise NotFound(f"{self.describe(path)}: not found")

    def _committed_exists(self, rel: str) -> bool:
        try:
            return self.inner.exists(rel)
        except NotFound:
            return False

    def commit(self, message: str = "robostore commit") -> None:
        """Send every staged write and delete as one transaction; a no-op when nothing is staged."""
        with self._commit_lock:
            with self._lock:
                staged, self._staged, self._staged_bytes = self._staged, {}, 0
            if not staged:
                return
            try:
                self._target.commit_changes(staged, message)
            except BaseException:
                with self._lock:  # keep the operations for a later commit; newer writes win
                    self._staged = {**staged, **self._staged}
                    self._staged_bytes = sum(i.size for i in self._staged.values() if i is not None)
                raise
            for item in staged.values():
                if item is not None and item.file:
                    with contextlib.suppress(OSError):
                        os.unlink(item.file)
            log.debug("%s: committed %d operations", self.url, len(staged))

    def close(self) -> None:
        """Commit what is still staged, then drop the local staging folder."""
        try:
            self.commit("robostore: final commit")
        finally:
            if self._staging_dir and not self._staged:
                shutil.rmtree(self._staging_dir, ignore_errors=True)
                self._staging_dir = None
            self.inner.close()

    # ------------------------------------------------------------------ reading
    def _staged_or_none(self, path: str) -> StagedFile | None:
        """The staged content of ``path``; raises NotFound for a staged delete; None if untouched."""
        staged, item = self._lookup(normalize_path(path))
        if staged and item is None:
            raise NotFound(f"{self.describe(path)}: not found (deleted, not yet committed)")
        return item

    def read(self, path: str) -> bytes:
        item = self._staged_or_none(path)
        return item.content() if item is not None else self.inner.read(path)

    def read_range(self, path: str, start: int, end: int | None = None) -> bytes:
        item = self._staged_or_none(path)
        if item is None:
            return self.inner.read_range(path, start, end)
        if end is not None and start >= 0 and end < start:
            raise ValueError(f"read_range: end {end} < start {start}")
        data = item.content()
        return data[max(start, -len(data)) : end] if start < 0 else data[start:end]

    def read_many(self, paths: Iterable[str], max_concurrency: int | None = None) -> dict[str, bytes]:
        rel = list(dict.fromkeys(paths))
        local = {p: item for p in rel if (item := self._staged_or_none(p)) is not None}
        remote = self.inner.read_many([p for p in rel if p not in local], max_concurrency)
        return {p: local[p].content() if p in local else remote[p] for p in rel}

    def open(self, path: str, block_size: int | None = None) -> IO[bytes]:
        item = self._staged_or_none(path)
        return item.open() if item is not None else self.inner.open(path, block_size)

    def exists(self, path: str) -> bool:
        staged, item = self._lookup(normalize_path(path))
        if staged:
            return item is not None
        return self.inner.exists(path)

    def info(self, path: str) -> FileInfo:
        item = self._staged_or_none(path)
        if item is not None:
            return FileInfo(normalize_path(path), item.size, self._target.staged_token(item))
        return self.inner.info(path)

    def list_info(self, prefix: str = "") -> list[FileInfo]:
        rel = normalize_path(prefix, allow_root=True)
        remote = self.inner.list_info(prefix)
        with self._lock:
            staged = dict(self._staged)
        if not staged:
            return remote
        under = f"{rel}/" if rel else ""
        out = {f.path: f for f in remote if f.path not in staged}
        for path, item in staged.items():
            if item is not None and path.startswith(under):
                out[path] = FileInfo(path, item.size, self._target.staged_token(item))
        return [out[p] for p in sorted(out)]
