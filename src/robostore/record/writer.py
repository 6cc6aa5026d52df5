"""The background episode writer: finished episodes -> staged files -> publish jobs.

``Recorder.save_episode`` hands the episode's buffer here and returns. On this
thread the video encoders are drained, the data rows, stats and the episodes-table
row are built, the open files in staging are extended (rolling over at the size
limits), and the changed files are snapshotted and handed to the publisher. Work
is local only; the queue in front of it is short, so a recorder that saves episodes
faster than they can be written waits here (bounded memory) rather than growing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
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
from robostore.record._crash import crashpoint
from robostore.record.episode import EpisodeBuffer
from robostore.record.files import FileIndex, ParquetSeries, VideoSeries
from robostore.record.staging import Publisher, PublishJob, Staging
from robostore.schema import DatasetInfo, DatasetStats, Feature
from robostore.schema.arrow import IMAGE_TYPE, data_schema, scalar_type
from robostore.schema.episodes import video_column
from robostore.stats import aggregate_stats, compute_stats

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
            staging.files, lambda i: info.data_file(i.chunk, i.file), info.data_files_size_in_mb, chunks, starts["data"]
        )
        self.episodes = ParquetSeries(
            staging.files, lambda i: episodes_file(i.chunk, i.file), info.data_files_size_in_mb, chunks, starts["episodes"]
        )
        self.videos = {
            key: VideoSeries(
                staging.files,
                _video_names(info, key),
                info.video_files_size_in_mb,
                chunks,
                starts[f"videos/{key}"],
            )
            for key in info.video_keys
        }
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="robostore-episode-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side
    def submit(self, buffer: EpisodeBuffer) -> None:
        """Queue a finished episode (waits while two are already queued)."""
        self.check()
        self._queue.put(buffer)

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
                if self._error is not None:
                    item.abort()
                    continue
                self._write(item)
            except BaseException as exc:  # noqa: BLE001 - surfaced by check() on the next call
                log.error("writing episode %s failed: %s", getattr(item, "episode_index", "?"), exc)
                self._error = exc
                item.abort()
            finally:
                self._queue.task_done()

    def _write(self, buf: EpisodeBuffer) -> None:
        info = self.info
        n = buf.length
        episode = buf.episode_index
        segments = {key: enc.finish() for key, enc in buf.encoders.items()}
        pngs = {key: [f.result() for f in futures] for key, futures in buf.pngs.items()}

        episode_tasks = list(dict.fromkeys(buf.tasks))
        new_tasks = [t for t in episode_tasks if t not in self.task_index]
        for task in new_tasks:
            self.task_index[task] = len(self.tasks)
            self.tasks.append(task)
        frame_index = np.arange(n, dtype=np.int64)
        start = info.total_frames
        values: dict[str, np.ndarray] = {key: np.stack(v) for key, v in buf.numeric.items()}
        # lerobot takes timestamp stats from frame_index / fps in float64 and stores float32.
        values["timestamp"] = frame_index / info.fps
        values["frame_index"] = frame_index
        values["episode_index"] = np.full(n, episode, dtype=np.int64)
        values["index"] = start + frame_index
        values["task_index"] = np.array([self.task_index[t] for t in buf.tasks], dtype=np.int64)

        table = self._data_table(values, pngs, n)
        stats = self._episode_stats(values, buf, n)

        changed: list[str] = []
        data_at, _ = self.data.append(lambda _: table, n)
        changed.append(self.data.path)
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
            at, t_from, t_to, _ = series.append(segments[key], key)
            changed.append(series.path)
            row[video_column(key, "chunk_index")] = (at.chunk, pa.int64())
            row[video_column(key, "file_index")] = (at.file, pa.int64())
            row[video_column(key, "from_timestamp")] = (t_from, pa.float64())
            row[video_column(key, "to_timestamp")] = (t_to, pa.float64())
        for key, feature_stats in stats.items():
            for name, value in feature_stats.items():
                row[f"stats/{key}/{name}"] = (_stat_value(value), _stat_type(value))

        def episode_row(at: FileIndex) -> pa.Table:
            full = {
                **row,
                "meta/episodes/chunk_index": (at.chunk, pa.int64()),
                "meta/episodes/file_index": (at.file, pa.int64()),
            }
            return pa.table({k: pa.array([v], type=t) for k, (v, t) in full.items()})

        self.episodes.append(episode_row, 1)
        changed.append(self.episodes.path)

        running = [self.stats.to_json_dict()] if self.stats is not None else []
        self.stats = aggregate_stats([*running, stats])
        info.total_episodes += 1
        info.total_frames += n
        info.total_tasks = len(self.tasks)
        info.splits = {"train": f"0:{info.total_episodes}"}
        crashpoint("episode_staged")

        meta = {
            STATS_PATH: stats_json(self.stats),
            INFO_PATH: info_json(info),
        }
        if new_tasks:
            meta[TASKS_PATH] = tasks_parquet(self.tasks)
        self.publisher.submit(PublishJob(self.staging.snapshot(changed), meta, info.total_episodes))

    def _data_table(self, values: dict[str, np.ndarray], pngs: dict[str, list[bytes]], n: int) -> pa.Table:
        columns = []
        for field in self.schema:
            feature = self.info.features[field.name]
            if feature.is_image:
                paths = pa.array([f"frame-{i:06d}.png" for i in range(n)], pa.string())
                columns.append(
                    pa.StructArray.from_arrays([pa.array(pngs[field.name], pa.binary()), paths], fields=list(IMAGE_TYPE))
                )
            elif feature.dtype == "string":
                columns.append(pa.array(values[field.name].tolist(), pa.string()))
            else:
                columns.append(numeric_column(values[field.name].astype(feature.dtype, copy=False), feature))
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _episode_stats(self, values: dict[str, np.ndarray], buf: EpisodeBuffer, n: int) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for key, feature in self.info.features.items():
            if feature.dtype == "string":
                continue
            if feature.is_camera:
                out[key] = compute_stats(buf.samplers[key].sample(n), camera=True)
            else:
                out[key] = compute_stats(values[key])
        return out
