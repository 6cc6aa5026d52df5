"""The Hugging Face Hub through huggingface_hub: dataset repos and (read) buckets.

URLs:

* ``hf://datasets/<org>/<name>[@<revision>][/<folder>]`` — a dataset repo (model and
  space repos work the same way: ``hf://<org>/<name>``, ``hf://spaces/...``);
* ``hf://buckets/<namespace>/<name>[/<prefix>]`` — a bucket (huggingface_hub >= 1.x).

Storage options: ``endpoint`` and ``token`` (and any other :class:`HfFileSystem`
argument), plus robostore's own ``commit_every_files`` (default 1000) and
``commit_every_bytes`` (default 512 MiB).

Writes to a repo are transactions: :meth:`HfStore.write` and :meth:`HfStore.delete`
only stage an operation, and :meth:`HfStore.commit` sends everything staged as one
commit (``HfApi.create_commit``). The store commits by itself when the staged files or
bytes reach the thresholds above, and :meth:`HfStore.close` commits what is left. Reads
through the same store see staged writes and deletes (read-your-writes); other stores
and processes see them once committed. Bucket writes go straight through
:class:`HfFileSystem` (the Hub stores bucket files in xet storage).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    parse_hf_uri,
)
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import _http as hf_http

from robostore.errors import NotFound, StoreError
from robostore.store import FileInfo, Store, normalize_path

log = logging.getLogger(__name__)

DEFAULT_COMMIT_EVERY_FILES = 1000
DEFAULT_COMMIT_EVERY_BYTES = 512 * 2**20
#: Options robostore reads itself; everything else goes to :class:`HfFileSystem`.
ROBOSTORE_OPTIONS = ("commit_every_files", "commit_every_bytes")
#: The timeout robostore gives huggingface_hub's shared HTTP client, whose default is none.
HTTP_TIMEOUT = httpx2.Timeout(60.0, connect=10.0)

_timeout_lock = threading.Lock()


def _ensure_http_timeout() -> None:
    """Give huggingface_hub's shared HTTP client a finite timeout, unless the user set a client.

    huggingface_hub passes explicit timeouts on downloads and ``repo_info``
    (``HF_HUB_DOWNLOAD_TIMEOUT``, ``HF_HUB_ETAG_TIMEOUT``) but none on listings,
    preupload or commits, and its default client waits forever. Replacing the factory is
    the client's documented way to configure it (``set_client_factory``); a factory the
    user installed is left alone.
    """
    with _timeout_lock:
        if getattr(hf_http, "_GLOBAL_CLIENT_FACTORY", None) is not hf_http.default_client_factory:
            return

        def factory() -> httpx2.Client:
            client = hf_http.default_client_factory()
            client.timeout = HTTP_TIMEOUT
            return client

        hf_http.set_client_factory(factory)


def git_blob_oid(data: bytes) -> str:
    """The git object id of ``data``, the Hub's ``oid`` of a file stored in git."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True, slots=True)
class _Staged:
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


#: A staged deletion.
_DELETED = None


