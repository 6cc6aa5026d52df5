"""Consistency checks of ``meta/`` alone: counts, frame ranges, tasks, stats shapes.

They need no data or video file, so :meth:`DatasetMeta.open` runs them on every open
(an inconsistent episodes table is reported at once, not as a wrong sample later) and
``robostore validate`` reports all of them, together with its file-level checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from robostore.layout import EPISODES_DIR, INFO_PATH, STATS_PATH, TASKS_PATH
from robostore.schema import DatasetInfo, DatasetStats, Feature
from robostore.schema.episodes import span_agrees, span_at_last_frame, video_column


class MetaTables(Protocol):
    """What the checks read of a dataset's metadata (a :class:`~robostore.meta.DatasetMeta`)."""

    @property
    def info(self) -> DatasetInfo: ...
    @property
    def tasks(self) -> list[str]: ...
    @property
    def episodes(self) -> pa.Table: ...
    @property
    def stats(self) -> DatasetStats | None: ...
    @property
    def columns(self) -> Mapping[str, np.ndarray]: ...
    @property
    def num_episodes(self) -> int: ...
    @property
    def fps(self) -> int: ...
    @property
    def video_keys(self) -> list[str]: ...
    @property
    def features(self) -> Mapping[str, Feature]: ...


class Problem(BaseModel):
    """One thing wrong with a dataset: where (dataset-relative path), what, and its error.

    ``error`` names the class in :mod:`robostore.errors` a reader raises for it
    (``NotFound`` for a missing file, ``VideoError`` for an undecodable mp4, ...).
    ``level`` is ``"warning"`` for inconsistencies that change no value read (readers
    issue a :class:`~robostore.errors.DatasetWarning` and go on), ``"error"`` otherwise.
    """

    path: str
    message: str
    error: str = "CorruptDataset"
    level: Literal["error", "warning"] = "error"

    @property
    def is_warning(self) -> bool:
        return self.level == "warning"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def meta_problems(meta: MetaTables) -> list[Problem]:
    """Every inconsistency between info.json, the episodes table, tasks and stats
    (errors and warnings: see :attr:`Problem.level`)."""
    out: list[Problem] = []
    _counts(meta, out)
    _ranges(meta, out)
    _file_indices(meta, out)
    _video_spans(meta, out)
    _tasks(meta, out)
    _stats(meta, out)
    return out


def _counts(meta: MetaTables, out: list[Problem]) -> None:
    info, n = meta.info, meta.num_episodes
    if info.total_episodes != n:
        out.append(
            Problem(
                path=INFO_PATH, message=f"total_episodes is {info.total_episodes} but the episodes table has {n} rows"
            )
        )
    indices = meta.columns["episode_index"]
    if n and not np.array_equal(indices, np.arange(n)):
        missing = sorted(set(range(n)) - set(indices.tolist()))[:5]
        out.append(Problem(path=EPISODES_DIR, message=f"episode indices are not 0..{n - 1} (missing e.g. {missing})"))
    total = int(meta.columns["length"].sum()) if n else 0
    if total != info.total_frames:
        out.append(
            Problem(
                path=INFO_PATH, message=f"total_frames is {info.total_frames} but the episodes' lengths sum to {total}"
            )
        )
    if info.total_tasks != len(meta.tasks):
        out.append(
            Problem(
                path=INFO_PATH,
                message=f"total_tasks is {info.total_tasks} but {TASKS_PATH} has {len(meta.tasks)} tasks",
            )
        )


def _ranges(meta: MetaTables, out: list[Problem]) -> None:
    if not meta.num_episodes:
        return
    cols = meta.columns
    indices = cols["episode_index"]
    starts, ends, lengths = cols["dataset_from_index"], cols["dataset_to_index"], cols["length"]
    if starts[0] != 0:
        out.append(
            Problem(path=EPISODES_DIR, message=f"episode {int(indices[0])} starts at frame {int(starts[0])}, not 0")
        )
    for row in np.nonzero(ends - starts != lengths)[0][:5]:
        out.append(
            Problem(
                path=EPISODES_DIR,
                message=f"episode {int(indices[row])}: dataset_to_index - dataset_from_index = "
                f"{int(ends[row] - starts[row])} but length is {int(lengths[row])}",
            )
        )
    for row in np.nonzero(starts[1:] != ends[:-1])[0][:5]:
        kind = "gap" if starts[row + 1] > ends[row] else "overlap"
        out.append(
            Problem(
                path=EPISODES_DIR,
                message=f"frame ranges are not contiguous: {kind} between episode {int(indices[row])} "
                f"(ends at {int(ends[row])}) and episode {int(indices[row + 1])} (starts at {int(starts[row + 1])})",
            )
        )


