"""Consistency checks of a whole dataset: ``robostore validate``.

Unlike opening (which reads ``meta/`` only), validation touches every file the
metadata points at: each data parquet's footer and index columns, each mp4's header.
It collects every problem it finds instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from robostore.backends import open_store
from robostore.errors import RobostoreError
from robostore.meta import EPISODES_DIR, INFO_PATH, STATS_PATH, TASKS_PATH, DatasetMeta
from robostore.parquet import read_parquet
from robostore.schema.episodes import video_column
from robostore.store import Store

INDEX_COLUMNS = ("index", "episode_index", "frame_index")


class Problem(BaseModel):
    """One thing wrong with a dataset: where, and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ValidationReport(BaseModel):
    """What :func:`validate` found."""

    url: str
    problems: list[Problem] = Field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path=path, message=message))


def validate(url: str | Store, storage_options: Mapping[str, Any] | None = None, *, check_videos: bool = True) -> ValidationReport:
    """Check the dataset at ``url`` and return every problem found.

    Checks: info.json parses; the episodes table, tasks and stats are readable and
    agree with info.json; frame ranges are contiguous and sum to ``total_frames``;
    every data file exists and its ``index``/``episode_index``/``frame_index``
    columns match the episodes table; every mp4 exists, has a video stream of the
    schema's size and is long enough for its episodes' ``to_timestamp``.
    """
    store = open_store(url, storage_options)
    report = ValidationReport(url=store.url)
    try:
        meta = DatasetMeta.open(store)
    except RobostoreError as exc:
        report.add(_path_in(str(exc), store), str(exc))
        return report
    report.episodes = meta.num_episodes
    report.frames = meta.total_frames
    _check_counts(meta, report)
    _check_stats(meta, report)
    _check_data_files(meta, report)
    if check_videos:
        _check_videos(meta, report)
    return report


def _path_in(message: str, store: Store) -> str:
    prefix = store.url + "/"
    head = message.split(":", 1)[0] if message.startswith(prefix) else ""
    return head[len(prefix) :] if head else INFO_PATH


def _check_counts(meta: DatasetMeta, report: ValidationReport) -> None:
    info = meta.info
    cols = meta.columns
    n = meta.num_episodes
    if info.total_episodes != n:
        report.add(INFO_PATH, f"total_episodes is {info.total_episodes} but the episodes table has {n} rows")
    indices = cols["episode_index"]
    if n and not np.array_equal(indices, np.arange(n)):
        missing = sorted(set(range(n)) - set(indices.tolist()))[:5]
        report.add(EPISODES_DIR, f"episode indices are not 0..{n - 1} (missing e.g. {missing})")
    if n:
        starts, ends, lengths = cols["dataset_from_index"], cols["dataset_to_index"], cols["length"]
        if starts[0] != 0:
            report.add(EPISODES_DIR, f"episode {int(indices[0])} starts at frame {int(starts[0])}, not 0")
        bad_len = np.nonzero(ends - starts != lengths)[0]
        for row in bad_len[:5]:
            report.add(
                EPISODES_DIR,
                f"episode {int(indices[row])}: dataset_to_index - dataset_from_index = "
                f"{int(ends[row] - starts[row])} but length is {int(lengths[row])}",
            )
        gaps = np.nonzero(starts[1:] != ends[:-1])[0]
        for row in gaps[:5]:
            kind = "gap" if starts[row + 1] > ends[row] else "overlap"
            report.add(
                EPISODES_DIR,
                f"frame ranges are not contiguous: {kind} between episode {int(indices[row])} "
                f"(ends at {int(ends[row])}) and episode {int(indices[row + 1])} (starts at {int(starts[row + 1])})",
            )
        total = int(lengths.sum())
        if total != info.total_frames:
            report.add(INFO_PATH, f"total_frames is {info.total_frames} but the episodes' lengths sum to {total}")
    if info.total_tasks != len(meta.tasks):
        report.add(INFO_PATH, f"total_tasks is {info.total_tasks} but meta/tasks.parquet has {len(meta.tasks)} tasks")
    known = set(meta.tasks)
    for row, tasks in enumerate(meta.episodes.column("tasks").to_pylist()):
        unknown = [t for t in tasks or [] if t not in known]
        if unknown:
            report.add(EPISODES_DIR, f"episode {int(indices[row])} names tasks not in {TASKS_PATH}: {unknown}")


