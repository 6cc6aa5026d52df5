"""DatasetMeta: a dataset's ``meta/`` folder — info.json, episodes, tasks, stats.

Opening reads ``meta/`` only: it never lists ``data/`` or ``videos/``, and the episodes
table is read with column projection (the per-episode ``stats/...`` columns, the bulk of
the table, load only when :meth:`DatasetMeta.episode_stats` asks for them), so opening
stays fast for datasets of 100k episodes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from robostore import v21
from robostore.backends import open_store
from robostore.checks import meta_problems
from robostore.errors import CorruptDataset, NotFound, RobostoreError, SchemaError, warn_dataset
from robostore.layout import (
    EPISODES_DIR,
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    write_info,
    write_stats,
    write_tasks,
)
from robostore.parquet import read_parquet
from robostore.schema import (
    DatasetInfo,
    DatasetStats,
    Episode,
    Feature,
    VideoSpan,
    default_features,
    parse_model,
)
from robostore.schema.episodes import (
    REQUIRED_COLUMNS,
    STATS_PREFIX,
    VIDEO_COLUMNS,
    frames_end,
    video_column,
)
from robostore.schema.info import load_json_object
from robostore.store import Store

log = logging.getLogger(__name__)


class DatasetMeta:
    """The metadata of one dataset on one store.

    Use :meth:`open` for an existing dataset and :meth:`create` for a new one.
    """

    def __init__(
        self,
        store: Store,
        info: DatasetInfo,
        tasks: list[str],
        episodes: pa.Table,
        stats: DatasetStats | None,
        episode_files: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.info = info
        self.tasks = tasks
        self.episodes = episodes
        self.stats = stats
        self.episode_files = list(episode_files)
        self._check_episodes()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls, url: str | Store, storage_options: Mapping[str, Any] | None = None, *, check: bool = True
    ) -> DatasetMeta:
        """Read the metadata of the dataset at ``url``.

        info.json is the commit point of every writer: episodes rows (and tasks) beyond
        its ``total_episodes`` (``total_tasks``) were written by a writer that stopped
        before committing, and are left out.

        Raises :class:`NotFound` when there is no ``meta/info.json``,
        :class:`SchemaError` when it is malformed, :class:`CorruptDataset` when the
        episodes table, tasks or stats are unreadable or (with ``check``) inconsistent
        with info.json (see :mod:`robostore.checks`). Inconsistencies that change no
        value read are a :class:`~robostore.errors.DatasetWarning` instead (once per
        dataset and process).
        """
        store = open_store(url, storage_options)
        try:
            raw_info = store.read(INFO_PATH)
        except NotFound as exc:
            raise NotFound(
                f"{store.describe(INFO_PATH)}: no dataset here (meta/info.json is missing); "
                "check the URL, or create one with Recorder.create"
            ) from exc
        info = DatasetInfo.from_json(raw_info, store.describe(INFO_PATH))
        if info.per_episode_files:
            legacy = v21.read_meta(store, info)
            return cls._checked(cls(store, info, legacy.tasks, legacy.episodes, legacy.stats), check)
        episode_files = [p for p in store.list(EPISODES_DIR) if p.endswith(".parquet")]
        with ThreadPoolExecutor(max_workers=min(8, max(1, len(episode_files)))) as pool:
            tables = list(
                pool.map(
                    lambda p: read_parquet(store, p, columns=lambda name: not name.startswith(STATS_PREFIX)),
                    episode_files,
                )
            )
        episodes = _concat_sorted(tables, store.describe(EPISODES_DIR)) if tables else _empty_episodes(info)
        committed = pc.less(episodes.column("episode_index"), info.total_episodes)
        if not pc.all(committed).as_py():
            log.info(
                "%s: ignoring episode rows beyond total_episodes=%d (not committed)", store.url, info.total_episodes
            )
            episodes = episodes.filter(committed)
        tasks = _read_tasks(store)[: info.total_tasks] if store.exists(TASKS_PATH) or episodes.num_rows else []
        stats = _read_stats(store)
        return cls._checked(cls(store, info, tasks, episodes, stats, episode_files), check)

    @staticmethod
    def _checked(meta: DatasetMeta, check: bool) -> DatasetMeta:
        if check:
            problems = []
            for problem in meta_problems(meta):
                if problem.is_warning:
                    warn_dataset(meta.store.url, str(problem))
                else:
                    problems.append(problem)
            if problems:
                store = meta.store
                listed = "; ".join(f"{store.describe(p.path)}: {p.message}" for p in problems[:5])
                more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
                raise CorruptDataset(
                    f"inconsistent metadata: {listed}{more}; run `robostore validate {store.url}` for every problem"
                )
        return meta

    @classmethod
    def create(
        cls,
        url: str | Store,
        fps: int,
        features: Mapping[str, Feature | Mapping[str, Any]],
        robot_type: str | None = None,
        use_videos: bool = True,
        chunks_size: int | None = None,
        data_files_size_in_mb: float | None = None,
        video_files_size_in_mb: float | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> DatasetMeta:
        """Start an empty dataset at ``url`` by writing its ``meta/info.json``.

        ``features`` are the user's features; the five default ones (timestamp,
        frame_index, episode_index, index, task_index) are added. With
        ``use_videos=False``, ``video`` features are stored as ``image`` (PNG in
        parquet). Refuses to overwrite an existing dataset.
        """
        store = open_store(url, storage_options)
        if store.exists(INFO_PATH):
            raise SchemaError(
                f"{store.describe(INFO_PATH)}: a dataset already exists here; open it, resume "
                "recording with Recorder.resume, or choose another URL"
            )
        feats: dict[str, Feature] = {}
        for key, value in features.items():
            feature = value if isinstance(value, Feature) else parse_model(Feature, dict(value), f"feature {key!r}")
            if feature.is_camera:
                # lerobot keeps `image` features as images; use_videos=False turns videos into images.
                feature = _camera_feature(feature, "video" if use_videos and feature.is_video else "image", fps)
            feats[key] = feature
        for key, feature in default_features().items():
            feats.setdefault(key, feature)
        options: dict[str, Any] = {"fps": fps, "robot_type": robot_type, "features": feats}
        for name, setting in (
            ("chunks_size", chunks_size),
            ("data_files_size_in_mb", data_files_size_in_mb),
            ("video_files_size_in_mb", video_files_size_in_mb),
        ):
            if setting is not None:
                options[name] = setting
        if not any(f.is_video for f in feats.values()):
            options["video_path"] = None
        info = parse_model(DatasetInfo, options, store.describe(INFO_PATH))
        write_info(store, info)
        store.commit("Create dataset")
        return cls(store, info, [], _empty_episodes(info), None)

    def require_v3(self, doing: str) -> None:
        """Raise :class:`SchemaError` for a v2.1 dataset: robostore reads those, but
        ``doing`` (e.g. "resume recording into") needs the v3.0 layout."""
        if self.info.per_episode_files:
            raise SchemaError(
                f"{self.store.describe(INFO_PATH)}: a LeRobot {self.info.codebase_version} dataset; robostore "
                f"reads it but cannot {doing} it. Convert it first: robostore convert {self.url} DESTINATION"
            )

    # ------------------------------------------------------------------ views
    @property
    def url(self) -> str:
        return self.store.url

    @property
    def fps(self) -> int:
        return self.info.fps

    @property
    def features(self) -> dict[str, Feature]:
        return self.info.features

    @property
    def video_keys(self) -> list[str]:
        return self.info.video_keys

    @property
    def image_keys(self) -> list[str]:
        return self.info.image_keys

    @property
    def camera_keys(self) -> list[str]:
        return self.info.camera_keys

    @property
    def depth_keys(self) -> list[str]:
        """Depth-map cameras (values in millimetres, one channel)."""
        return self.info.depth_keys

    @property
    def rgb_camera_keys(self) -> list[str]:
        """Cameras holding RGB frames: all but depth maps."""
        return self.info.rgb_camera_keys

    @property
    def language_keys(self) -> list[str]:
        """lerobot 0.6 language annotation columns."""
        return self.info.language_keys

    @property
    def total_episodes(self) -> int:
        return self.info.total_episodes

    @property
    def total_frames(self) -> int:
        return self.info.total_frames

    @property
    def num_episodes(self) -> int:
        """Rows of the episodes table (equals ``total_episodes`` in a valid dataset)."""
        return int(self.episodes.num_rows)

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """The scalar columns of the episodes table as numpy arrays (fast lookups)."""
        out = {}
        for name in self.episodes.column_names:
            column = self.episodes.column(name)
            if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
                out[name] = column.to_numpy()
        return out

    @property
    def episode_indices(self) -> np.ndarray:
        return self.columns["episode_index"]

    def _row(self, episode_index: int) -> int:
        indices = self.episode_indices
        pos = int(np.searchsorted(indices, episode_index))
        if pos >= len(indices) or indices[pos] != episode_index:
            raise SchemaError(
                f"{self.url}: episode {episode_index} does not exist "
                f"(the dataset has {len(indices)} episodes"
                + (f", indices {int(indices[0])}..{int(indices[-1])})" if len(indices) else ")")
            )
        return pos

    def episode(self, episode_index: int) -> Episode:
        """Everything the episodes table says about one episode."""
        row = self._row(episode_index)
        cols = self.columns
        videos = {key: self.video_span(episode_index, key) for key in self.video_keys}
        return Episode(
            episode_index=episode_index,
            tasks=list(self.episodes.column("tasks")[row].as_py() or []),
            length=int(cols["length"][row]),
            data_chunk_index=int(cols["data/chunk_index"][row]),
            data_file_index=int(cols["data/file_index"][row]),
            data_path=self.data_path(episode_index),
            dataset_from_index=int(cols["dataset_from_index"][row]),
            dataset_to_index=int(cols["dataset_to_index"][row]),
            videos=videos,
        )

    def frame_range(self, episode_index: int) -> tuple[int, int]:
        """Global ``[from, to)`` frame indices of an episode."""
        row = self._row(episode_index)
        return int(self.columns["dataset_from_index"][row]), int(self.columns["dataset_to_index"][row])

    def data_path(self, episode_index: int) -> str:
        """The data parquet file holding an episode's frames."""
        row = self._row(episode_index)
        cols = self.columns
        return self.info.data_file(int(cols["data/chunk_index"][row]), int(cols["data/file_index"][row]))

    def misfiled_candidates(self, episode_index: int) -> list[str]:
        """Data files that may hold an episode whose rows are not in :meth:`data_path`.

        lerobot's v2.1→v3.0 converter files the first episode of each new data file under
        the previous file (lerobot issue #2401). The rows then sit in a neighbouring file:
        the next file the episodes table names, the next file by number (same chunk, or
        the first of the next chunk), or the previous one. Nothing is listed or read here.
        """
        row = self._row(episode_index)
        cols = self.columns
        chunks, files = cols["data/chunk_index"], cols["data/file_index"]
        chunk, file = int(chunks[row]), int(files[row])
        pairs = [(chunk, file + 1), (chunk + 1, 0)]
        later = np.nonzero((chunks[row:] != chunk) | (files[row:] != file))[0]
        if len(later):
            pairs.insert(0, (int(chunks[row + later[0]]), int(files[row + later[0]])))
        if file > 0:
            pairs.append((chunk, file - 1))
        here = self.data_path(episode_index)
        out: list[str] = []
        for c, f in pairs:
            try:
                path = self.info.data_file(c, f)
            except SchemaError:
                continue
            if path != here and path not in out:
                out.append(path)
        return out

    def video_span(self, episode_index: int, video_key: str) -> VideoSpan:
        """The mp4 of ``video_key`` holding an episode, and its from/to timestamps in it."""
        if video_key not in self.video_keys:
            raise SchemaError(f"{self.url}: {video_key!r} is not a video feature (video keys: {self.video_keys})")
        row = self._row(episode_index)
        cols = self.columns
        chunk, file = (int(cols[video_column(video_key, f)][row]) for f in ("chunk_index", "file_index"))
        start = float(cols[video_column(video_key, "from_timestamp")][row])
        end = float(cols[video_column(video_key, "to_timestamp")][row])
        return VideoSpan(
            path=self.info.video_file(video_key, chunk, file),
            chunk_index=chunk,
            file_index=file,
            from_timestamp=start,
            to_timestamp=end,
            end_timestamp=frames_end(start, end, int(cols["length"][row]), self.fps),
        )

    def data_files(self) -> list[str]:
        """Every data file the episodes table refers to, in order."""
        cols = self.columns
        pairs = zip(cols["data/chunk_index"].tolist(), cols["data/file_index"].tolist(), strict=True)
        return [self.info.data_file(c, f) for c, f in dict.fromkeys(pairs)]

    def video_files(self) -> list[str]:
        """Every mp4 the episodes table refers to, camera by camera."""
        out: list[str] = []
        cols = self.columns
        for key in self.video_keys:
            pairs = zip(
                cols[video_column(key, "chunk_index")].tolist(),
                cols[video_column(key, "file_index")].tolist(),
                strict=True,
            )
            out.extend(self.info.video_file(key, c, f) for c, f in dict.fromkeys(pairs))
        return out

    def task(self, task_index: int) -> str:
        """The text of a task."""
        if not 0 <= task_index < len(self.tasks):
            raise CorruptDataset(
                f"{self.store.describe(TASKS_PATH)}: task_index {task_index} is out of range ({len(self.tasks)} tasks)"
            )
        return self.tasks[task_index]

    def episode_stats(self) -> pa.Table:
        """The per-episode ``stats/...`` columns (read on demand), with episode_index."""
        if self.info.per_episode_files:
            return v21.episode_stats_table(self.store, self.episode_indices.tolist())
        tables = [
            read_parquet(self.store, p, columns=lambda n: n == "episode_index" or n.startswith(STATS_PREFIX))
            for p in self.episode_files
        ]
        if not tables:  # no episodes file yet (or resume's repair just removed the only one)
            return pa.table({"episode_index": pa.array([], pa.int64())})
        table = _concat_sorted(tables, self.store.describe(EPISODES_DIR))
        return table.filter(pc.less(table.column("episode_index"), self.info.total_episodes))

    # ------------------------------------------------------------------ writing
    def write_info(self) -> None:
        """Write ``meta/info.json`` (the last step of every commit)."""
        write_info(self.store, self.info)

    def write_tasks(self) -> None:
        """Write ``meta/tasks.parquet`` as lerobot does (task text as the pandas index)."""
        write_tasks(self.store, self.tasks)

    def write_stats(self) -> None:
        """Write ``meta/stats.json``."""
        if self.stats is not None:
            write_stats(self.store, self.stats)

    # ------------------------------------------------------------------ checks
    def _check_episodes(self) -> None:
        where = self.store.describe(EPISODES_DIR)
        names = set(self.episodes.column_names)
        needed = list(REQUIRED_COLUMNS) + [video_column(k, f) for k in self.video_keys for f in VIDEO_COLUMNS]
        missing = [c for c in needed if c not in names]
        if missing:
            raise CorruptDataset(f"{where}: the episodes table lacks the columns {missing}")
        for name in needed:
            if name != "tasks" and self.episodes.column(name).null_count:
                raise CorruptDataset(f"{where}: column {name!r} has empty (null) values")
        indices = self.columns["episode_index"]
        if len(indices) and (np.diff(indices) == 0).any():
            dup = int(indices[1:][np.diff(indices) == 0][0])
            raise CorruptDataset(f"{where}: episode {dup} appears more than once in the episodes table")


