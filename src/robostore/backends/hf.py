"""The Hugging Face Hub through huggingface_hub: dataset repos and (read) buckets.

URLs:

* ``hf://datasets/<org>/<name>[@<revision>][/<folder>]`` — a dataset repo (model and
  space repos work the same way: ``hf://<org>/<name>``, ``hf://spaces/...``);
* ``hf://buckets/<namespace>/<name>[/<prefix>]`` — a bucket (huggingface_hub >= 1.x).

Storage options: ``endpoint`` and ``token`` (and any other :class:`HfFileSystem`
argument), plus robostore's own ``commit_every_files`` (default 1000) and
``commit_every_bytes`` (default 512 MiB).

Two stores: :class:`HfRepoStore` (a repo at one revision, where a write is a commit)
and :class:`HfBucketStore` (a bucket: no commits, writes go straight through
:class:`HfFileSystem`, the Hub stores bucket files in xet storage).
:func:`robostore.open_store` wraps a repo store in a
:class:`~robostore.backends.staged.StagedStore`, which makes writes transactions:
:meth:`~robostore.store.Store.write` and ``delete`` only stage an operation, and
``commit`` sends everything staged as one commit (``HfApi.create_commit``). It commits
by itself when the staged files or bytes reach the thresholds above, and ``close``
commits what is left. Reads through the same store see staged writes and deletes
(read-your-writes); other stores and processes see them once committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

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

from robostore.backends.staged import StagedFile, StagedStore
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


class HfStore(Store):
    """What a Hub repo and a Hub bucket share: URLs, listings, content tokens.

    :meth:`from_url` (and so :func:`robostore.open_store`) gives a
    :class:`HfBucketStore` for ``hf://buckets/...`` and, for repos, a
    :class:`~robostore.backends.staged.StagedStore` around a :class:`HfRepoStore`, so
    that writes are batched into commits.
    """

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
        parsed = parse_hf_uri(f"hf://{root}")
        self.repo_type: str = parsed.type
        self.repo_id: str = parsed.id
        self.revision: str = parsed.revision or "main"
        self.prefix: str = parsed.path_in_repo.strip("/")
        self.api = HfApi(endpoint=opts.get("endpoint"), token=opts.get("token"))

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
        if cls is not HfStore:
            return super().from_url(url, storage_options)
        options = dict(storage_options or {})
        try:
            bucket = parse_hf_uri(url).is_bucket
        except ValueError:
            bucket = False  # make_filesystem names what is wrong with the URL
        if bucket:
            return HfBucketStore.from_url(url, options)
        return StagedStore(
            HfRepoStore.from_url(url, options),
            commit_every_files=int(options.get("commit_every_files", DEFAULT_COMMIT_EVERY_FILES)),
            commit_every_bytes=int(options.get("commit_every_bytes", DEFAULT_COMMIT_EVERY_BYTES)),
        )

    @classmethod
    def make_filesystem(cls, url: str, storage_options: dict[str, Any]) -> tuple[HfFileSystem, str]:
        _ensure_http_timeout()
        fs_options = {k: v for k, v in storage_options.items() if k not in ROBOSTORE_OPTIONS}
        fs = HfFileSystem(**fs_options)
        root = fs._strip_protocol(url).rstrip("/")
        parsed = parse_hf_uri(f"hf://{root}")
        if not parsed.id or "/" not in parsed.id:
            raise StoreError(
                f"{url}: expected hf://datasets/<org>/<name>[@revision][/folder] or hf://buckets/<ns>/<name>"
            )
        return fs, root

    def info(self, path: str) -> FileInfo:
        # HfFileSystem keeps what it listed with no expiry: look again, as list_info does.
        full = self.full_path(path)
        with self._errors(path):
            self.fs.invalidate_cache(full)
        return super().info(path)

    def exists(self, path: str) -> bool:
        try:
            return super().exists(path)
        except NotFound:  # the repo itself does not exist yet
            return False

    def list_info(self, prefix: str = "") -> list[FileInfo]:
        self.fs.invalidate_cache()  # HfFileSystem caches listings without expiry
        try:
            return super().list_info(prefix)
        except NotFound:  # a repo that does not exist yet is an empty dataset
            return []

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


class HfBucketStore(HfStore):
    """A dataset in a Hub bucket: no commits, each write goes straight through
    :class:`HfFileSystem` (the Hub stores bucket files in xet storage)."""


class HfRepoStore(HfStore):
    """A dataset in a Hub repo, at one revision; every write or delete here is a commit
    of its own. :func:`robostore.open_store` wraps it in a
    :class:`~robostore.backends.staged.StagedStore`, which batches them (its
    :class:`~robostore.backends.staged.CommitTarget` is :meth:`commit_changes`)."""

    def __init__(
        self,
        url: str,
        fs: HfFileSystem,
        root: str,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(url, fs, root, storage_options)
        self._repo_ready = False

    def write(self, path: str, data: bytes | bytearray | memoryview | os.PathLike[str] | str) -> None:
        """Commit ``data`` (bytes, or the path of a local file) as ``path``."""
        if isinstance(data, (bytes, bytearray, memoryview)):
            item = StagedFile(len(data), data=bytes(data))
        else:
            local = os.fspath(data)
            try:
                item = StagedFile(os.path.getsize(local), file=local)
            except OSError as exc:
                raise StoreError(f"{self.describe(path)}: cannot read local file {local!r}: {exc}") from exc
        self.commit_changes({normalize_path(path): item}, f"robostore: write {path}")

    def delete(self, path: str, missing_ok: bool = False) -> None:
        """Commit the deletion of ``path``."""
        rel = normalize_path(path)
        if not self.exists(rel):
            if missing_ok:
                return
            raise NotFound(f"{self.describe(path)}: not found")
        self.commit_changes({rel: None}, f"robostore: delete {path}")

    def commit_changes(self, changes: Mapping[str, StagedFile | None], message: str) -> None:
        """Send every write (a :class:`StagedFile`) and delete (None) as one commit."""
        operations: list[CommitOperationAdd | CommitOperationDelete] = []
        for rel, item in changes.items():
            target = f"{self.prefix}/{rel}" if self.prefix else rel
            if item is None:
                operations.append(CommitOperationDelete(path_in_repo=target))
            else:
                content = item.data if item.data is not None else item.file or ""
                operations.append(CommitOperationAdd(path_in_repo=target, path_or_fileobj=content))
        with self._errors():
            if not self._repo_ready:
                self.api.create_repo(self.repo_id, repo_type=self.repo_type, exist_ok=True)
                self._repo_ready = True
            self.api.create_commit(
                repo_id=self.repo_id,
                repo_type=self.repo_type,
                revision=self.revision,
                operations=operations,
                commit_message=message,
            )
        # Listings of any folder may have changed; HfFileSystem caches them without expiry.
        self.fs.invalidate_cache()

    def staged_token(self, item: StagedFile) -> str:
        """The token of a staged file: its git blob id, as the Hub reports small files."""
        return git_blob_oid(item.content())