class HfStore(Store):
    """A dataset in a Hub repo (transactional writes) or bucket."""

    schemes = ("hf",)
    open_block_size = 4 * 2**20
    max_concurrency = 16
    max_threads = 16
    client_errors = (HfHubHTTPError, httpx2.HTTPError)

    def __init__(
        self,
        url: str,
        fs: HfFileSystem,
        root: str,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(url, fs, root, storage_options)
        opts = self.storage_options
        self.commit_every_files = int(opts.get("commit_every_files", DEFAULT_COMMIT_EVERY_FILES))
        self.commit_every_bytes = int(opts.get("commit_every_bytes", DEFAULT_COMMIT_EVERY_BYTES))
        parsed = parse_hf_uri(f"hf://{root}")
        self.repo_type: str = parsed.type
        self.repo_id: str = parsed.id
        self.revision: str = parsed.revision or "main"
        self.prefix: str = parsed.path_in_repo.strip("/")
        self.is_bucket: bool = parsed.is_bucket
        self.api = HfApi(endpoint=opts.get("endpoint"), token=opts.get("token"))
        self._staged: dict[str, _Staged | None] = {}
        self._staged_bytes = 0
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._staging_dir: str | None = None
        self._repo_ready = False

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[HfFileSystem, str]:
        _ensure_http_timeout()
        fs_options = {k: v for k, v in storage_options.items() if k not in ROBOSTORE_OPTIONS}
        fs = HfFileSystem(**fs_options)
        root = fs._strip_protocol(url).rstrip("/")
        parsed = parse_hf_uri(f"hf://{root}")
        if not parsed.id or "/" not in parsed.id:
            raise StoreError(f"{url}: expected hf://datasets/<org>/<name>[@revision][/folder] or hf://buckets/<ns>/<name>")
        return fs, root

    # ------------------------------------------------------------------ staging
    def _repo_path(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _lookup(self, rel: str) -> tuple[bool, _Staged | None]:
        """``(True, staged or None-for-deleted)`` when ``rel`` has a staged operation."""
        with self._lock:
            if rel in self._staged:
                return True, self._staged[rel]
        return False, None

    def _stage(self, rel: str, item: _Staged | None) -> None:
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
                self._staging_dir = tempfile.mkdtemp(prefix="robostore-hf-")
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
        """Stage ``data`` for ``path``; it is uploaded by the next :meth:`commit`.

        Buckets have no commits: there the file is uploaded at once.
        """
        if self.is_bucket:
            super().write(path, data)
            return
        rel = normalize_path(path)
        if isinstance(data, (bytes, bytearray, memoryview)):
            item = _Staged(len(data), data=bytes(data))
        else:
            local = os.fspath(data)
            try:
                item = _Staged(os.path.getsize(local), file=self._private_copy(local))
            except OSError as exc:
                raise StoreError(f"{self.describe(path)}: cannot read local file {local!r}: {exc}") from exc
        self._stage(rel, item)

    def delete(self, path: str, missing_ok: bool = False) -> None:
        """Stage the deletion of ``path`` (immediate on buckets)."""
        if self.is_bucket:
            super().delete(path, missing_ok)
            return
        rel = normalize_path(path)
        staged, item = self._lookup(rel)
        if staged and item is None:
            if missing_ok:
                return
            raise NotFound(f"{self.describe(path)}: not found (deleted, not yet committed)")
        if self._remote_exists(rel):
            self._stage(rel, _DELETED)
        elif staged:
            with self._lock:
                dropped = self._staged.pop(rel, None)
                if dropped is not None:
                    self._staged_bytes -= dropped.size
        elif not missing_ok:
            raise NotFound(f"{self.describe(path)}: not found")

    def _remote_exists(self, rel: str) -> bool:
        with self._errors(rel):
            return bool(self.fs.isfile(self.full_path(rel)))

    def commit(self, message: str = "robostore commit") -> None:
        """Send every staged write and delete as one commit; a no-op when nothing is staged."""
        if self.is_bucket:
            return
        with self._commit_lock:
            with self._lock:
                staged, self._staged, self._staged_bytes = self._staged, {}, 0
            if not staged:
                return
            operations: list[CommitOperationAdd | CommitOperationDelete] = []
            for rel, item in staged.items():
                target = self._repo_path(rel)
                if item is None:
                    operations.append(CommitOperationDelete(path_in_repo=target))
                else:
                    content = item.data if item.data is not None else item.file or ""
                    operations.append(CommitOperationAdd(path_in_repo=target, path_or_fileobj=content))
            try:
                with self._errors():
                    self._ensure_repo()
                    self.api.create_commit(
                        repo_id=self.repo_id,
                        repo_type=self.repo_type,
                        revision=self.revision,
                        operations=operations,
                        commit_message=message,
                    )
            except BaseException:
                with self._lock:  # keep the operations for a later commit; newer writes win
                    self._staged = {**staged, **self._staged}
                    self._staged_bytes = sum(i.size for i in self._staged.values() if i is not None)
                raise
            for item in staged.values():
                if item is not None and item.file:
                    with contextlib.suppress(OSError):
                        os.unlink(item.file)
            # Listings of any folder may have changed; HfFileSystem caches them without expiry.
            self.fs.invalidate_cache()
            log.debug("%s: committed %d operations", self.url, len(operations))

    def _ensure_repo(self) -> None:
        if not self._repo_ready:
            self.api.create_repo(self.repo_id, repo_type=self.repo_type, exist_ok=True)
            self._repo_ready = True

    def close(self) -> None:
        """Commit what is still staged, then drop the local staging folder."""
        try:
            self.commit("robostore: final commit")
        finally:
            if self._staging_dir and not self._staged:
                shutil.rmtree(self._staging_dir, ignore_errors=True)
                self._staging_dir = None

    # ------------------------------------------------------------------ reading
    def _staged_or_none(self, path: str) -> _Staged | None:
        """The staged content of ``path``; raises NotFound for a staged delete; None if untouched."""
        staged, item = self._lookup(normalize_path(path))
        if staged and item is None:
            raise NotFound(f"{self.describe(path)}: not found (deleted, not yet committed)")
        return item

    def read(self, path: str) -> bytes:
        item = self._staged_or_none(path)
        return item.content() if item is not None else super().read(path)

    def read_range(self, path: str, start: int, end: int | None = None) -> bytes:
        item = self._staged_or_none(path)
        if item is None:
            return super().read_range(path, start, end)
        if end is not None and start >= 0 and end < start:
            raise ValueError(f"read_range: end {end} < start {start}")
        data = item.content()
        return data[max(start, -len(data)) : end] if start < 0 else data[start:end]

    def read_many(self, paths: Iterable[str], max_concurrency: int | None = None) -> dict[str, bytes]:
        rel = list(dict.fromkeys(paths))
        local = {p: item for p in rel if (item := self._staged_or_none(p)) is not None}
        remote = super().read_many([p for p in rel if p not in local], max_concurrency)
        return {p: local[p].content() if p in local else remote[p] for p in rel}

    def open(self, path: str, block_size: int | None = None) -> IO[bytes]:
        item = self._staged_or_none(path)
        return item.open() if item is not None else super().open(path, block_size)

    def exists(self, path: str) -> bool:
        staged, item = self._lookup(normalize_path(path))
        if staged:
            return item is not None
        try:
            return super().exists(path)
        except NotFound:  # the repo itself does not exist yet
            return False

    def info(self, path: str) -> FileInfo:
        item = self._staged_or_none(path)
        if item is not None:
            return FileInfo(normalize_path(path), item.size, git_blob_oid(item.content()))
        return super().info(path)

    def list_info(self, prefix: str = "") -> list[FileInfo]:
        rel = normalize_path(prefix, allow_root=True)
        self.fs.invalidate_cache()
        try:
            remote = super().list_info(prefix)
        except NotFound:  # a repo that does not exist yet is an empty dataset
            remote = []
        with self._lock:
            staged = dict(self._staged)
        if not staged:
            return remote
        under = f"{rel}/" if rel else ""
        out = {f.path: f for f in remote if f.path not in staged}
        for path, item in staged.items():
            if item is not None and path.startswith(under):
                out[path] = FileInfo(path, item.size, git_blob_oid(item.content()))
        return [out[p] for p in sorted(out)]

    # ------------------------------------------------------------------ backend hooks
    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        lfs = detail.get("lfs")
        if lfs:
            return str(lfs.get("sha256") or lfs.get("oid"))
        for key in ("blob_id", "xet_hash"):
            if detail.get(key):
                return str(detail[key])
        return super()._token(path, detail)

    def _is_internal(self, path: str) -> bool:
        # Every repo has a .gitattributes the Hub created; it is no dataset file.
        return path.rsplit("/", 1)[-1] == ".gitattributes"