def _camera_feature(feature: Feature, dtype: str, fps: int) -> Feature:
    height, width, channels = feature.shape
    data = feature.model_dump()
    data.update(dtype=dtype, names=feature.names or ["height", "width", "channels"])
    if dtype == "video":
        info = {
            "video.height": height,
            "video.width": width,
            "video.codec": "av1",
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": channels,
            "has_audio": False,
        }
        data["info"] = {**info, **(feature.info or {})}
    return Feature.model_validate(data)


def _empty_episodes(info: DatasetInfo) -> pa.Table:
    fields = [
        ("episode_index", pa.int64()),
        ("tasks", pa.list_(pa.string())),
        ("length", pa.int64()),
        ("data/chunk_index", pa.int64()),
        ("data/file_index", pa.int64()),
        ("dataset_from_index", pa.int64()),
        ("dataset_to_index", pa.int64()),
    ]
    for key in info.video_keys:
        fields += [
            (video_column(key, "chunk_index"), pa.int64()),
            (video_column(key, "file_index"), pa.int64()),
            (video_column(key, "from_timestamp"), pa.float64()),
            (video_column(key, "to_timestamp"), pa.float64()),
        ]
    return pa.schema(fields).empty_table()


def _concat_sorted(tables: list[pa.Table], where: str) -> pa.Table:
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise CorruptDataset(f"{where}: the episodes files have incompatible schemas ({exc})") from exc
    if "episode_index" not in table.column_names:
        raise CorruptDataset(f"{where}: the episodes table has no episode_index column")
    if not pa.types.is_integer(table.column("episode_index").type):
        raise CorruptDataset(f"{where}: episode_index is {table.column('episode_index').type}, not an integer")
    return table.take(pc.sort_indices(table, [("episode_index", "ascending")]))


