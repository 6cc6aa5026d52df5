"""``robostore validate --repair``: cut a damaged dataset back to its last consistent episode.

Meant for datasets damaged by a crash of an older writer (lerobot's known failure:
episode rows whose data never got written, a data parquet without its footer), not
for the crash leftovers of robostore's own recorder (``Recorder.resume`` cleans those).

The plan: episodes are checked in order (their row in the episodes table, frame range,
tasks and video spans; their rows in the data file; their mp4s) and the longest
intact prefix ``0..k-1`` is kept. Then:

1. every file about to change or go is first copied to ``.robostore/repair/<UTC time>/``
   inside the dataset (nothing is deleted that is not also kept there and reported);
2. the data file shared by kept and dropped episodes is rewritten to the kept rows
   (row groups kept); data and video files that no kept episode uses are moved to the
   backup folder (only files named like the dataset's own, numbered past the newest
   kept file: see :func:`robostore.record.repair.leftover_files`); the rows of
   dropped episodes are removed from the episodes files;
3. ``meta/tasks.parquet`` loses the tasks no kept episode uses at its end,
   ``meta/stats.json`` is re-aggregated from the kept episodes' per-episode stats;
4. ``meta/info.json`` is written last (the commit point) with the new totals.

A data parquet without a footer cannot be read by pyarrow at all (the footer holds
the row group offsets), so its row groups are not recovered: its episodes and every
later one are dropped. A crash during the repair leaves a dataset that the next
repair finishes.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from robostore.backends import open_store
from robostore.checks import meta_problems
from robostore.errors import CorruptDataset, RobostoreError, SchemaError
from robostore.layout import (
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    write_episodes,
    write_tasks,
)
from robostore.meta import DatasetMeta
from robostore.mirror.copy import copy_file
from robostore.parquet import read_parquet, read_parquet_schema
from robostore.record.lease import Lease
from robostore.record.repair import leftover_files, trim_data_file
from robostore.schema import DatasetInfo
from robostore.schema.arrow import column_mismatch
from robostore.schema.episodes import frames_end, span_agrees, span_at_last_frame, video_column
from robostore.stats import aggregate_stats, episode_stats_dicts
from robostore.store import Store
from robostore.validate import validate

log = logging.getLogger(__name__)

#: Where repaired-away files are kept, inside the dataset root.
BACKUP_DIR = ".robostore/repair"


class RepairReport(BaseModel):
    """What :func:`repair_dataset` did (or, with ``dry_run``, would do)."""

    url: str
    dry_run: bool = False
    kept_episodes: int = 0
    kept_frames: int = 0
    dropped_episodes: list[int] = Field(default_factory=list)
    dropped_frames: int = 0
    #: Why the first dropped episode was dropped (the file and the problem).
    reason: str | None = None
    #: Episode rows past info.json's total_episodes (never committed), removed.
    uncommitted_rows: list[int] = Field(default_factory=list)
    dropped_tasks: list[str] = Field(default_factory=list)
    rewritten: list[str] = Field(default_factory=list)
    #: Files moved out of the dataset: path → where the backup is.
    moved: dict[str, str] = Field(default_factory=dict)
    #: Original of each rewritten file: path → where the backup is.
    backups: dict[str, str] = Field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """Whether the repair writes anything."""
        return bool(self.rewritten or self.moved)

    def to_json(self) -> str:
        """The report as JSON (``robostore validate --repair --json``)."""
        return json.dumps({**self.model_dump(mode="json"), "changed": self.changed}, indent=2)

    def summary(self) -> str:
        """A few lines for humans."""
        rewrite, move, keep = (
            ("would rewrite", "would move", "would keep") if self.dry_run else ("rewrote", "moved", "kept")
        )
        if not self.changed:
            return f"{self.url}: nothing to repair ({self.kept_episodes} episodes, {self.kept_frames} frames)"
        lines = [
            f"{self.url}: keeps episodes 0..{self.kept_episodes - 1} ({self.kept_frames} frames)"
            if self.kept_episodes
            else f"{self.url}: keeps no episode"
        ]
        if self.dropped_episodes:
            lines.append(
                f"  drops episodes {_ranges(self.dropped_episodes)} ({self.dropped_frames} frames): {self.reason}"
            )
        if self.uncommitted_rows:
            lines.append(f"  drops uncommitted episode rows {_ranges(self.uncommitted_rows)} (past total_episodes)")
        if self.dropped_tasks:
            lines.append(f"  drops tasks no kept episode uses: {self.dropped_tasks}")
        lines += [f"  {rewrite} {p}" for p in self.rewritten]
        lines += [f"  {move} {p} -> {b}" for p, b in self.moved.items()]
        lines += [f"  {keep} the original of {p} at {b}" for p, b in self.backups.items()]
        return "\n".join(lines)


def repair_dataset(
    url: str | Store, storage_options: Mapping[str, Any] | None = None, *, dry_run: bool = False
) -> RepairReport:
    """Bring the dataset at ``url`` back to its longest intact prefix of episodes.

    See the module documentation for the plan. With ``dry_run`` nothing is written
    and the report says what would be.

    Raises:
        SchemaError: info.json is unreadable (nothing to repair against).
        CorruptDataset: the episodes table cannot be read at all, or not even episode
            0 is intact (the repair would keep nothing).
    """
    store = open_store(url, storage_options)
    meta = DatasetMeta.open(store, check=False)
    meta.require_v3("repair")
    validate(store, check_videos=False).refuse_misfiled("repair")
    report = RepairReport(url=store.url, dry_run=dry_run)
    report.uncommitted_rows = _uncommitted_rows(meta)

    keep, reason = _intact_prefix(meta)
    lengths = meta.columns["length"][:keep] if meta.num_episodes else np.zeros(0, np.int64)
    report.kept_episodes, report.kept_frames = keep, int(lengths.sum())
    report.dropped_episodes = meta.episode_indices[keep:].tolist()
    report.dropped_frames = int(meta.columns["length"][keep:].sum()) if meta.num_episodes else 0
    report.reason = reason
    if keep == 0 and meta.num_episodes:
        raise CorruptDataset(f"{store.url}: not even episode 0 is intact ({reason}); there is nothing to keep")

    kept_rows = meta.episodes.slice(0, keep)
    used = {t for tasks in kept_rows.column("tasks").to_pylist() for t in tasks or []}
    ntasks = max((meta.tasks.index(t) + 1 for t in used), default=0)
    ntasks = max(ntasks, _max_data_task(meta, keep) + 1)
    report.dropped_tasks = meta.tasks[ntasks:]
    info = meta.info.model_copy(deep=True)
    info.total_episodes, info.total_frames, info.total_tasks = keep, report.kept_frames, ntasks
    info.splits = {"train": f"0:{keep}"}
    kept = DatasetMeta(store, info, meta.tasks[:ntasks], kept_rows, meta.stats, meta.episode_files)
    dropping = bool(report.dropped_episodes or report.uncommitted_rows)
    # Without per-episode stats (not every writer keeps them) stats.json stays as it is.
    per_episode = episode_stats_dicts(meta.episode_stats().slice(0, keep)) if dropping or _stats_broken(meta) else []

    lease = None if dry_run else Lease.acquire(store, ttl_s=None if store.transactional else 600.0)
    try:
        _carry_out(store, meta, kept, report, per_episode, dry_run)
    finally:
        if lease is not None:
            lease.release()
            store.commit("robostore validate --repair")
    if report.changed and not dry_run:
        log.warning("%s", report.summary())
    return report


def _carry_out(
    store: Store,
    meta: DatasetMeta,
    kept: DatasetMeta,
    report: RepairReport,
    per_episode: list[dict[str, dict[str, Any]]],
    dry_run: bool,
) -> None:
    """The steps of the repair, in commit order (see the module documentation)."""
    keep = kept.num_episodes
    dropping = bool(report.dropped_episodes or report.uncommitted_rows)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    plan = _Plan(store, f"{BACKUP_DIR}/{stamp}", report, dry_run)

    # Data and video files first, metadata after, info.json last.
    if dropping and meta.num_episodes and keep:
        last_data = kept.data_files()[-1]
        ids = read_parquet(store, last_data, columns=["episode_index"]).column(0).to_numpy()
        if (ids >= keep).any():
            plan.rewrite(last_data, lambda: trim_data_file(store, last_data, keep))
    for path in leftover_files(kept):
        plan.move(path)
    for path in meta.episode_files:
        table = read_parquet(store, path)
        rows = pc.less(table.column("episode_index"), keep)
        if pc.all(rows).as_py():
            continue
        if not pc.any(rows).as_py():
            plan.move(path)
        else:
            plan.rewrite(path, functools.partial(_write_rows, store, path, table, rows))
    if report.dropped_tasks:
        plan.rewrite(TASKS_PATH, lambda: write_tasks(store, kept.tasks))
    if any(per_episode):
        kept.stats = aggregate_stats(per_episode)
        plan.rewrite(STATS_PATH, kept.write_stats)
    if report.changed or _totals_differ(meta.info, kept.info):
        plan.rewrite(INFO_PATH, kept.write_info)


class _Plan:
    """Carries out (or, dry, only records) the steps of a repair, each with its backup."""

    def __init__(self, store: Store, backup: str, report: RepairReport, dry_run: bool) -> None:
        self.store, self.backup, self.report, self.dry_run = store, backup, report, dry_run

    def _keep_copy(self, path: str) -> str:
        target = f"{self.backup}/{path}"
        if not self.dry_run and self.store.exists(path):
            copy_file(self.store, path, self.store, target)
        return target

    def rewrite(self, path: str, write: Callable[[], object]) -> None:
        if self.store.exists(path):
            self.report.backups[path] = self._keep_copy(path)
        self.report.rewritten.append(path)
        if not self.dry_run:
            write()

    def move(self, path: str) -> None:
        self.report.moved[path] = self._keep_copy(path)
        if not self.dry_run:
            self.store.delete(path)


# ---------------------------------------------------------------------- checks
def _intact_prefix(meta: DatasetMeta) -> tuple[int, str | None]:
    """How many leading episodes are intact, and why the next one is not."""
    cols, n = meta.columns, meta.num_episodes
    data: dict[str, Any] = {}  # data file -> its index columns, or the error reading it
    videos: dict[str, Any] = {}  # mp4 -> (duration or None), or the error opening it
    prev_end = 0
    for row in range(n):
        ep = int(cols["episode_index"][row])
        try:
            _check_episode(meta, row, ep, prev_end, data, videos)
        except RobostoreError as exc:
            return row, f"episode {ep}: {exc}"
        prev_end = int(cols["dataset_to_index"][row])
    return n, None


def _write_rows(store: Store, path: str, table: pa.Table, rows: pa.Array) -> None:
    write_episodes(store, path, table.filter(rows))


def _check_episode(
    meta: DatasetMeta, row: int, ep: int, prev_end: int, data: dict[str, Any], videos: dict[str, Any]
) -> None:
    cols, store = meta.columns, meta.store
    start, end, length = (int(cols[c][row]) for c in ("dataset_from_index", "dataset_to_index", "length"))
    if ep != row:
        raise CorruptDataset(f"{store.describe(EPISODES_DIR)}: row {row} holds episode {ep}")
    if length <= 0 or end - start != length or start != prev_end:
        raise CorruptDataset(
            f"{store.describe(EPISODES_DIR)}: frames {start}..{end - 1} (length {length}) do not follow frame {prev_end - 1}"
        )
    unknown = [t for t in meta.episodes.column("tasks")[row].as_py() or [] if t not in meta.tasks]
    if unknown:
        raise CorruptDataset(f"{store.describe(TASKS_PATH)}: lacks the episode's tasks {unknown}")
    path = _path(meta, lambda: meta.data_path(ep))
    if path not in data:
        data[path] = _read_index(meta, path)
    table = data[path]
    if isinstance(table, RobostoreError):
        raise table
    mask = table["episode_index"] == ep
    if not np.array_equal(np.sort(table["index"][mask]), np.arange(start, end)):
        raise CorruptDataset(f"{store.describe(path)}: has {int(mask.sum())} of the episode's {length} rows")
    if not np.array_equal(np.sort(table["frame_index"][mask]), np.arange(length)):
        raise CorruptDataset(f"{store.describe(path)}: frame_index is not 0..{length - 1}")
    tasks = table["task_index"][mask]
    if len(tasks) and (tasks.min() < 0 or tasks.max() >= len(meta.tasks)):
        raise CorruptDataset(f"{store.describe(path)}: task_index outside meta/tasks.parquet")
    frame_s = 1.0 / meta.fps
    for key in meta.video_keys:
        span_from, span_to = (float(cols[video_column(key, c)][row]) for c in ("from_timestamp", "to_timestamp"))
        benign = span_agrees(span_from, span_to, length, meta.fps) or span_at_last_frame(
            span_from, span_to, length, meta.fps
        )
        if not (span_from >= 0 and benign):
            raise CorruptDataset(f"{store.describe(EPISODES_DIR)}: {key} spans {span_from:.4f}..{span_to:.4f} s")
        span_to = frames_end(span_from, span_to, length, meta.fps)
        mp4 = _path(meta, functools.partial(_span_path, meta, ep, key))
        if mp4 not in videos:
            videos[mp4] = _open_video(meta, key, mp4)
        duration = videos[mp4]
        if isinstance(duration, RobostoreError):
            raise duration
        if duration is not None and duration + frame_s / 2 < span_to:
            raise CorruptDataset(f"{store.describe(mp4)}: lasts {duration:.3f} s, the episode ends at {span_to:.3f} s")


def _span_path(meta: DatasetMeta, episode: int, key: str) -> str:
    return meta.video_span(episode, key).path


def _path(meta: DatasetMeta, name: Callable[[], str]) -> str:
    try:
        return name()
    except (SchemaError, ValueError) as exc:
        raise CorruptDataset(f"{meta.store.describe(EPISODES_DIR)}: bad file numbers ({exc})") from exc


def _read_index(meta: DatasetMeta, path: str) -> dict[str, np.ndarray] | RobostoreError:
    try:
        schema = read_parquet_schema(meta.store, path)
        for key, feature in meta.features.items():
            if feature.is_video:
                continue
            why = "is missing" if key not in schema.names else column_mismatch(schema.field(key).type, feature)
            if why:
                return CorruptDataset(f"{meta.store.describe(path)}: column {key!r} {why}")
        table = read_parquet(meta.store, path, columns=["index", "episode_index", "frame_index", "task_index"])
    except RobostoreError as exc:
        return exc
    return {name: table.column(name).to_numpy() for name in table.column_names}


def _open_video(meta: DatasetMeta, key: str, path: str) -> float | RobostoreError | None:
    from robostore.video import VideoReader
    from robostore.video.conformance import check_conformance

    try:
        with meta.store.open(path) as fh, VideoReader(fh, meta.store.describe(path), thread_type="NONE") as video:
            check_conformance(video, key, meta.features[key])
            return video.duration
    except RobostoreError as exc:
        return exc


def _max_data_task(meta: DatasetMeta, keep: int) -> int:
    """The largest task_index in the data rows of the first ``keep`` episodes (-1: none)."""
    if not keep:
        return -1
    out = -1
    for path in dict.fromkeys(meta.data_path(ep) for ep in range(keep)):
        table = read_parquet(meta.store, path, columns=["episode_index", "task_index"])
        tasks = table.column("task_index").to_numpy()[table.column("episode_index").to_numpy() < keep]
        if len(tasks):
            out = max(out, int(tasks.max()))
    return out


def _uncommitted_rows(meta: DatasetMeta) -> list[int]:
    out: list[int] = []
    for path in meta.episode_files:
        ids = read_parquet(meta.store, path, columns=["episode_index"]).column(0).to_numpy()
        out += ids[ids >= meta.info.total_episodes].tolist()
    return sorted(out)


def _stats_broken(meta: DatasetMeta) -> bool:
    return any(p.path == STATS_PATH and not p.is_warning for p in meta_problems(meta))


def _totals_differ(old: DatasetInfo, new: DatasetInfo) -> bool:
    fields = ("total_episodes", "total_frames", "total_tasks", "splits")
    return any(getattr(old, f) != getattr(new, f) for f in fields)


def _ranges(values: list[int]) -> str:
    """``[3, 4, 5, 9]`` → ``"3-5, 9"``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and runs[-1][-1] == v - 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