def _check_stats(meta: DatasetMeta, report: ValidationReport) -> None:
    if meta.stats is None:
        if meta.num_episodes:
            report.add(STATS_PATH, "missing, but the dataset has episodes")
        return
    for key, stats in meta.stats.features.items():
        feature = meta.features.get(key)
        if feature is None:
            report.add(STATS_PATH, f"stats for {key!r}, which is not a feature")
            continue
        expected = (feature.shape[-1], 1, 1) if feature.is_camera else feature.shape
        for name in ("min", "max", "mean", "std"):
            value = getattr(stats, name)
            if value is None:
                continue
            shape = np.shape(np.asarray(value, dtype=object if _ragged(value) else None))
            if tuple(shape) != tuple(expected):
                report.add(STATS_PATH, f"{key}/{name} has shape {list(shape)}, expected {list(expected)}")


def _ragged(value: Any) -> bool:
    try:
        np.asarray(value, dtype=float)
        return False
    except (ValueError, TypeError):
        return True


def _check_data_files(meta: DatasetMeta, report: ValidationReport) -> None:
    cols = meta.columns
    by_file: dict[str, list[int]] = {}
    for row, ep in enumerate(cols["episode_index"].tolist()):
        by_file.setdefault(meta.data_path(ep), []).append(row)
    for path, rows in by_file.items():
        report.files_checked += 1
        try:
            table = read_parquet(meta.store, path, columns=INDEX_COLUMNS)
        except RobostoreError as exc:
            report.add(path, str(exc))
            continue
        index = table.column("index").to_numpy()
        episode = table.column("episode_index").to_numpy()
        frame = table.column("frame_index").to_numpy()
        for row in rows:
            ep = int(cols["episode_index"][row])
            start, end = int(cols["dataset_from_index"][row]), int(cols["dataset_to_index"][row])
            mask = episode == ep
            got = index[mask]
            if len(got) != end - start or not np.array_equal(np.sort(got), np.arange(start, end)):
                report.add(
                    path,
                    f"episode {ep}: expected rows with index {start}..{end - 1}, found {len(got)} rows"
                    + (f" with index {int(got.min())}..{int(got.max())}" if len(got) else ""),
                )
                continue
            if not np.array_equal(np.sort(frame[mask]), np.arange(end - start)):
                report.add(path, f"episode {ep}: frame_index is not 0..{end - start - 1}")


def _check_videos(meta: DatasetMeta, report: ValidationReport) -> None:
    if not meta.video_keys or not meta.num_episodes:
        return
    try:
        from robostore.video import VideoReader
    except ImportError:
        report.add("videos", "PyAV is not installed, so the mp4 files were not checked (pip install 'robostore[video]')")
        return
    cols = meta.columns
    frame_s = 1.0 / meta.fps
    for key in meta.video_keys:
        feature = meta.features[key]
        needed: dict[str, float] = {}
        chunk, file = cols[video_column(key, "chunk_index")], cols[video_column(key, "file_index")]
        ends = cols[video_column(key, "to_timestamp")]
        starts = cols[video_column(key, "from_timestamp")]
        for row in range(meta.num_episodes):
            path = meta.info.video_file(key, int(chunk[row]), int(file[row]))
            needed[path] = max(needed.get(path, 0.0), float(ends[row]))
            if ends[row] < starts[row]:
                report.add(EPISODES_DIR, f"episode {int(cols['episode_index'][row])}: {key} to_timestamp < from_timestamp")
        for path, end in needed.items():
            report.files_checked += 1
            try:
                with meta.store.open(path) as fh, VideoReader(fh, meta.store.describe(path), thread_type="NONE") as video:
                    duration = video.duration
                    size = (video.height, video.width)
            except RobostoreError as exc:
                report.add(path, str(exc))
                continue
            if size != tuple(feature.shape[:2]):
                report.add(path, f"frames are {size[0]}x{size[1]} but {key} is {feature.shape[0]}x{feature.shape[1]} in info.json")
            if duration is not None and duration + frame_s / 2 < end:
                report.add(path, f"the video lasts {duration:.3f} s but episodes reach to_timestamp {end:.3f} s")