def _read_tasks(store: Store) -> list[str]:
    where = store.describe(TASKS_PATH)
    try:
        table = read_parquet(store, TASKS_PATH)
    except NotFound as exc:
        raise CorruptDataset(f"{where}: missing, but the dataset has episodes") from exc
    text_column = next((c for c in ("__index_level_0__", "task") if c in table.column_names), None)
    if "task_index" not in table.column_names or text_column is None:
        raise CorruptDataset(f"{where}: expected columns task_index and the task text, got {table.column_names}")
    index = table.column("task_index").to_pylist()
    text = table.column(text_column).to_pylist()
    if sorted(index) != list(range(len(index))):
        raise CorruptDataset(f"{where}: task_index values are not 0..{len(index) - 1}")
    tasks = [""] * len(index)
    for i, t in zip(index, text, strict=True):
        if not isinstance(t, str):
            raise CorruptDataset(f"{where}: task {i} has no text")
        tasks[i] = t
    return tasks


def _read_stats(store: Store) -> DatasetStats | None:
    where = store.describe(STATS_PATH)
    try:
        raw = store.read(STATS_PATH)
    except NotFound:
        return None
    parsed = load_json_object(raw, where, "a stats.json")
    try:
        return DatasetStats.from_raw(parsed)
    except RobostoreError:
        raise
    except ValueError as exc:
        raise SchemaError(f"{where}: {exc}") from exc
