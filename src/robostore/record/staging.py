"""The local staging folder and the background publisher.

Each saved episode is first made durable in the session's journal (``journal/``, see
:mod:`robostore.record.journal`). The open data, video and episodes files are kept
as appendable parts (:mod:`robostore.record.files`); after each episode the writer
hands the :class:`Publisher` the new version of each file it changed. The publisher,
a thread, builds those files in the staging folder (``files/``, under their
dataset-relative paths) and uploads them in the crash-safe order:

1. data and video files,
2. the episodes table,
3. ``meta/tasks.parquet`` and ``meta/stats.json``,
4. ``meta/info.json`` (the commit point), then one ``Store.commit`` (one Hub commit);
   then the published episodes' journal files are deleted.

Pending publishes coalesce: while one upload runs, later episodes' versions merge
into one pending job in which each path keeps only its newest version. So each
publish builds and uploads each open file at most once, however many episodes it
carries, and a slow link makes publishes rarer rather than piling up uploads.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from robostore.errors import RobostoreError, StoreError
from robostore.layout import EPISODES_DIR, INFO_PATH, META_FILES
from robostore.record._crash import crashpoint
from robostore.record.files import FileVersion
from robostore.record.journal import JOURNAL
from robostore.record.lease import Lease
from robostore.store import Store

log = logging.getLogger(__name__)

STAGING_ENV = "ROBOSTORE_STAGING"


def staging_base(store: Store, staging_dir: str | os.PathLike[str] | None) -> Path:
    """The folder holding the staging sessions of ``store``'s dataset.

    Local datasets stage in a hidden folder beside the dataset (same filesystem, so
    publishing is a hard link); remote ones under ``$ROBOSTORE_STAGING`` or
    ``~/.cache/robostore/staging``, in a folder named by a hash of the URL.
    """
    key = hashlib.sha256(store.url.encode()).hexdigest()[:16]
    if staging_dir is not None:
        return Path(staging_dir) / key
    local_root = store.local_path()
    if local_root is not None:
        root = Path(local_root)
        return root.parent / f".{root.name}.robostore-staging"
    base = os.environ.get(STAGING_ENV) or Path.home() / ".cache" / "robostore" / "staging"
    return Path(base) / key


class Staging:
    """One recording session's staging folder (``<base>/<session id>/``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files = root / "files"
        self.tmp = root / "tmp"
        self.journal = root / JOURNAL
        for folder in (self.files, self.tmp, self.journal):
            folder.mkdir(parents=True, exist_ok=True)
        # The journal's episode folders must survive a power loss: so must the path to them.
        for folder in (root, root.parent):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @classmethod
    def start(cls, base: Path) -> Staging:
        """Start a new session under ``base`` (see :func:`earlier_sessions` for older ones)."""
        return cls(base / uuid.uuid4().hex[:12])

    @staticmethod
    def earlier_sessions(base: Path) -> list[Path]:
        """Session folders under ``base`` left by recorders that did not close.

        Call only while holding the dataset's lease: any other session is then stale.
        """
        return sorted(base.iterdir()) if base.is_dir() else []

    @staticmethod
    def remove_sessions(sessions: list[Path]) -> None:
        for old in sessions:
            shutil.rmtree(old, ignore_errors=True)

    def remove(self) -> None:
        """Delete the session folder (and the base folder when it is empty)."""
        shutil.rmtree(self.root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.parent.rmdir()


@dataclass
class PublishJob:
    """What one or more saved episodes changed, ready to upload.

    ``files`` are data/video/episodes files (dataset path -> version to build and
    upload), ``meta`` the small metadata files by content; ``episodes`` is
    total_episodes once published; ``delete``: local files (journal entries, staged
    copies of rolled-over files) to delete once it is committed.
    """

    files: dict[str, FileVersion]
    meta: dict[str, bytes]
    episodes: int
    count: int = 1
    since: float = field(default_factory=time.monotonic)
    delete: list[Path] = field(default_factory=list)

    def merge(self, newer: PublishJob) -> None:
        self.files.update(newer.files)
        self.meta.update(newer.meta)
        self.episodes = newer.episodes
        self.count += newer.count
        self.delete.extend(newer.delete)


def _tier(path: str) -> int:
    if path.startswith(EPISODES_DIR + "/"):
        return 1
    return 0


class Publisher:
    """Uploads :class:`PublishJob` s on a background thread, in the crash-safe order.

    Args:
        store: the dataset's store.
        lease: renewed while publishing and on a timer.
        every_episodes: publish once this many episodes are pending...
        interval_s: ...or once the oldest pending episode waited this long.
        retries: attempts per publish before the error is reported.
    """

    def __init__(
        self,
        store: Store,
        lease: Lease,
        every_episodes: int,
        interval_s: float,
        retries: int = 3,
    ) -> None:
        self.store = store
        self.lease = lease
        self.every_episodes = max(1, every_episodes)
        self.interval_s = interval_s
        self.retries = retries
        self.published_episodes = 0
        self.uploaded_bytes = 0
        self.publishes = 0
        self._pending: PublishJob | None = None
        self._busy = False
        self._flush = 0
        self._stop = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="robostore-upload")
        self._thread = threading.Thread(target=self._run, name="robostore-publish", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side
    def submit(self, job: PublishJob) -> None:
        """Queue ``job``; it merges into the pending one. Never blocks on the network."""
        with self._cond:
            if self._pending is None:
                self._pending = job
            else:
                self._pending.merge(job)
            self._cond.notify_all()

    def flush(self) -> None:
        """Publish everything submitted so far and wait for it; raise what went wrong."""
        with self._cond:
            self._flush += 1
            self._cond.notify_all()
            while (self._pending is not None or self._busy) and self._error is None:
                self._cond.wait()
            self._flush -= 1
            self._raise()

    def close(self) -> None:
        """Flush, then stop the thread.

        When the flush fails, what it could not publish is not tried again on the way
        out (it stays in the staging folder, which the recorder then keeps).
        """
        try:
            self.flush()
        finally:
            with self._cond:
                self._stop = True
                self._pending = None
                self._cond.notify_all()
            self._thread.join()
            self._pool.shutdown()

    def check(self) -> None:
        """Raise the error of a failed publish, if any (the recorder calls this often)."""
        with self._cond:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            if isinstance(err, RobostoreError):
                raise err
            raise StoreError(
                f"{self.store.url}: publishing recorded episodes failed: {type(err).__name__}: {err}"
            ) from err

    # ------------------------------------------------------------------ worker side
    def _due(self) -> float | None:
        """0 when the pending job should go now, else seconds to wait (None: forever)."""
        job = self._pending
        if job is None:
            return None
        if self._flush or self._stop or job.count >= self.every_episodes:
            return 0.0
        return max(0.0, job.since + self.interval_s - time.monotonic())

    def _run(self) -> None:
        renew_every = None if self.lease.ttl_s is None else self.lease.ttl_s / 3
        last_renew = time.monotonic()
        while True:
            job = None
            with self._cond:
                while True:
                    if self._stop and (self._pending is None or self._error is not None):
                        return
                    due = self._due() if self._error is None else None
                    if due == 0.0:
                        job, self._pending, self._busy = self._pending, None, True
                        break
                    renew_in = None if renew_every is None else last_renew + renew_every - time.monotonic()
                    if renew_in is not None and renew_in <= 0:
                        break
                    waits = [w for w in (due, renew_in) if w is not None]
                    self._cond.wait(timeout=min(waits) if waits else None)
            try:
                if job is not None:
                    self._publish_with_retries(job)
                else:
                    self.lease.renew()
                last_renew = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - reported to the caller by flush()/check()
                log.error("%s: publishing failed: %s", self.store.url, exc)
                last_renew = time.monotonic()
                with self._cond:
                    self._error = exc
                    if job is not None:
                        # Keep it for a later flush, under any newer versions.
                        if self._pending is not None:
                            job.merge(self._pending)
                        self._pending = job
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _publish_with_retries(self, job: PublishJob) -> None:
        delay = 0.5
        for attempt in range(1, self.retries + 1):
            try:
                self._publish(job)
                return
            except (StoreError, OSError) as exc:
                if attempt == self.retries:
                    raise
                log.warning(
                    "%s: publish attempt %d failed (%s); retrying in %.1f s", self.store.url, attempt, exc, delay
                )
                time.sleep(delay)
                delay *= 2

    def _publish(self, job: PublishJob) -> None:
        t0 = time.perf_counter()
        for tier in (0, 1):
            paths = [p for p in job.files if _tier(p) == tier]
            list(self._pool.map(lambda p: self._put_file(p, job.files[p]), paths))
            crashpoint(f"publish_tier{tier}")
        for path in META_FILES:
            if path in job.meta:
                if path == INFO_PATH:
                    crashpoint("publish_before_info")
                self.store.write(path, job.meta[path])
                self.uploaded_bytes += len(job.meta[path])
        self.lease.renew()
        self.store.commit(f"robostore: record episodes up to {job.episodes - 1}")
        crashpoint("publish_committed")
        for done in job.delete:
            done.unlink(missing_ok=True)
        self.published_episodes = job.episodes
        self.publishes += 1
        log.debug("%s: published %d episode(s) in %.3f s", self.store.url, job.count, time.perf_counter() - t0)

    def _put_file(self, path: str, version: FileVersion) -> None:
        local = version.build()
        size = local.stat().st_size
        # Built for this publish and only ever replaced by rename: hand it over.
        self.store.adopt_file(path, str(local))
        self.uploaded_bytes += size
        crashpoint("publish_file")