def file_index_columns(meta: MetaTables) -> list[str]:
    """The episodes-table columns that number data and video files."""
    return ["data/chunk_index", "data/file_index"] + [
        video_column(key, field) for key in meta.video_keys for field in ("chunk_index", "file_index")
    ]


def _file_indices(meta: MetaTables, out: list[Problem]) -> None:
    cols = meta.columns
    for name in file_index_columns(meta):
        values = cols.get(name)
        if values is None or not len(values):
            continue
        if not np.issubdtype(values.dtype, np.integer):
            out.append(
                Problem(path=EPISODES_DIR, message=f"column {name!r} holds {values.dtype} values, not file numbers")
            )
        elif (values < 0).any():
            row = int(np.argmax(values < 0))
            out.append(
                Problem(
                    path=EPISODES_DIR,
                    message=f"episode {int(cols['episode_index'][row])}: {name} is {int(values[row])}, not a file number",
                )
            )


def _video_spans(meta: MetaTables, out: list[Problem]) -> None:
    cols = meta.columns
    frame_s = 1.0 / meta.fps
    for key in meta.video_keys:
        start = cols[video_column(key, "from_timestamp")]
        end = cols[video_column(key, "to_timestamp")]
        expected = cols["length"] * frame_s
        # Written as "not good" so that NaN timestamps count as bad.
        bad = ~((start >= 0) & span_agrees(start, end, cols["length"], meta.fps))
        # Some writers store the last frame's time as to_timestamp (one frame short).
        # Readers locate frames by from_timestamp + frame_index / fps, as lerobot does,
        # so no value changes: a warning.
        last_frame = bad & (start >= 0) & span_at_last_frame(start, end, cols["length"], meta.fps)
        for row in np.nonzero(bad & ~last_frame)[0][:5]:
            out.append(
                Problem(
                    path=EPISODES_DIR,
                    message=f"episode {int(cols['episode_index'][row])}: {key} spans from_timestamp "
                    f"{float(start[row]):.4f} s to to_timestamp {float(end[row]):.4f} s, but its "
                    f"{int(cols['length'][row])} frames last {float(expected[row]):.4f} s",
                )
            )
        if last_frame.any():
            episodes = cols["episode_index"][last_frame]
            out.append(
                Problem(
                    path=EPISODES_DIR,
                    message=f"{key}: to_timestamp is the time of the last frame, not the end of the episode "
                    f"(one frame short), in {len(episodes)} episode(s), e.g. {int(episodes[0])}; "
                    "frames are located from from_timestamp, so nothing read changes",
                    level="warning",
                )
            )


def _tasks(meta: MetaTables, out: list[Problem]) -> None:
    known = set(meta.tasks)
    indices = meta.columns["episode_index"]
    for row, tasks in enumerate(meta.episodes.column("tasks").to_pylist()):
        unknown = [t for t in tasks or [] if t not in known]
        if unknown:
            out.append(
                Problem(
                    path=EPISODES_DIR, message=f"episode {int(indices[row])} names tasks not in {TASKS_PATH}: {unknown}"
                )
            )


def _stats(meta: MetaTables, out: list[Problem]) -> None:
    if meta.stats is None:
        if meta.num_episodes:  # lerobot reads such datasets (its meta.stats is None too)
            out.append(
                Problem(
                    path=STATS_PATH,
                    message="missing, but the dataset has episodes (DatasetMeta.stats is None; "
                    "Recorder.resume rebuilds it from the episodes table)",
                    level="warning",
                )
            )
        return
    for key, stats in meta.stats.features.items():
        feature = meta.features.get(key)
        if feature is None:  # lerobot ignores them too
            out.append(Problem(path=STATS_PATH, message=f"stats for {key!r}, which is not a feature", level="warning"))
            continue
        expected = (feature.frame_size[2], 1, 1) if feature.is_camera else feature.shape
        for name in ("min", "max", "mean", "std"):
            value = getattr(stats, name)
            if value is None:
                continue
            try:
                shape = np.asarray(value, dtype=float).shape
            except ValueError:
                shape = ("ragged",)
            if tuple(shape) != tuple(expected):
                out.append(
                    Problem(path=STATS_PATH, message=f"{key}/{name} has shape {list(shape)}, expected {list(expected)}")
                )
