"""The background episode writer: finished episodes -> journal -> open files -> publish jobs.

``Recorder.save_episode`` hands the episode's buffer here and waits until it is in
the journal: on this thread the video encoders are drained, the data rows and stats
are built and written to the journal (:mod:`robostore.record.journal`). Then, after
``save_episode`` returned, the episode is added to the open files (rolling over at the
size limits; appending costs the same whatever the files hold, see
:mod:`robostore.record.files`) and the new file versions are handed to the publisher.
Work is local only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import numpy as np
import pyarrow as pa

from robostore.errors import RobostoreError, StoreError
from robostore.layout import (
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    episodes_file,
    info_json,
    stats_json,
    tasks_parquet,
)
from robostore.record import journal
from robostore.record._crash import crashpoint
from robostore.record.episode import EpisodeBuffer
from robostore.record.files import FileIndex, ParquetSeries, VideoSeries
from robostore.record.journal import StagedEpisode
from robostore.record.staging import Publisher, PublishJob, Staging
from robostore.schema import DatasetInfo, DatasetStats, Feature, language
from robostore.schema.arrow import IMAGE_TYPE, data_schema, scalar_type
from robostore.schema.episodes import video_column
from robostore.stats import add_episode_stats, compute_stats

log = logging.getLogger(__name__)

_STOP = object()


def numeric_column(values: np.ndarray, feature: Feature) -> pa.Array:
    """An Arrow column of a [frames, *shape] array, typed as lerobot's data files."""
    if feature.shape == (1,):
        return pa.array(values.reshape(-1), type=scalar_type(feature.dtype))
    out: pa.Array = pa.array(values.reshape(-1), type=scalar_type(feature.dtype))
    for size in reversed(feature.shape):
        out = pa.FixedSizeListArray.from_arrays(out, size)
    return out


def _stat_type(value: np.ndarray) -> pa.DataType:
    kind = value.dtype.kind
    out = pa.bool_() if kind == "b" else pa.int64() if kind in "iu" else pa.float64()
    for _ in range(value.ndim):
        out = pa.list_(out)
    return out


def _stat_value(value: np.ndarray) -> Any:
    kind = value.dtype.kind
    cast = value.astype(bool if kind == "b" else np.int64 if kind in "iu" else np.float64)
    return cast.tolist()


def _video_names(info: DatasetInfo, key: str) -> Callable[[FileIndex], str]:
    """The mp4 path of each file index of camera ``key``."""
    return lambda i: info.video_file(key, i.chunk, i.file)


