"""Consistency checks of a whole dataset: ``robostore validate``.

Unlike opening (which reads ``meta/`` only), validation touches every file the
metadata points at: each data parquet's footer and index columns, each mp4's header.
It collects every problem it finds instead of stopping at the first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from robostore import errors
from robostore.backends import open_store
from robostore.checks import Problem, meta_problems
from robostore.errors import CorruptDataset, RobostoreError, SchemaError, VideoError
from robostore.layout import INFO_PATH
from robostore.meta import DatasetMeta
from robostore.parquet import read_parquet, read_parquet_schema
from robostore.schema import Feature
from robostore.schema.arrow import column_mismatch
from robostore.schema.episodes import frames_end, video_column
from robostore.store import Store

INDEX_COLUMNS = ("index", "episode_index", "frame_index")
#: Files checked at the same time.
FILE_WORKERS = 8


class ValidationReport(BaseModel):
    """What :func:`validate` found."""

    url: str
    problems: list[Problem] = Field(default_factory=list)
    #: Inconsistencies that change no value read (readers warn and go on).
    warnings: list[Problem] = Field(default_factory=list)
    #: Episodes whose rows are in a neighbouring data file, not the one the episodes
    #: table names (lerobot issue #2401); readers find them, writers must not append.
    misfiled: list[int] = Field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.problems

    def add(self, path: str, message: str, error: type[RobostoreError] = CorruptDataset) -> None:
        self.problems.append(Problem(path=path, message=message, error=error.__name__))

    def extend(self, found: list[Problem]) -> None:
        """File ``found`` under :attr:`problems` or :attr:`warnings` by their level."""
        for problem in found:
            (self.warnings if problem.is_warning else self.problems).append(problem)

    def refuse_misfiled(self, action: str) -> None:
        """Raise :class:`CorruptDataset` when episodes are filed under the wrong data file:
        ``action`` (a writer, a subset copy) would lose or mix up their rows."""
        if self.misfiled:
            raise CorruptDataset(
                f"{self.url}: episodes {self.misfiled[:10]} are filed under the wrong data file in the "
                f"episodes table (lerobot's v2.1→v3.0 converter does this, lerobot issue #2401); {action} "
                "cannot work on such a dataset. Readers read it; copy it whole with `robostore mirror`"
            )

    def raise_for_problems(self) -> None:
        """Raise the typed error of the first problem (listing up to five), if there is one.

        The message starts with the URL and path of the file the first problem is about.
        """
        if not self.problems:
            return
        first = self.problems[0]
        error = getattr(errors, first.error, CorruptDataset)
        if not (isinstance(error, type) and issubclass(error, RobostoreError)):
            error = CorruptDataset
        where = f"{self.url}/{first.path}"
        lines = [
            p.message if p.message.startswith(self.url) else f"{self.url}/{p.path}: {p.message}"
            for p in self.problems[:5]
        ]
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        head = "" if lines[0].startswith(where) else f"{where}: "
        raise error(f"{head}{'; '.join(lines)}{more}; run `robostore validate {self.url}` for every problem")


def validate(
    url: str | Store, storage_options: Mapping[str, Any] | None = None, *, check_videos: bool = True
) -> ValidationReport:
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
        report.add(_path_in(str(exc), store), str(exc), type(exc))
        return report
    report.episodes = meta.num_episodes
    report.frames = meta.total_frames
    report.extend(meta_problems(meta))
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


def _column_problem(schema: pa.Schema, key: str, feature: Feature) -> str | None:
    if key not in schema.names:
        return "is missing"
    return column_mismatch(schema.field(key).type, feature)


def _file_of(name: Callable[..., str], *args: Any) -> str | None:
    """``name(*args)``: the file an episodes row names, or None when its file numbers are
    bad (``meta_problems`` reports those)."""
    try:
        return name(*(int(a) if isinstance(a, np.number) else a for a in args))
    except (SchemaError, ValueError):
        return None


def _problem(path: str, message: str, error: type[RobostoreError] = CorruptDataset) -> Problem:
    return Problem(path=path, message=message, error=error.__name__)


def _check_files(report: ValidationReport, check: Callable[[str], list[Problem]], paths: list[str]) -> None:
    """Run ``check`` on each file, a few at a time (remote reads wait on the network)."""
    if not paths:
        return
    with ThreadPoolExecutor(max_workers=min(FILE_WORKERS, len(paths))) as pool:
        for problems in pool.map(check, paths):
            report.files_checked += 1
            report.extend(problems)


def _check_data_files(meta: DatasetMeta, report: ValidationReport) -> None:
    cols = meta.columns
    by_file: dict[str, list[int]] = {}
    for row, ep in enumerate(cols["episode_index"].tolist()):
        path = _file_of(meta.data_path, ep)
        if path is not None:
            by_file.setdefault(path, []).append(row)

    stored = {k: f for k, f in meta.features.items() if not f.is_video}

    def check(path: str) -> list[Problem]:
        try:
            schema = read_parquet_schema(meta.store, path)
            out = [
                _problem(path, f"column {key!r} " + (why or ""))
                for key, why in ((k, _column_problem(schema, k, f)) for k, f in stored.items())
                if why
            ]
            if any(name not in schema.names for name in (*INDEX_COLUMNS, "task_index")):
                return out
            table = read_parquet(meta.store, path, columns=[*INDEX_COLUMNS, "task_index"])
        except RobostoreError as exc:
            return [_problem(path, str(exc), type(exc))]
        index = table.column("index").to_numpy()
        episode = table.column("episode_index").to_numpy()
        frame = table.column("frame_index").to_numpy()
        # Rows of episodes past info.json are an interrupted recording's, ignored by
        # readers and removed by Recorder.resume: their tasks may not be committed yet.
        tasks = table.column("task_index").to_numpy()[np.isin(episode, meta.episode_indices)]
        if len(tasks) and (tasks.min() < 0 or tasks.max() >= len(meta.tasks)):
            bad = int(tasks[(tasks < 0) | (tasks >= len(meta.tasks))][0])
            out.append(
                _problem(path, f"task_index {bad} is not a task of meta/tasks.parquet ({len(meta.tasks)} tasks)")
            )
        for row in by_file[path]:
            message = _episode_rows_problem(cols, row, index, episode, frame)
            if message is not None:
                unfound.append((row, path, message))
        return out

    unfound: list[tuple[int, str, str]] = []  # (episodes row, filed data file, what is wrong)
    _check_files(report, check, list(by_file))
    _find_misfiled(meta, report, sorted(unfound))


def _episode_rows_problem(
    cols: dict[str, np.ndarray], row: int, index: np.ndarray, episode: np.ndarray, frame: np.ndarray
) -> str | None:
    """What is wrong with episodes-table ``row``'s rows among a data file's index columns."""
    ep = int(cols["episode_index"][row])
    start, end = int(cols["dataset_from_index"][row]), int(cols["dataset_to_index"][row])
    mask = episode == ep
    got = index[mask]
    if len(got) != end - start or not np.array_equal(np.sort(got), np.arange(start, end)):
        return f"episode {ep}: expected rows with index {start}..{end - 1}, found {len(got)} rows" + (
            f" with index {int(got.min())}..{int(got.max())}" if len(got) else ""
        )
    if not np.array_equal(np.sort(frame[mask]), np.arange(end - start)):
        return f"episode {ep}: frame_index is not 0..{end - start - 1}"
    return None


def _find_misfiled(meta: DatasetMeta, report: ValidationReport, unfound: list[tuple[int, str, str]]) -> None:
    """Episodes whose rows are not in their data file: a warning when a neighbouring file
    holds them all (lerobot's converter files episodes so, and readers find them there),
    otherwise the error found in the filed file."""
    columns: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}
    cols = meta.columns
    for row, path, message in unfound:
        ep = int(cols["episode_index"][row])
        for candidate in meta.misfiled_candidates(ep):
            if candidate not in columns:
                try:
                    table = read_parquet(meta.store, candidate, columns=list(INDEX_COLUMNS))
                    columns[candidate] = tuple(table.column(c).to_numpy() for c in INDEX_COLUMNS)
                except RobostoreError:
                    columns[candidate] = None
            found = columns[candidate]
            if found is not None and _episode_rows_problem(cols, row, *found) is None:
                report.misfiled.append(ep)
                report.warnings.append(
                    Problem(
                        path=path,
                        message=f"episode {ep} is filed under this file in the episodes table but its rows are in "
                        f"{candidate} (lerobot's v2.1→v3.0 converter does this, lerobot issue #2401); readers find them there",
                        level="warning",
                    )
                )
                break
        else:
            report.problems.append(_problem(path, message))


def _check_videos(meta: DatasetMeta, report: ValidationReport) -> None:
    if not meta.video_keys or not meta.num_episodes:
        return
    try:
        from robostore.video import VideoReader
        from robostore.video.conformance import check_conformance
    except ImportError:
        report.add(
            "videos", "PyAV is not installed, so the mp4 files were not checked (pip install 'robostore[video]')"
        )
        return
    cols = meta.columns
    frame_s = 1.0 / meta.fps
    needed: dict[str, tuple[str, float]] = {}  # mp4 -> (video key, latest end of frames in it)
    for key in meta.video_keys:
        chunk, file = cols[video_column(key, "chunk_index")], cols[video_column(key, "file_index")]
        to_timestamp = cols[video_column(key, "to_timestamp")]
        # Where the frames end, or to_timestamp if it claims more (meta_problems reports that).
        ends = np.fmax(
            to_timestamp, frames_end(cols[video_column(key, "from_timestamp")], to_timestamp, cols["length"], meta.fps)
        )
        for row in range(meta.num_episodes):
            path = _file_of(meta.info.video_file, key, chunk[row], file[row])
            if path is None:
                continue
            needed[path] = (key, max(needed.get(path, (key, 0.0))[1], float(ends[row])))

    def check(path: str) -> list[Problem]:
        key, end = needed[path]
        try:
            with meta.store.open(path) as fh, VideoReader(fh, meta.store.describe(path), thread_type="NONE") as video:
                end_time = video.end_time
                check_conformance(video, key, meta.features[key])
        except RobostoreError as exc:
            return [_problem(path, str(exc), type(exc))]
        if end_time is not None and end_time + frame_s / 2 < end:
            return [
                _problem(
                    path,
                    f"the video lasts until {end_time:.3f} s but episodes reach to_timestamp {end:.3f} s",
                    VideoError,
                )
            ]
        return []

    _check_files(report, check, list(needed))
