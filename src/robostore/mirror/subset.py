"""A subset mirror: the chosen episodes of a dataset, written as a valid smaller dataset.

Episodes keep their order and are renumbered from 0; ``index``, ``episode_index``,
``task_index`` and ``dataset_from/to_index`` are rewritten; every data file and mp4
that holds a chosen episode becomes one output file holding only the chosen episodes
(data rows filtered, videos cut by stream copy, see :mod:`robostore.mirror.remux`),
numbered densely across chunks; the episodes table, tasks, stats and info.json are
recomputed. Per-episode statistics are kept from the source (they describe the same
frames), with ``index``/``episode_index``/``task_index`` shifted to the new numbers,
and the dataset statistics are re-aggregated with :func:`robostore.stats.aggregate_stats`.

Each output's token in the mirror manifest is a digest of the selection and the tokens
of the source files it is derived from, so re-running the same subset mirror only
lists, and a changed source file regenerates only the outputs that depend on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from robostore.errors import CorruptDataset, NotFound, SchemaError
from robostore.layout import (
    EPISODES_DIR,
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
    Limits,
    ProgressFn,
    Written,
    copy_file,
    sha256_of,
    write_chunks,
    write_local_file,
)
from robostore.mirror.plan import Target
from robostore.mirror.remux import Span, cut
from robostore.mirror.source import require_dataset, require_valid
from robostore.parquet import read_parquet, to_parquet_bytes
from robostore.schema.episodes import STATS_PREFIX, video_column
from robostore.stats import aggregate_stats, compute_stats, episode_stats_dicts
from robostore.store import FileInfo, Store

#: Features whose per-episode stats change when episodes and tasks are renumbered.
_RENUMBERED = ("index", "episode_index", "task_index")
_SHIFTED_STATS = ("min", "max", "mean", "q01", "q10", "q50", "q90", "q99")


@dataclass
class _Output:
    """One derived file: where it goes, which source file it comes from, which episodes."""

    path: str
    source: str
    video_key: str | None = None
    episodes: list[int] = field(default_factory=list)


class SubsetSource:
    """The chosen episodes of the dataset on ``store``, as a new dataset."""

    def __init__(
        self, store: Store, episodes: list[int], limits: Limits = DEFAULT_LIMITS, *, check: bool = True
    ) -> None:
        self.store = store
        self.selection = episodes
        self.limits = limits
        self.check_source = check

    # ------------------------------------------------------------------ layout
    def targets(self, listing: list[FileInfo]) -> list[Target]:
        require_dataset(self.store, listing)
        self.meta = meta = DatasetMeta.open(self.store)
        meta.require_v3("mirror a subset of")
        self.tokens = {f.path: f.token for f in listing}
        have = set(meta.episode_indices.tolist())
        missing = [e for e in self.selection if e not in have]
        if missing:
            raise SchemaError(
                f"{self.store.url}: episodes {missing[:10]} do not exist (the dataset has {meta.num_episodes} episodes)"
            )
        self.new_index = {old: new for new, old in enumerate(self.selection)}
        lengths = [int(meta.columns["length"][meta._row(e)]) for e in self.selection]
        starts = np.concatenate([[0], np.cumsum(lengths)])
        self.new_from = {old: int(starts[i]) for i, old in enumerate(self.selection)}
        self.new_to = {old: int(starts[i + 1]) for i, old in enumerate(self.selection)}
        self.total_frames = int(starts[-1])

        self.task_position = {t: i for i, t in enumerate(meta.tasks)}
        used_tasks = sorted({self._task(t) for e in self.selection for t in meta.episode(e).tasks})
        self.task_map = {old: new for new, old in enumerate(used_tasks)}
        self.new_tasks = [meta.tasks[old] for old in used_tasks]

        chunks = meta.info.chunks_size
        self.data_out: dict[str, _Output] = {}
        self.data_of: dict[int, tuple[int, int]] = {}
        by_source: dict[str, _Output] = {}
        for e in self.selection:
            src_path = meta.data_path(e)
            if src_path not in by_source:
                chunk, file = divmod(len(by_source), chunks)
                out = _Output(meta.info.data_file(chunk, file), src_path)
                by_source[src_path] = self.data_out[out.path] = out
            by_source[src_path].episodes.append(e)
            self.data_of[e] = _chunk_file(len(by_source) - 1, chunks)

        self.video_out: dict[str, _Output] = {}
        self.video_of: dict[tuple[int, str], tuple[int, int, float, float]] = {}
        for key in meta.video_keys:
            by_source = {}
            offsets: dict[str, float] = {}
            for e in self.selection:
                span = meta.video_span(e, key)
                if span.path not in by_source:
                    chunk, file = divmod(len(by_source), chunks)
                    out = _Output(meta.info.video_file(key, chunk, file), span.path, key)
                    by_source[span.path] = self.video_out[out.path] = out
                    offsets[span.path] = 0.0
                by_source[span.path].episodes.append(e)
                start = offsets[span.path]
                end = start + (span.end_timestamp - span.from_timestamp)
                offsets[span.path] = end
                self.video_of[(e, key)] = (*_chunk_file(len(by_source) - 1, chunks), start, end)

        meta_token = _digest(self.selection, {p: t for p, t in self.tokens.items() if p.startswith("meta/")})
        inputs = {o.source for o in (*self.data_out.values(), *self.video_out.values())}
        missing_inputs = sorted(p for p in inputs if p not in self.tokens)
        if missing_inputs:
            raise NotFound(
                f"{self.store.describe(missing_inputs[0])}: referenced by the episodes table but missing "
                f"({len(missing_inputs)} files missing)"
            )
        all_token = _digest(meta_token, {p: self.tokens[p] for p in sorted(inputs)})
        targets = [
            Target(o.path, _digest(meta_token, o.source, self.tokens[o.source]), None, None)
            for o in (*self.data_out.values(), *self.video_out.values())
        ]
        targets += [Target(p, all_token, None, None) for p in (episodes_file(0, 0), TASKS_PATH, STATS_PATH, INFO_PATH)]
        # Files outside the dataset layout (README.md, .gitattributes, ...) are copied as they are.
        targets += [
            Target(f.path, f.token, f.size, f.path)
            for f in listing
            if not f.path.startswith(("data/", "videos/", "meta/", ".robostore/"))
        ]
        return targets

    def _task(self, text: str) -> int:
        try:
            return self.task_position[text]
        except KeyError:
            raise CorruptDataset(
                f"{self.store.describe(TASKS_PATH)}: the episodes table names task {text!r}, which is not in it"
            ) from None

    def check(self, targets: list[Target]) -> None:
        # targets() already opened (and so checked) the source metadata; the files too:
        if self.check_source and targets:
            require_valid(self.store).refuse_misfiled("mirror --episodes")

    # ------------------------------------------------------------------ writing
    def write(self, target: Target, dst: Store, on_bytes: ProgressFn | None) -> Written:
        path = target.path
        if target.source is not None:
            return copy_file(
                self.store, target.source, dst, path, size=target.size, on_bytes=on_bytes, limits=self.limits
            )
        if path in self.data_out:
            return self._put(dst, path, to_parquet_bytes(self._data_table(self.data_out[path])), on_bytes)
        if path in self.video_out:
            return self._write_video(self.video_out[path], dst, on_bytes)
        if path == episodes_file(0, 0):
            return self._put(dst, path, episodes_parquet(self.episodes_table), on_bytes)
        if path == TASKS_PATH:
            return self._put(dst, path, tasks_parquet(self.new_tasks), on_bytes)
        if path == STATS_PATH:
            stats = aggregate_stats(episode_stats_dicts(self.episodes_table))
            return self._put(dst, path, stats_json(stats), on_bytes)
        if path == INFO_PATH:
            return self._put(dst, path, self._info_json(), on_bytes)
        raise SchemaError(f"{dst.describe(path)}: not a file of this subset")

    def hash(self, target: Target) -> Written:
        assert target.source is not None, "only plain copies are compared by checksum"
        return sha256_of(self.store, target.source, size=target.size, part_size=self.limits.part_size)

    def _put(self, dst: Store, path: str, data: bytes, on_bytes: ProgressFn | None) -> Written:
        return write_chunks(dst, path, [data], part_size=self.limits.part_size, on_bytes=on_bytes)

    def _data_table(self, out: _Output) -> pa.Table:
        table = read_parquet(self.store, out.source)
        where = self.store.describe(out.source)
        for column in ("episode_index", "index", "task_index"):
            if column not in table.column_names:
                raise CorruptDataset(f"{where}: data file lacks the column {column!r}")
        episode = table.column("episode_index").to_numpy()
        keep = np.isin(episode, out.episodes)
        for e in out.episodes:
            start, end = self.meta.frame_range(e)
            if int((episode == e).sum()) != end - start:
                raise CorruptDataset(
                    f"{where}: holds {int((episode == e).sum())} of episode {e}'s {end - start} rows; the episodes "
                    f"table does not match the data file (run `robostore validate {self.meta.url}`)"
                )
        table = table.filter(pa.array(keep))
        episode = episode[keep]
        index = table.column("index").to_numpy()
        shift = {e: self.new_from[e] - self.meta.frame_range(e)[0] for e in out.episodes}
        new_index = index + np.array([shift[e] for e in episode.tolist()], dtype=np.int64)
        try:
            new_task = [self.task_map[t] for t in table.column("task_index").to_pylist()]
        except KeyError as exc:
            raise CorruptDataset(f"{where}: task_index {exc.args[0]} is not a task of the chosen episodes") from exc
        replace = {
            "episode_index": [self.new_index[e] for e in episode.tolist()],
            "index": new_index,
            "task_index": new_task,
        }
        for name, values in replace.items():
            pos = table.schema.get_field_index(name)
            table = table.set_column(pos, table.schema.field(pos), pa.array(values, table.schema.field(pos).type))
        return table

    def _write_video(self, out: _Output, dst: Store, on_bytes: ProgressFn | None) -> Written:
        key = out.video_key
        assert key is not None
        spans = []
        for e in out.episodes:
            src_span = self.meta.video_span(e, key)
            spans.append(Span(src_span.from_timestamp, src_span.end_timestamp, self.video_of[(e, key)][2]))
        fd, local = tempfile.mkstemp(prefix="robostore-cut-", suffix=".mp4")
        os.close(fd)
        try:
            cut(self.store, out.source, spans, local)
            return write_local_file(dst, out.path, local, part_size=self.limits.part_size, on_bytes=on_bytes)
        finally:
            os.unlink(local)

    # ------------------------------------------------------------------ metadata
    @cached_property
    def episodes_table(self) -> pa.Table:
        """The source episodes rows of the chosen episodes, with every number rewritten."""
        meta = self.meta
        full = _read_all_episodes(self.store, meta.episode_files)
        rows = pc.index_in(pa.array(self.selection, pa.int64()), full.column("episode_index"))
        table = full.take(rows)
        new: dict[str, list[Any]] = {
            "episode_index": [self.new_index[e] for e in self.selection],
            "data/chunk_index": [self.data_of[e][0] for e in self.selection],
            "data/file_index": [self.data_of[e][1] for e in self.selection],
            "dataset_from_index": [self.new_from[e] for e in self.selection],
            "dataset_to_index": [self.new_to[e] for e in self.selection],
            "meta/episodes/chunk_index": [0] * len(self.selection),
            "meta/episodes/file_index": [0] * len(self.selection),
        }
        for key in meta.video_keys:
            for pos, name in enumerate(("chunk_index", "file_index", "from_timestamp", "to_timestamp")):
                new[video_column(key, name)] = [self.video_of[(e, key)][pos] for e in self.selection]
        shifts = {
            "index": [self.new_from[e] - meta.frame_range(e)[0] for e in self.selection],
            "episode_index": [self.new_index[e] - e for e in self.selection],
        }
        for feature, delta in shifts.items():
            new.update(_shifted_stats(table, feature, delta))
        new.update(self._task_stats(table))
        for name, values in new.items():
            if name in table.column_names:
                pos = table.schema.get_field_index(name)
                table = table.set_column(pos, table.schema.field(pos), pa.array(values, table.schema.field(pos).type))
        return table

    def _task_stats(self, table: pa.Table) -> dict[str, list[Any]]:
        """task_index stats: shifted where the episode's tasks move together, else recomputed."""
        prefix = f"{STATS_PREFIX}task_index/"
        if not any(c.startswith(prefix) for c in table.column_names):
            return {}
        deltas: list[int | None] = []
        for e in self.selection:
            olds = [self._task(t) for t in self.meta.episode(e).tasks]
            moves = {self.task_map[o] - o for o in olds}
            deltas.append(moves.pop() if len(moves) == 1 else None)
        out = _shifted_stats(table, "task_index", [d or 0 for d in deltas])
        redo = [i for i, d in enumerate(deltas) if d is None]
        if redo:
            values = self._new_task_values([self.selection[i] for i in redo])
            for i in redo:
                fresh = compute_stats(values[self.selection[i]])
                for name, column in out.items():
                    column[i] = np.asarray(fresh[name.rsplit("/", 1)[1]]).tolist()
        return out

    def _new_task_values(self, episodes: list[int]) -> dict[int, np.ndarray]:
        wanted = set(episodes)
        out: dict[int, list[int]] = {e: [] for e in episodes}
        for path in dict.fromkeys(self.meta.data_path(e) for e in episodes):
            table = read_parquet(self.store, path, columns=["episode_index", "task_index"])
            for e, t in zip(
                table.column("episode_index").to_pylist(), table.column("task_index").to_pylist(), strict=True
            ):
                if e in wanted:
                    out[e].append(self.task_map[t])
        return {e: np.asarray(v, dtype=np.int64) for e, v in out.items()}

    def _info_json(self) -> bytes:
        info = self.meta.info.model_copy(
            update={
                "total_episodes": len(self.selection),
                "total_frames": self.total_frames,
                "total_tasks": len(self.new_tasks),
                "splits": {"train": f"0:{len(self.selection)}"},
            }
        )
        return info_json(info)


def _chunk_file(position: int, chunks_size: int) -> tuple[int, int]:
    return divmod(position, chunks_size)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _read_all_episodes(store: Store, files: list[str]) -> pa.Table:
    tables = [read_parquet(store, p) for p in files]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as exc:
        raise CorruptDataset(
            f"{store.describe(EPISODES_DIR)}: the episodes files have incompatible schemas ({exc})"
        ) from exc
    return table


def _shifted_stats(table: pa.Table, feature: str, deltas: list[int]) -> dict[str, list[Any]]:
    """Per-episode stats of ``feature`` moved by ``deltas`` (std and count do not move)."""
    out: dict[str, list[Any]] = {}
    for stat in _SHIFTED_STATS:
        name = f"{STATS_PREFIX}{feature}/{stat}"
        if name in table.column_names:
            values = table.column(name).to_pylist()
            out[name] = [
                (np.asarray(v) + d).tolist() if v is not None else None for v, d in zip(values, deltas, strict=True)
            ]
    for stat in ("std", "count"):
        name = f"{STATS_PREFIX}{feature}/{stat}"
        if name in table.column_names:
            out[name] = table.column(name).to_pylist()
    return out