class EpisodeWriter:
    """Turns saved episodes into staged files and publish jobs, on one thread.

    Args:
        info: the dataset's info.json model (updated in place as episodes land).
        tasks: the task texts so far.
        stats: the dataset stats so far (None before the first episode).
        frames: total frames so far.
        starts: the file index each series starts at (``"data"``, ``"episodes"``,
            ``"videos/<key>"``).
    """

    def __init__(
        self,
        info: DatasetInfo,
        tasks: list[str],
        stats: DatasetStats | None,
        staging: Staging,
        publisher: Publisher,
        starts: Mapping[str, FileIndex],
    ) -> None:
        self.info = info
        self.tasks = list(tasks)
        self.task_index = {t: i for i, t in enumerate(self.tasks)}
        self.stats = stats
        self.staging = staging
        self.publisher = publisher
        self.schema = data_schema(info.features)
        chunks = info.chunks_size
        self.data = ParquetSeries(
            staging.files,
            lambda i: info.data_file(i.chunk, i.file),
            info.data_files_size_in_mb,
            chunks,
            starts["data"],
            group_per_append=True,
        )
        self.episodes = ParquetSeries(
            staging.files,
            lambda i: episodes_file(i.chunk, i.file),
            info.data_files_size_in_mb,
            chunks,
            starts["episodes"],
            group_per_append=False,
        )
        self.videos = {
            key: VideoSeries(
                staging.files,
                _video_names(info, key),
                info.video_files_size_in_mb,
                chunks,
                starts[f"videos/{key}"],
                name=key,
            )
            for key in info.video_keys
        }
        self._tasks_published = len(self.tasks)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="robostore-episode-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side
    def submit(self, buffer: EpisodeBuffer) -> Future[None]:
        """Queue a finished episode (waits while two are already queued).

        The future completes once the episode is durable in the journal (see
        :mod:`robostore.record.journal`); adding it to the files follows on this thread.
        """
        self.check()
        journaled: Future[None] = Future()
        self._queue.put((buffer, journaled))
        return journaled

    def join(self) -> None:
        """Wait until every submitted episode is staged and handed to the publisher."""
        self._queue.join()
        self.check()

    def stop(self) -> None:
        """Finish queued episodes and end the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def check(self) -> None:
        """Raise the error that stopped the writer, if any."""
        err = self._error
        if err is None:
            return
        if isinstance(err, RobostoreError):
            raise type(err)(str(err)) from err
        raise StoreError(f"writing a recorded episode failed: {type(err).__name__}: {err}") from err

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ------------------------------------------------------------------ worker side
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                buf, journaled = item
                if self._error is not None:
                    buf.abort()
                    journaled.set_exception(self._error)
                    continue
                try:
                    staged = self._stage(buf)
                except BaseException as exc:
                    journaled.set_exception(exc)
                    raise
                journaled.set_result(None)
                self.apply(staged)
            except BaseException as exc:  # noqa: BLE001 - surfaced by check() on the next call
                log.error("writing episode %s failed: %s", getattr(item[0], "episode_index", "?"), exc)
                self._error = exc
                item[0].abort()
            finally:
                self._queue.task_done()

    def _stage(self, buf: EpisodeBuffer) -> StagedEpisode:
        """Finish the episode's encoders, build its rows and stats, write it to the journal."""
        info = self.info
        n = buf.length
        segments = {key: enc.finish() for key, enc in buf.encoders.items()}
        pngs = {key: [f.result() for f in futures] for key, futures in buf.pngs.items()}
        for task in dict.fromkeys(buf.tasks):
            self._add_task(task)
        frame_index = np.arange(n, dtype=np.int64)
        start = info.total_frames
        languages = {key: v for key, v in buf.numeric.items() if info.features[key].is_language}
        values: dict[str, Any] = {key: np.stack(v) for key, v in buf.numeric.items() if key not in languages}
        values.update(languages)
        # lerobot takes timestamp stats from frame_index / fps in float64 and stores float32.
        values["timestamp"] = frame_index / info.fps
        values["frame_index"] = frame_index
        values["episode_index"] = np.full(n, buf.episode_index, dtype=np.int64)
        values["index"] = start + frame_index
        values["task_index"] = np.array([self.task_index[t] for t in buf.tasks], dtype=np.int64)
        stats = self._episode_stats(values, buf, n)
        stats_row = pa.table(
            {
                f"stats/{key}/{name}": pa.array([_stat_value(value)], type=_stat_type(value))
                for key, feature_stats in stats.items()
                for name, value in feature_stats.items()
            }
        )
        staged = StagedEpisode(
            buf.episode_index,
            start,
            self._data_table(values, pngs, n),
            stats_row,
            {self.task_index[t]: t for t in dict.fromkeys(buf.tasks)},
            segments,
        )
        journal.write(self.staging.journal, staged)
        crashpoint("episode_journaled")
        return staged

    def start_new_files(self) -> None:
        """Continue every series in a new file (the open ones must be published)."""
        for series in (self.data, self.episodes, *self.videos.values()):
            series.close_file()

    def _add_task(self, task: str) -> int:
        if task not in self.task_index:
            self.task_index[task] = len(self.tasks)
            self.tasks.append(task)
        return self.task_index[task]

    def apply(self, staged: StagedEpisode) -> None:
        """Add a journaled episode to the staged files and hand the change to the publisher.

        Runs on the writer thread, or on the caller's before any episode is submitted
        (``Recorder.resume`` publishing what a crashed recorder journaled).
        """
        info = self.info
        n = staged.length
        episode = staged.episode_index
        start = info.total_frames
        if (episode, staged.first_frame) != (info.total_episodes, start):
            raise RobostoreError(
                f"internal error: staged episode {episode} from frame {staged.first_frame} does not follow "
                f"{info.total_episodes} episodes / {start} frames"
            )
        table = staged.data
        ours = {old: self._add_task(text) for old, text in sorted(staged.tasks.items())}
        task_ids = table.column("task_index").to_numpy()
        if any(old != new for old, new in ours.items()):
            lookup = np.zeros(max(ours) + 1, dtype=np.int64)
            for old, new in ours.items():
                lookup[old] = new
            task_ids = lookup[task_ids]
            table = table.set_column(
                table.schema.get_field_index("task_index"), "task_index", pa.array(task_ids, pa.int64())
            )
        episode_tasks = [self.tasks[i] for i in dict.fromkeys(task_ids.tolist())]

        data_at = self.data.append(lambda _: table, n)
        row: dict[str, tuple[Any, pa.DataType]] = {
            "episode_index": (episode, pa.int64()),
            "tasks": (episode_tasks, pa.list_(pa.string())),
            "length": (n, pa.int64()),
            "data/chunk_index": (data_at.chunk, pa.int64()),
            "data/file_index": (data_at.file, pa.int64()),
            "dataset_from_index": (start, pa.int64()),
            "dataset_to_index": (start + n, pa.int64()),
        }
        for key, series in self.videos.items():
            at, t_from, t_to = series.append(staged.segments[key])
            row[video_column(key, "chunk_index")] = (at.chunk, pa.int64())
            row[video_column(key, "file_index")] = (at.file, pa.int64())
            row[video_column(key, "from_timestamp")] = (t_from, pa.float64())
            row[video_column(key, "to_timestamp")] = (t_to, pa.float64())

        def episode_row(at: FileIndex) -> pa.Table:
            out = pa.table({k: pa.array([v], type=t) for k, (v, t) in row.items()})
            for name in staged.stats.column_names:
                out = out.append_column(name, staged.stats.column(name))
            out = out.append_column("meta/episodes/chunk_index", pa.array([at.chunk], pa.int64()))
            return out.append_column("meta/episodes/file_index", pa.array([at.file], pa.int64()))

        self.episodes.append(episode_row, 1)

        self.stats = add_episode_stats(self.stats, staged.stats_dict())
        info.total_episodes += 1
        info.total_frames += n
        info.total_tasks = len(self.tasks)
        info.splits = {"train": f"0:{info.total_episodes}"}
        crashpoint("episode_staged")

        meta = {
            STATS_PATH: stats_json(self.stats),
            INFO_PATH: info_json(info),
        }
        if len(self.tasks) > self._tasks_published:
            meta[TASKS_PATH] = tasks_parquet(self.tasks)
            self._tasks_published = len(self.tasks)
        all_series = (self.data, self.episodes, *self.videos.values())
        versions = {s.last.path: s.last for s in all_series if s.last is not None}
        closed = [path for s in all_series for path in s.closed]
        for s in all_series:
            s.closed = []
        done = [staged.journaled] if staged.journaled is not None else []
        self.publisher.submit(PublishJob(versions, meta, info.total_episodes, delete=[*closed, *done]))

    def _data_table(self, values: dict[str, Any], pngs: dict[str, list[bytes]], n: int) -> pa.Table:
        columns = []
        for field in self.schema:
            feature = self.info.features[field.name]
            if feature.is_image:
                paths = pa.array([f"frame-{i:06d}.png" for i in range(n)], pa.string())
                columns.append(
                    pa.StructArray.from_arrays(
                        [pa.array(pngs[field.name], pa.binary()), paths], fields=list(IMAGE_TYPE)
                    )
                )
            elif feature.dtype == "string":
                columns.append(pa.array(values[field.name].tolist(), pa.string()))
            elif feature.is_language:
                columns.append(language.rows_array(values.get(field.name) or [None] * n, field.name))
            else:
                columns.append(numeric_column(values[field.name].astype(feature.dtype, copy=False), feature))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _episode_stats(self, values: dict[str, Any], buf: EpisodeBuffer, n: int) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for key, feature in self.info.features.items():
            if feature.dtype == "string" or feature.is_language:
                continue
            if feature.is_camera:
                out[key] = compute_stats(buf.samplers[key].sample(n), camera=True, depth=feature.is_depth)
            else:
                out[key] = compute_stats(values[key])
        return out
