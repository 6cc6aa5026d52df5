"""``robostore.mirror``: plan, copy in phases, verify, record, and optionally delete."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any

from tqdm.auto import tqdm

from robostore.backends import open_store
from robostore.errors import RobostoreError, StoreError
from robostore.mirror.copy import (
    MEMORY_LIMIT,
    WHOLE_FILE_MAX,
    ByteBudget,
    Limits,
    Written,
    sha256_of,
)
from robostore.mirror.manifest import Entry, Manifest
from robostore.mirror.plan import INFO, META, PAYLOAD, Item, Plan, make_plan, phase_of
from robostore.mirror.report import MirrorReport
from robostore.mirror.source import CopySource, Source
from robostore.store import FileInfo, Store

log = logging.getLogger(__name__)

#: Up to this many files are verified with one ``info`` each; more with one listing.
INFO_VERIFY_LIMIT = 64
_PHASE_NAMES = {PAYLOAD: "data and videos", META: "metadata", INFO: "meta/info.json"}


class _Interrupted(Exception):  # noqa: N818 - a stop signal, not an error
    """Raised inside transfers to stop them when the run is being cancelled."""


def mirror(
    src_url: str | Store,
    dst_url: str | Store,
    *,
    episodes: Iterable[int] | str | None = None,
    workers: int = 16,
    whole_file_max: int = WHOLE_FILE_MAX,
    memory_limit: int = MEMORY_LIMIT,
    verify: bool = True,
    check: bool = True,
    delete: bool = False,
    dry_run: bool = False,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> MirrorReport:
    """Copy the dataset at ``src_url`` to ``dst_url``, between any two backends.

    Only files that are missing at the destination or differ are written (decided from
    one listing of each side and the destination's mirror manifest, see
    :mod:`robostore.mirror.manifest`); a re-mirror of an unchanged dataset only lists.
    Data and video files are written first, then ``meta/``, then ``meta/info.json``,
    so a reader of the destination never sees metadata pointing at missing files, even
    after an interrupted run; running the same call again finishes the job.

    Args:
        src_url, dst_url: dataset roots (any URL robostore opens), or open stores.
        episodes: keep only these episodes (a list, or a string like ``"0-99,200"``):
            the destination becomes a valid smaller dataset, renumbered from 0, with
            videos cut by stream copy and tasks and stats recomputed.
        workers: transfers in flight.
        whole_file_max: files up to this many bytes move in one read and one write
            request (one GET, one PUT); larger ones in parts (multipart or resumable
            uploads).
        memory_limit: bytes of file content the whole-file transfers in flight may hold
            together (streamed ones hold two 8 MiB parts each on top).
        verify: after writing, read every written file back and compare its sha256
            (sizes are always compared); mismatches are written again once.
        check: before writing anything, validate the source (as ``robostore
            validate`` does: metadata, data files' index columns, mp4 headers) and
            raise the typed error of its first problem, so a broken source never
            overwrites a good destination. ``check=False`` copies it as it is (to
            back up a damaged dataset before ``robostore validate --repair``).
        delete: remove destination files the source does not have (after the copy).
        dry_run: plan only; nothing is written or deleted.
        src_options, dst_options: fsspec storage options of each side.
        progress: show a tqdm progress bar (bytes/s, ETA).

    Returns:
        A :class:`MirrorReport`. Files that could not be written are in ``failed``;
        when payload files fail, metadata is not written (the destination keeps its
        previous, consistent metadata).

    Raises:
        NotFound: the source holds no dataset.
        SchemaError, CorruptDataset, VideoError, NotFound: with ``check``, the first
            problem of a broken source (naming its file); nothing was written.
    """
    start = time.monotonic()
    src = open_store(src_url, src_options)
    dst = open_store(dst_url, dst_options)
    if type(src) is type(dst) and src.url == dst.url:
        raise RobostoreError(f"{src.url}: the source and the destination are the same dataset")
    source: Source
    subset: list[int] | None = None
    limits = Limits(whole_max=whole_file_max, budget=ByteBudget(memory_limit))
    if episodes is not None:
        from robostore.mirror.subset import SubsetSource
        from robostore.selection import parse_episodes

        subset = parse_episodes(episodes)
        source = SubsetSource(src, subset, limits, check=check)
    else:
        source = CopySource(src, limits, check=check)
    report = MirrorReport(source=src.url, destination=dst.url, dry_run=dry_run, subset=subset)
    return transfer(
        source,
        dst,
        report,
        workers=workers,
        verify=verify,
        delete=delete,
        dry_run=dry_run,
        progress=progress,
        start=start,
    )


def transfer(
    source: Source,
    dst: Store,
    report: MirrorReport,
    *,
    workers: int = 16,
    verify: bool = True,
    delete: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    start: float | None = None,
    label: str = "mirror",
) -> MirrorReport:
    """Write every file ``source`` says the destination should hold, the way
    :func:`mirror` does (plan from listings and the manifest, payload, then ``meta/``,
    then ``meta/info.json``, verify, record). :func:`robostore.convert` runs it with
    its own source; ``label`` names the progress bar."""
    start = time.monotonic() if start is None else start
    src = source.store
    src_listing = src.list_info()
    targets = source.targets(src_listing)
    dst_listing = {f.path: f for f in dst.list_info()}
    manifest = Manifest.load(dst, src.url, report.subset)
    plan = make_plan(targets, dst_listing, manifest)
    source.check([i.target for i in plan.to_write])
    report.skipped = [i.path for i in plan.items if i.action == "skip"]
    report.extra = list(plan.extra)
    log.info("%s -> %s: %d files to write, %d unchanged", src.url, dst.url, len(plan.to_write), len(report.skipped))

    if dry_run:
        report.planned = [i.path for i in plan.to_write]
        report.bytes_planned = sum(i.target.size or i.target.estimate or 0 for i in plan.to_write)
        report.seconds = time.monotonic() - start
        return report

    runner = _Runner(source, dst, manifest, report, workers=workers, verify=verify, progress=progress, label=label)
    try:
        runner.run(plan)
        if delete and plan.extra and not report.failed:
            runner.delete(plan.extra)
    finally:
        runner.close()
        report.copied.sort()
        report.skipped.sort()
        report.seconds = time.monotonic() - start
    log.info(report.summary())
    return report


class _Runner:
    """Executes a plan phase by phase on a thread pool.

    On transactional destinations (the Hub) each phase ends with one commit; the
    store itself also commits every ``commit_every_files`` / ``commit_every_bytes``
    staged (its storage options), so a large payload phase becomes a few batched
    commits, never one per file.
    """

    def __init__(
        self,
        source: Source,
        dst: Store,
        manifest: Manifest,
        report: MirrorReport,
        *,
        workers: int,
        verify: bool,
        progress: bool,
        label: str,
    ) -> None:
        self.source = source
        self.dst = dst
        self.manifest = manifest
        self.report = report
        self.verify = verify
        self.workers = max(1, workers)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="robostore-mirror")
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.transactional = dst.transactional
        self.items: dict[str, Item] = {}
        self.bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not progress)

    # ------------------------------------------------------------------ phases
    def run(self, plan: Plan) -> None:
        to_write = plan.to_write
        self.items = {i.path: i for i in to_write}
        self.bar.total = sum(i.target.size or i.target.estimate or 0 for i in to_write if i.action == "copy")
        self.bar.refresh()
        for phase in (PAYLOAD, META, INFO):
            items = [i for i in to_write if phase_of(i.path) == phase]
            if self.report.failed:
                for item in items:
                    self.report.failed[item.path] = "not written: files of an earlier phase failed"
                continue
            if not items:
                continue
            log.info("writing %s: %d files", _PHASE_NAMES[phase], len(items))
            written = self._run_batch(items)
            self._commit(f"robostore mirror: {_PHASE_NAMES[phase]}")
            self._verify_phase(written)
        self.manifest.flush()
        self._commit("robostore mirror: manifest")

    def _run_batch(self, items: list[Item]) -> dict[str, Written]:
        results = self._map(self._do_item, items)
        out: dict[str, Written] = {}
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                self._fail(item.path, result)
            elif result is not None:
                out[item.path] = result
        return out

    def _do_item(self, item: Item) -> Written | None:
        """Write one item; returns what was written, or None when a check found it equal."""
        target = item.target
        if item.action == "check":
            theirs = self.source.hash(target)
            ours = sha256_of(self.dst, target.path, size=target.size)
            if (theirs.size, theirs.sha256) == (ours.size, ours.sha256):
                self.manifest.record(target.path, Entry(size=ours.size, source_token=target.token, sha256=ours.sha256))
                self.manifest.maybe_flush()
                with self.lock:
                    self.report.skipped.append(target.path)
                return None
        written = self.source.write(target, self.dst, self._on_bytes)
        self.manifest.record(target.path, Entry(size=written.size, source_token=target.token, sha256=written.sha256))
        self.manifest.maybe_flush()
        with self.lock:
            self.report.copied.append(target.path)
            self.report.bytes_copied += written.size
        return written

    def _on_bytes(self, n: int) -> None:
        if self.stop.is_set():
            raise _Interrupted("mirror cancelled")
        self.bar.update(n)

    # ------------------------------------------------------------------ verify
    def _verify_phase(self, written: dict[str, Written]) -> None:
        if not written:
            return
        bad = self._mismatches(written)
        if not bad:
            return
        log.warning("%d files differ after writing, writing them again: %s", len(bad), sorted(bad)[:10])
        items = [Item(self.items[path].target, "copy", "re-copy after verification") for path in sorted(bad)]
        with self.lock:
            self.report.recopied_after_verify.extend(i.path for i in items)
        again = self._run_batch(items)
        self._commit("robostore mirror: re-copy after verification")
        for path, why in self._mismatches(again).items():
            self._fail(path, StoreError(f"{self.dst.describe(path)}: {why} after writing it twice"))
            self.manifest.forget(path)

    def _mismatches(self, written: dict[str, Written]) -> dict[str, str]:
        listing = self._dest_infos(list(written))
        self.manifest.confirm({p: f.token for p, f in listing.items()})
        bad: dict[str, str] = {}
        for path, w in written.items():
            info = listing.get(path)
            if info is None:
                bad[path] = "missing at the destination"
            elif info.size != w.size:
                bad[path] = f"size is {info.size}, expected {w.size}"
        if self.verify:
            # A destination token that is a checksum of exactly these bytes (S3 ETag, GCS
            # md5Hash) verifies the content without reading it back.
            check = [p for p in written if p not in bad and listing[p].token not in written[p].tokens]
            sums = self._map(lambda p: sha256_of(self.dst, p, size=written[p].size), check)
            for path, got in zip(check, sums, strict=True):
                if isinstance(got, BaseException):
                    bad[path] = f"cannot read it back ({got})"
                elif got.sha256 != written[path].sha256:
                    bad[path] = "sha256 differs from the source"
        return bad

    def _dest_infos(self, paths: list[str]) -> dict[str, FileInfo]:
        if len(paths) > INFO_VERIFY_LIMIT:
            wanted = set(paths)
            return {f.path: f for f in self.dst.list_info() if f.path in wanted}
        infos = self._map(self.dst.info, paths)
        return {p: i for p, i in zip(paths, infos, strict=True) if isinstance(i, FileInfo)}

    # ------------------------------------------------------------------ delete
    def delete(self, extra: list[str]) -> None:
        """Remove destination files the source lacks: stale metadata first, then the rest."""
        ordered = sorted(extra, key=lambda p: (phase_of(p) == PAYLOAD, p))
        for path in ordered:
            try:
                self.dst.delete(path, missing_ok=True)
            except RobostoreError as exc:
                self._fail(path, exc)
                continue
            self.manifest.forget(path)
            self.report.deleted.append(path)
        self.manifest.flush()
        self._commit("robostore mirror: delete files not in the source")

    # ------------------------------------------------------------------ plumbing
    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """Run ``fn`` over ``items`` on the pool; exceptions are returned, not raised.

        Ctrl-C stops the transfers in flight (between parts), keeps what was finished
        in the manifest, and re-raises.
        """
        futures: list[Future[Any]] = [self.pool.submit(_capture, fn, x) for x in items]
        try:
            pending: set[Future[Any]] = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
        except BaseException:
            self.stop.set()
            for future in futures:
                future.cancel()
            wait(futures)
            self.manifest.flush()
            raise
        return [f.result() for f in futures]

    def _fail(self, path: str, exc: BaseException) -> None:
        log.error("%s: %s", self.dst.describe(path), exc)
        with self.lock:
            self.report.failed[path] = f"{type(exc).__name__}: {exc}"

    def _commit(self, message: str) -> None:
        if self.transactional:
            self.manifest.flush()
            self.dst.commit(message)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.bar.close()


def _capture(fn: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return fn(arg)
    except Exception as exc:  # noqa: BLE001 - reported per file by the caller
        return exc
