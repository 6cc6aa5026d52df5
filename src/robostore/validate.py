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
from robostore.checks import INFO_PATH, Problem, meta_problems
from robostore.meta import DatasetMeta
from robostore.parquet import read_parquet
from robostore.schema.episodes import video_column
from robostore.store import Store

INDEX_COLUMNS = ("index", "episode_index", "frame_index")


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
        meta = DatasetMeta.open(store, check=False)
    except RobostoreError as exc:
        report.add(_path_in(str(exc), store), str(exc))
        return report
    report.episodes = meta.num_episodes
    report.frames = meta.total_frames
    report.problems.extend(meta_problems(meta))
    _check_data_files(meta, report)
    if check_videos:
        _check_videos(meta, report)
    return report


def _path_in(message: str, store: Store) -> str:
    """The dataset path an error message starts with (``<url>/<path>: ...``)."""
    prefix = store.url + "/"
    if not message.startswith(prefix):
        return INFO_PATH
    return message[len(prefix) :].split(":", 1)[0]


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
        from robostore.video.conformance import check_conformance
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
        for row in range(meta.num_episodes):
            path = meta.info.video_file(key, int(chunk[row]), int(file[row]))
            needed[path] = max(needed.get(path, 0.0), float(ends[row]))
        for path, end in needed.items():
            report.files_checked += 1
            try:
                with meta.store.open(path) as fh, VideoReader(fh, meta.store.describe(path), thread_type="NONE") as video:
                    duration = video.duration
                    check_conformance(video, key, feature)
            except RobostoreError as exc:
                report.add(path, str(exc))
                continue
            if duration is not None and duration + frame_s / 2 < end:
                report.add(path, f"the video lasts {duration:.3f} s but episodes reach to_timestamp {end:.3f} s")
