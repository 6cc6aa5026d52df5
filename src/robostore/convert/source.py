"""A v2.1 dataset, seen as the v3.0 files it converts to (a :class:`robostore.mirror` source).

Every output is derived: a data file is the episode parquets it holds, one row group
per episode, re-typed to the schema robostore and lerobot write; an mp4 is its
episodes' mp4s joined by stream copy (:func:`robostore.mirror.remux.join`), each placed
at the sum of the durations before it, as lerobot's converter does; then the episodes
table, tasks, stats and info.json. Output tokens in the mirror manifest are digests of
the inputs and the size limits, so a second run writes only what is missing or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robostore import v21
from robostore.convert.rollover import roll
from robostore.errors import (
    CorruptDataset,
    NotFound,
    RobostoreError,
    SchemaError,
    VideoError,
)
from robostore.layout import (
    INFO_PATH,
    STATS_PATH,
    TASKS_PATH,
    episodes_file,
    episodes_parquet,
    info_json,
    stats_json,
    tasks_parquet,
)
from robostore.meta import DatasetMeta
from robostore.mirror.copy import (
    DEFAULT_LIMITS,
    Hasher,
    Limits,
    ProgressFn,
    Written,
    copy_file,
    sha256_of,
    write_chunks,
    write_local_file,
)
from robostore.mirror.mp4join import NotJoinable, media_seconds
from robostore.mirror.plan import Target
from robostore.mirror.remux import Piece, join
from robostore.mirror.source import require_dataset, require_valid
from robostore.parquet import parse_parquet
from robostore.schema import DatasetInfo, DatasetStats
from robostore.schema.arrow import data_schema
from robostore.schema.episodes import video_column
from robostore.schema.info import (
    CODEBASE_VERSION,
    DEFAULT_DATA_PATH,
    DEFAULT_VIDEO_PATH,
)
from robostore.store import FileInfo, Store

#: Footers and mp4 headers read at the same time.
HEADER_WORKERS = 8
#: Episode parquet files fetched at once while building a data file.
FETCH_BATCH = 32
_MB = 1024 * 1024
_FORMAT = "robostore-convert-v21-v30"


@dataclass(eq=False)
class _Output:
    """One output file and the episodes (in order) it holds."""

    path: str
    chunk_index: int
    file_index: int
    episodes: list[int]
    inputs: list[str]
    video_key: str | None = None


class ConvertSource:
    """The v3.0 files of the v2.1 dataset on ``store``."""

    def __init__(
        self, store: Store, data_mb: float, video_mb: float, limits: Limits = DEFAULT_LIMITS, *, check: bool = True
    ) -> None:
        if data_mb <= 0 or video_mb <= 0:
            raise SchemaError(f"file size limits must be positive, got data {data_mb} MB, video {video_mb} MB")
        self.store = store
        self.data_mb = data_mb
        self.video_mb = video_mb
        self.limits = limits
        self.check_source = check
        self._durations: dict[str, float] | None = None
        self._durations_lock = threading.Lock()

    # ------------------------------------------------------------------ plan
    def targets(self, listing: list[FileInfo]) -> list[Target]:
        require_dataset(self.store, listing)
        self.meta = meta = DatasetMeta.open(self.store)
        if not meta.info.per_episode_files:
            raise SchemaError(
                f"{self.store.describe(INFO_PATH)}: already a {meta.info.codebase_version} dataset; "
                "copy it with `robostore mirror` instead"
            )
        files = {f.path: f for f in listing}
        episodes = meta.episode_indices.tolist()
        chunks = meta.info.chunks_size
        data_inputs = [meta.data_path(e) for e in episodes]
        video_inputs = {key: [meta.video_span(e, key).path for e in episodes] for key in sorted(meta.video_keys)}
        needed = data_inputs + [p for paths in video_inputs.values() for p in paths]
        missing = [p for p in needed if p not in files]
        if missing:
            raise NotFound(
                f"{self.store.describe(missing[0])}: missing, but {v21.EPISODES_JSONL} lists its episode "
                f"({len(missing)} files missing)"
            )
        footers = self._footers(data_inputs)
        lengths = meta.columns["length"].tolist()
        for e, path, (_, rows), length in zip(episodes, data_inputs, footers, lengths, strict=True):
            if rows != length:
                raise CorruptDataset(
                    f"{self.store.describe(path)}: holds {rows} rows but {v21.EPISODES_JSONL} gives episode {e} "
                    f"{length} frames"
                )

        self.data_out: dict[str, _Output] = {}
        self.data_of: dict[int, tuple[int, int]] = {}
        for position, group in enumerate(roll([size / _MB for size, _ in footers], self.data_mb)):
            chunk, file = divmod(position, chunks)
            out = _Output(
                DEFAULT_DATA_PATH.format(chunk_index=chunk, file_index=file),
                chunk,
                file,
                [episodes[i] for i in group],
                [data_inputs[i] for i in group],
            )
            self.data_out[out.path] = out
            self.data_of.update(dict.fromkeys(out.episodes, (chunk, file)))
        self.video_out: dict[str, _Output] = {}
        self.video_of: dict[tuple[str, int], _Output] = {}
        for key, paths in video_inputs.items():
            for position, group in enumerate(roll([files[p].size / _MB for p in paths], self.video_mb)):
                chunk, file = divmod(position, chunks)
                out = _Output(
                    DEFAULT_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file),
                    chunk,
                    file,
                    [episodes[i] for i in group],
                    [paths[i] for i in group],
                    key,
                )
                self.video_out[out.path] = out
                self.video_of.update({(key, e): out for e in out.episodes})

        tokens = {p: f.token for p, f in files.items()}
        meta_token = _digest(
            _FORMAT, self.data_mb, self.video_mb, {p: t for p, t in tokens.items() if p.startswith("meta/")}
        )
        targets = [
            Target(
                o.path,
                _digest(meta_token, [tokens[p] for p in o.inputs]),
                None,
                None,
                sum(files[p].size for p in o.inputs),
            )
            for o in (*self.data_out.values(), *self.video_out.values())
        ]
        all_token = _digest(meta_token, [tokens[p] for p in needed])
        targets += [Target(p, all_token, None, None) for p in (episodes_file(0, 0), TASKS_PATH, STATS_PATH, INFO_PATH)]
        # Files outside the dataset layout (README.md, .gitattributes, ...) are copied as they are.
        targets += [
            Target(f.path, f.token, f.size, f.path)
            for f in listing
            if not f.path.startswith(("data/", "videos/", "meta/", "images/", ".robostore/"))
        ]
        return targets

    def check(self, targets: list[Target]) -> None:
        if not targets:
            return
        if self.check_source:
            require_valid(self.store)
        if any(t.path in self.video_out or t.path == episodes_file(0, 0) for t in targets):
            # Reads every mp4's header: a video shorter than its episode raises here,
            # before anything is written, with or without ``check``.
            self.durations()

    def _footers(self, paths: list[str]) -> list[tuple[int, int]]:
        """``(uncompressed bytes, rows)`` of each parquet, from its footer (lerobot's size measure)."""

        def footer(path: str) -> tuple[int, int]:
            try:
                with self.store.open(path) as fh:
                    md = pq.ParquetFile(fh).metadata
            except RobostoreError:
                raise
            except (pa.ArrowException, OSError, ValueError) as exc:
                raise CorruptDataset(f"{self.store.describe(path)}: not a readable parquet file ({exc})") from exc
            size = sum(
                md.row_group(g).column(c).total_uncompressed_size
                for g in range(md.num_row_groups)
                for c in range(md.num_columns)
            )
            return size, md.num_rows

        with ThreadPoolExecutor(max_workers=HEADER_WORKERS) as pool:
            return list(pool.map(footer, paths))

    def durations(self) -> dict[str, float]:
        """Seconds of video in every input mp4, as lerobot's converter measures them
        (FFmpeg's stream duration, else container duration; for FFmpeg's plain mp4 layout
        that is the ``mdhd`` duration, read without opening a decoder); read once."""
        with self._durations_lock:
            if self._durations is None:
                from robostore.video import VideoReader

                fps = self.meta.fps
                lengths = dict(
                    zip(self.meta.episode_indices.tolist(), self.meta.columns["length"].tolist(), strict=True)
                )
                jobs = [(p, e) for o in self.video_out.values() for p, e in zip(o.inputs, o.episodes, strict=True)]

                def duration(job: tuple[str, int]) -> float:
                    path, episode = job
                    where = self.store.describe(path)
                    seconds: float | None
                    with self.store.open(path) as fh:
                        try:  # the box headers and moov alone, for the plain layout FFmpeg writes
                            seconds = media_seconds(fh, where)
                        except (NotJoinable, struct.error):
                            fh.seek(0)
                            with VideoReader(fh, where, thread_type="NONE") as video:
                                seconds = video.duration
                    if seconds is None:
                        raise VideoError(f"{where}: the mp4 does not say how long it is")
                    if seconds + 0.5 / fps < lengths[episode] / fps:
                        raise VideoError(
                            f"{where}: lasts {seconds:.3f} s but episode {episode} has {lengths[episode]} frames "
                            f"({lengths[episode] / fps:.3f} s at {fps} fps)"
                        )
                    return seconds

                with ThreadPoolExecutor(max_workers=HEADER_WORKERS) as pool:
                    self._durations = dict(zip((p for p, _ in jobs), pool.map(duration, jobs), strict=True))
            return self._durations

    # ------------------------------------------------------------------ writing
    def write(self, target: Target, dst: Store, on_bytes: ProgressFn | None) -> Written:
        path = target.path
        if target.source is not None:
            return copy_file(
                self.store, target.source, dst, path, size=target.size, on_bytes=on_bytes, limits=self.limits
            )
        if path in self.data_out:
            return self._local_then_upload(
                dst, path, on_bytes, lambda local: self._write_data(self.data_out[path], local)
            )
        if path in self.video_out:
            out = self.video_out[path]
            pieces = [
                Piece(self.store, p, dest=start) for p, (start, _) in zip(out.inputs, self._spans(out), strict=True)
            ]
            return self._local_then_upload(dst, path, on_bytes, lambda local: join(pieces, local))
        if path == episodes_file(0, 0):
            return self._put(dst, path, episodes_parquet(self.episodes_table()), on_bytes)
        if path == TASKS_PATH:
            return self._put(dst, path, tasks_parquet(self.meta.tasks), on_bytes)
        if path == STATS_PATH:
            stats = self.meta.stats if self.meta.stats is not None else DatasetStats(features={})
            return self._put(dst, path, stats_json(stats), on_bytes)
        if path == INFO_PATH:
            return self._put(dst, path, info_json(self.info()), on_bytes)
        raise SchemaError(f"{dst.describe(path)}: not a file of this conversion")

    def hash(self, target: Target) -> Written:
        assert target.source is not None, "only plain copies are compared by checksum"
        return sha256_of(self.store, target.source, size=target.size, part_size=self.limits.part_size)

    def _put(self, dst: Store, path: str, data: bytes, on_bytes: ProgressFn | None) -> Written:
        return write_chunks(dst, path, [data], part_size=self.limits.part_size, on_bytes=on_bytes)

    def _local_then_upload(self, dst: Store, path: str, on_bytes: ProgressFn | None, make: Any) -> Written:
        """Build ``path`` in a local file with ``make(local)`` and hand it to the destination:
        on local disk it is built beside the target and linked in place (no second copy);
        elsewhere it is uploaded in parts."""
        local = dst.scratch_file(path)
        try:
            make(local)
            if dst.local_path(path) is None:  # streamed up in parts: bounded memory whatever the file size
                return write_local_file(dst, path, local, part_size=self.limits.part_size, on_bytes=on_bytes)
            hasher = Hasher.for_upload(dst.upload_checksum(file_size=os.path.getsize(local)))
            with open(local, "rb") as fh:
                while chunk := fh.read(self.limits.part_size):
                    hasher.update(chunk)
            dst.adopt_file(path, local)
            if on_bytes:
                on_bytes(hasher.size)
            return hasher.result()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)

    def _write_data(self, out: _Output, local: str) -> None:
        """The episodes' rows, one row group per episode, checked against the episodes table."""
        schema = data_schema(self.meta.features)
        with pq.ParquetWriter(local, schema, compression="snappy") as writer:
            for episode, path, raw in self._fetched(out.inputs, out.episodes):
                where = self.store.describe(path)
                table = parse_parquet(raw, where)
                missing = [n for n in schema.names if n not in table.column_names]
                if missing:
                    raise CorruptDataset(f"{where}: lacks the columns {missing} that info.json declares")
                try:
                    table = table.select(schema.names).cast(schema)
                except (pa.ArrowException, ValueError) as exc:
                    raise CorruptDataset(f"{where}: columns do not match info.json ({exc})") from exc
                lo, hi = self.meta.frame_range(episode)
                index = table.column("index").to_numpy()
                if (
                    not np.array_equal(index, np.arange(lo, hi))
                    or (table.column("episode_index").to_numpy() != episode).any()
                ):
                    raise CorruptDataset(
                        f"{where}: expected the rows of episode {episode} with index {lo}..{hi - 1} in order; "
                        "the file holds other rows"
                    )
                writer.write_table(table)

    def _fetched(self, paths: list[str], episodes: list[int]) -> Iterator[tuple[int, str, bytes]]:
        """``(episode, path, bytes)`` in order, fetched :data:`FETCH_BATCH` files at a time
        (one concurrent request each on remote backends; memory stays bounded)."""
        for start in range(0, len(paths), FETCH_BATCH):
            batch = paths[start : start + FETCH_BATCH]
            raw = self.store.read_many(batch)
            for episode, path in zip(episodes[start : start + FETCH_BATCH], batch, strict=True):
                yield episode, path, raw.pop(path)

    # ------------------------------------------------------------------ metadata
    def _spans(self, out: _Output) -> list[tuple[float, float]]:
        """``(from, to)`` seconds of each episode of a video output, as lerobot's converter computes them."""
        durations = self.durations()
        spans, at = [], 0.0
        for path in out.inputs:
            spans.append((at, at + durations[path]))
            at += durations[path]
        return spans

    def episodes_table(self) -> pa.Table:
        """The v3.0 episodes table, columns in the order lerobot's converter writes them."""
        meta = self.meta
        episodes = meta.episode_indices.tolist()
        cols = meta.columns
        columns: dict[str, Any] = {
            "episode_index": pa.array(episodes, pa.int64()),
            "data/chunk_index": pa.array([self.data_of[e][0] for e in episodes], pa.int64()),
            "data/file_index": pa.array([self.data_of[e][1] for e in episodes], pa.int64()),
            "dataset_from_index": pa.array(cols["dataset_from_index"], pa.int64()),
            "dataset_to_index": pa.array(cols["dataset_to_index"], pa.int64()),
        }
        for key in sorted(meta.video_keys):
            where: dict[int, tuple[_Output, float, float]] = {}
            for out in dict.fromkeys(self.video_of[(key, e)] for e in episodes):
                for e, (start, end) in zip(out.episodes, self._spans(out), strict=True):
                    where[e] = (out, start, end)
            columns[video_column(key, "chunk_index")] = pa.array(
                [where[e][0].chunk_index for e in episodes], pa.int64()
            )
            columns[video_column(key, "file_index")] = pa.array([where[e][0].file_index for e in episodes], pa.int64())
            columns[video_column(key, "from_timestamp")] = pa.array([where[e][1] for e in episodes], pa.float64())
            columns[video_column(key, "to_timestamp")] = pa.array([where[e][2] for e in episodes], pa.float64())
        columns["tasks"] = meta.episodes.column("tasks")
        columns["length"] = pa.array(cols["length"], pa.int64())
        stats = meta.episode_stats()
        for name in stats.column_names:
            if name != "episode_index":
                columns[name] = stats.column(name)
        columns["meta/episodes/chunk_index"] = pa.array([0] * len(episodes), pa.int64())
        columns["meta/episodes/file_index"] = pa.array([0] * len(episodes), pa.int64())
        return pa.table(columns)

    def info(self) -> DatasetInfo:
        """info.json of the v3.0 dataset: v2.1's, with v3.0 paths and this run's size limits."""
        raw = self.meta.info.to_json_dict()
        for gone in ("total_chunks", "total_videos"):
            raw.pop(gone, None)
        raw.update(
            codebase_version=CODEBASE_VERSION,
            data_files_size_in_mb=self.data_mb,
            video_files_size_in_mb=self.video_mb,
            data_path=DEFAULT_DATA_PATH,
            video_path=DEFAULT_VIDEO_PATH if raw.get("video_path") is not None else None,
        )
        return DatasetInfo.from_json(json.dumps(raw), self.store.describe(INFO_PATH))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
