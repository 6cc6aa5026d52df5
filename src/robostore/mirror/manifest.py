"""The mirror manifest: what robostore copied to a destination, and from what.

Content tokens (ETag, md5, git oid, size+mtime+inode) are only comparable within one
backend, so a mirror cannot compare a source file with its copy by token. Instead the
destination keeps ``.robostore/mirror-manifest.json`` at the dataset root::

    {
        "format": "robostore-mirror-manifest",
        "version": 1,
        "source": "s3://bucket/ds",
        "subset": null,
        "files": {
            "data/chunk-000/file-000.parquet": {"size": 13373, "source_token": "…", "dest_token": "…", "sha256": "…"}
        },
    }

An entry says: this destination file was written by robostore with these bytes
(``sha256``, ``size``) from the source file whose token was ``source_token``; after
the write, the destination listing showed ``dest_token``. A re-mirror skips a file when
the source token, the destination token and the size all still match, so a no-op run
only lists both sides. ``dest_token`` is ``null`` until a listing after the write
confirmed it (an interrupted run); the size check then stands in for it.

For subsets, ``source_token`` is a digest of the selection and the tokens of every
source file the output was derived from.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, ValidationError

from robostore.errors import NotFound
from robostore.store import Store

log = logging.getLogger(__name__)

MANIFEST_PATH = ".robostore/mirror-manifest.json"
FORMAT = "robostore-mirror-manifest"


class Entry(BaseModel):
    """What robostore knows about one destination file it wrote."""

    size: int
    source_token: str | None
    dest_token: str | None = None
    sha256: str


class ManifestModel(BaseModel):
    format: str = FORMAT
    version: int = 1
    source: str = ""
    subset: list[int] | None = None
    files: dict[str, Entry] = Field(default_factory=dict)


def public_url(url: str) -> str:
    """``url`` without user info or query, so credentials never land in a manifest."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class Manifest:
    """The manifest of one destination: loaded at plan time, updated and flushed while copying.

    Thread-safe. :meth:`flush` writes it atomically through the destination store;
    :meth:`maybe_flush` does so at most every ``interval`` seconds, which bounds the
    work an interrupted run has to redo.
    """

    def __init__(self, store: Store, model: ManifestModel, interval: float = 1.0) -> None:
        self.store = store
        self.model = model
        self.interval = interval
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._dirty = False
        self._last_flush = time.monotonic()

    @classmethod
    def load(cls, store: Store, source: str, subset: list[int] | None) -> Manifest:
        """Read the destination's manifest; a missing or unreadable one starts empty.

        Entries recorded from another source, or for another subset, are dropped: their
        source tokens mean nothing for this run.
        """
        model = ManifestModel(source=public_url(source), subset=subset)
        try:
            raw = store.read(MANIFEST_PATH)
        except NotFound:
            return cls(store, model)
        try:
            old = ManifestModel.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("%s: unreadable mirror manifest, starting afresh (%s)", store.describe(MANIFEST_PATH), exc)
            return cls(store, model)
        if old.format == FORMAT and old.source == model.source and old.subset == subset:
            model.files = old.files
        else:
            # Sizes and sha256s still describe the destination bytes; keep them without
            # the source tokens so files can be matched by content.
            model.files = {p: e.model_copy(update={"source_token": None}) for p, e in old.files.items()}
        return cls(store, model)

    def get(self, path: str) -> Entry | None:
        with self._lock:
            return self.model.files.get(path)

    def record(self, path: str, entry: Entry) -> None:
        with self._lock:
            self.model.files[path] = entry
            self._dirty = True

    def forget(self, path: str) -> None:
        with self._lock:
            if self.model.files.pop(path, None) is not None:
                self._dirty = True

    def confirm(self, dest_tokens: Mapping[str, str | None]) -> None:
        """Fill in destination tokens from a listing taken after the writes."""
        with self._lock:
            for path, entry in self.model.files.items():
                token = dest_tokens.get(path)
                if path in dest_tokens and entry.dest_token != token:
                    entry.dest_token = token
                    self._dirty = True

    def maybe_flush(self) -> None:
        """Flush if ``interval`` has passed, unless another thread is flushing already
        (transfers must not queue behind the manifest write)."""
        if time.monotonic() - self._last_flush >= self.interval and self._write_lock.acquire(blocking=False):
            try:
                self._flush_locked()
            finally:
                self._write_lock.release()

    def flush(self) -> None:
        # Serialise whole flushes so an older snapshot never overwrites a newer one.
        with self._write_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            payload = self.model.model_dump_json().encode()
            self._dirty = False
            self._last_flush = time.monotonic()
        self.store.write(MANIFEST_PATH, payload)
