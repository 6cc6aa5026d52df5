"""The tabular frame data of selected episodes: loaded once per process, indexed by position.

Positions run over the selected episodes' frames in episode order (as lerobot's
``episodes=`` subset does); a position's row in every column array is the position
itself, so a sample needs no lookup beyond "which episode holds it" (a binary search
over a few hundred numbers).

Loading reads only the data files of the selected episodes, only the row groups whose
``index`` range overlaps them, and only the non-camera columns. Files are fetched
concurrently (``Store.read_many``), unless the dataset stores images in parquet: then
each file is read in ranged requests so the PNG bytes stay on the backend.
:class:`ImageBytes` fetches those per row group, on demand, into a small LRU.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robostore.errors import CorruptDataset, NotFound, RobostoreError, SchemaError, warn_dataset
from robostore.meta import DatasetMeta
from robostore.schema import Feature, language
from robostore.schema.arrow import column_mismatch
from robostore.store import Store
from robostore.torch.process import PerProcessStore

_INDEX = "index"


@dataclass(frozen=True)
class EpisodeIndex:
    """The selected episodes and where their frames sit, from the episodes table alone."""

    episodes: np.ndarray  # int64 [E] episode_index, ascending
    rows: np.ndarray  # int64 [E] row of each episode in the episodes table (meta.columns)
    starts: np.ndarray  # int64 [E+1] first position of each episode; starts[-1] == len
    dataset_from: np.ndarray  # int64 [E] global index of each episode's first frame
    dataset_to: np.ndarray  # int64 [E] global index past each episode's last frame

    @classmethod
    def from_meta(cls, meta: DatasetMeta, episodes: Sequence[int] | None = None) -> EpisodeIndex:
        """Select ``episodes`` (all when None); unknown episodes raise :class:`SchemaError`."""
        cols = meta.columns
        all_eps = cols["episode_index"]
        if episodes is None:
            rows = np.arange(len(all_eps))
        else:
            wanted = np.unique(np.asarray([_as_int(e, meta.url) for e in episodes], dtype=np.int64))
            rows = np.searchsorted(all_eps, wanted)
            found = (rows < len(all_eps)) & (all_eps[np.minimum(rows, len(all_eps) - 1)] == wanted)
            if len(all_eps) == 0 or not found.all():
                missing = wanted[~found] if len(all_eps) else wanted
                raise SchemaError(
                    f"{meta.url}: episodes={[int(m) for m in missing]} do not exist in this dataset "
                    f"({len(all_eps)} episodes"
                    + (f", indices {int(all_eps[0])}..{int(all_eps[-1])})" if len(all_eps) else ")")
                )
        dataset_from = cols["dataset_from_index"][rows].astype(np.int64)
        dataset_to = cols["dataset_to_index"][rows].astype(np.int64)
        lengths = dataset_to - dataset_from
        if (lengths < 0).any():
            bad = int(all_eps[rows][lengths < 0][0])
            raise CorruptDataset(f"{meta.url}: episode {bad} has dataset_to_index < dataset_from_index")
        starts = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        return cls(all_eps[rows].astype(np.int64), rows.astype(np.int64), starts, dataset_from, dataset_to)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, position: int) -> tuple[int, int]:
        """``(episode slot, global frame index)`` of ``position`` (0 <= position < len)."""
        slot = int(np.searchsorted(self.starts, position, side="right")) - 1
        return slot, int(self.dataset_from[slot] + position - self.starts[slot])

    def position(self, slot: int, global_index: np.ndarray) -> np.ndarray:
        """Positions of global frame indices that lie inside episode ``slot``."""
        positions: np.ndarray = self.starts[slot] + (global_index - self.dataset_from[slot])
        return positions


@dataclass
class TabularData:
    """Column arrays of the selected frames (row == position) and where each row came from."""

    columns: dict[str, np.ndarray]
    files: list[str]  # data files, for ImageBytes
    file_of: np.ndarray  # int32 [N] index into ``files`` of each row
    file_row: np.ndarray  # int64 [N] row of each frame inside its file

    @classmethod
    def load(
        cls,
        meta: DatasetMeta,
        store: Store,
        index: EpisodeIndex,
        features: dict[str, Feature],
        *,
        ranged: bool | None = None,
    ) -> TabularData:
        """Read the data files of the selected episodes from ``store`` (see the module docstring).

        ``ranged`` reads only the selected row groups' columns in ranged requests instead of
        fetching whole files; by default it does so when the dataset stores images in parquet.
        """
        by_file: dict[str, list[int]] = collections.defaultdict(list)
        for slot, ep in enumerate(index.episodes.tolist()):
            by_file[meta.data_path(ep)].append(slot)
        files = list(by_file)
        names = [k for k, f in features.items() if not f.is_camera]
        if _INDEX not in names:
            raise CorruptDataset(f"{meta.url}: info.json has no 'index' feature")
        ranges = {
            p: [(int(index.dataset_from[s]), int(index.dataset_to[s])) for s in slots] for p, slots in by_file.items()
        }
        if meta.image_keys if ranged is None else ranged:
            with ThreadPoolExecutor(max_workers=min(8, max(1, len(files)))) as pool:
                tables = list(pool.map(lambda p: _read_ranged(store, p, ranges[p], names), files))
        else:
            raw = store.read_many(files)
            tables = [_read_selected(store, p, pa.BufferReader(raw[p]), ranges[p], names) for p in files]

        n = len(index)
        slots = range(len(index.episodes))
        parts: dict[str, dict[int, np.ndarray]] = {k: {} for k in names}  # column -> slot -> its rows
        file_of = np.empty(n, dtype=np.int32)
        file_row = np.empty(n, dtype=np.int64)

        def place(slot: int, file_no: int, rows: _Rows) -> bool:
            """Take episode ``slot``'s rows from ``rows``; False when they are not all there."""
            lo, hi = int(index.dataset_from[slot]), int(index.dataset_to[slot])
            take = rows.take(lo, hi)
            if take is None:
                return False
            # Only the selected episodes' rows: a file may also hold rows of an episode
            # whose writer stopped before committing it (and its task).
            tasks = rows.arrays["task_index"][take] if "task_index" in rows.arrays else None
            if tasks is not None and len(tasks) and (tasks.min() < 0 or tasks.max() >= len(meta.tasks)):
                bad = int(tasks[(tasks < 0) | (tasks >= len(meta.tasks))][0])
                raise CorruptDataset(
                    f"{rows.where}: task_index {bad} is not a task of meta/tasks.parquet ({len(meta.tasks)} tasks)"
                )
            for k in names:
                parts[k][slot] = rows.arrays[k][take]
            s0, s1 = int(index.starts[slot]), int(index.starts[slot + 1])
            file_of[s0:s1] = file_no
            file_row[s0:s1] = rows.rows_in_file[take]
            return True

        misfiled: list[tuple[int, str]] = []
        for file_no, (path, (table, rows_in_file)) in enumerate(zip(files, tables, strict=True)):
            rows = _Rows.of(table, rows_in_file, features, names, store.describe(path))
            misfiled += [(slot, path) for slot in by_file[path] if not place(slot, file_no, rows)]
        if misfiled:
            _place_misfiled(meta, store, index, misfiled, files, names, features, place)
        columns = {
            k: np.concatenate([v[slot] for slot in slots]) if slots else _empty(features[k]) for k, v in parts.items()
        }
        return cls(columns, files, file_of, file_row)


@dataclass
class _Rows:
    """One data file's selected rows as arrays, sorted by their ``index`` column."""

    where: str
    arrays: dict[str, np.ndarray]
    rows_in_file: np.ndarray
    order: np.ndarray
    sorted_index: np.ndarray

    @classmethod
    def of(
        cls, table: pa.Table, rows_in_file: np.ndarray, features: dict[str, Feature], names: list[str], where: str
    ) -> _Rows:
        arrays = {k: _to_numpy(table.column(k), features[k], where, k) for k in names}
        order = np.argsort(arrays[_INDEX], kind="stable")
        return cls(where, arrays, rows_in_file, order, arrays[_INDEX][order])

    def take(self, lo: int, hi: int) -> np.ndarray | None:
        """Positions of the rows with index ``lo..hi-1``, or None unless all are here."""
        a, b = np.searchsorted(self.sorted_index, [lo, hi])
        if b - a != hi - lo or not np.array_equal(self.sorted_index[a:b], np.arange(lo, hi)):
            return None
        return self.order[a:b]


def _place_misfiled(
    meta: DatasetMeta,
    store: Store,
    index: EpisodeIndex,
    misfiled: list[tuple[int, str]],
    files: list[str],
    names: list[str],
    features: dict[str, Feature],
    place: Callable[[int, int, _Rows], bool],
) -> None:
    """Find episodes whose rows are not in the data file the episodes table names, in
    neighbouring files (:meth:`DatasetMeta.misfiled_candidates`); warn, or raise
    :class:`CorruptDataset` when no neighbour holds them."""
    read: dict[str, _Rows | None] = {}
    wanted = [(int(index.dataset_from[slot]), int(index.dataset_to[slot])) for slot, _ in misfiled]
    for slot, path in misfiled:
        ep = int(index.episodes[slot])
        lo, hi = int(index.dataset_from[slot]), int(index.dataset_to[slot])
        for candidate in meta.misfiled_candidates(ep):
            if candidate not in read:
                try:
                    table, rows_in_file = _read_ranged(store, candidate, wanted, names)
                except NotFound:
                    read[candidate] = None
                    continue
                read[candidate] = _Rows.of(table, rows_in_file, features, names, store.describe(candidate))
            rows = read[candidate]
            if rows is None:
                continue
            if candidate not in files:
                files.append(candidate)
            if place(slot, files.index(candidate), rows):
                warn_dataset(
                    meta.url,
                    f"episode {ep} is filed under {path} in the episodes table but its rows are in "
                    f"{candidate} (lerobot's v2.1→v3.0 converter does this, lerobot issue #2401); "
                    "read from there",
                )
                break
        else:
            raise CorruptDataset(
                f"{store.describe(path)}: episode {ep} should hold frames {lo}..{hi - 1} "
                "(index column) but neither this file nor its neighbours hold them; the episodes "
                "table does not match the data files: re-copy the dataset"
            )


class ImageBytes:
    """PNG bytes of ``image`` features, read per row group on demand (LRU per process).

    Holds no open handles between calls, so it pickles and forks freely.
    """

    def __init__(self, store: Store | PerProcessStore, max_row_groups: int = 8) -> None:
        self.store = store if isinstance(store, PerProcessStore) else PerProcessStore(store)
        self.max_row_groups = max_row_groups
        self._groups: collections.OrderedDict[tuple[str, str, int], pa.StructArray] = collections.OrderedDict()
        self._bounds: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "max_row_groups": self.max_row_groups}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["store"], state["max_row_groups"])

    def get(self, path: str, key: str, row: int) -> bytes:
        """The image bytes of column ``key`` at ``row`` of data file ``path``."""
        store = self.store.get()
        where = store.describe(path)
        with self._lock:
            bounds = self._bounds.get(path)
        if bounds is None:
            with _parquet_errors(where), _parquet_source(store, path) as source:
                meta = pq.ParquetFile(source).metadata
            bounds = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
            np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], out=bounds[1:])
            with self._lock:
                self._bounds[path] = bounds
        group = int(np.searchsorted(bounds, row, side="right")) - 1
        cache_key = (path, key, group)
        with self._lock:
            column = self._groups.get(cache_key)
            if column is not None:
                self._groups.move_to_end(cache_key)
        if column is None:
            with _parquet_errors(where), _parquet_source(store, path) as source:
                table = pq.ParquetFile(source).read_row_group(group, columns=[key])
            column = table.column(key).combine_chunks()
            with self._lock:
                self._groups[cache_key] = column
                while len(self._groups) > self.max_row_groups:
                    self._groups.popitem(last=False)
        value = column[int(row - bounds[group])]
        data = value.get("bytes") if isinstance(value, pa.StructScalar) else value
        raw: bytes | None = data.as_py() if data is not None else None
        if not raw:
            raise CorruptDataset(f"{where}: image {key!r} at row {row} has no bytes")
        return raw


# ---------------------------------------------------------------------- helpers


def _as_int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: episodes= must hold episode indices (integers), got {value!r}") from exc


@contextlib.contextmanager
def _parquet_source(store: Store, path: str) -> Iterator[Any]:
    """A source pyarrow can read: the local path, or a ranged, block-cached file object."""
    full = store.local_path(path)
    if full is not None:
        if not os.path.isfile(full):
            raise NotFound(f"{store.describe(path)}: not found")
        yield full
    else:
        with store.open(path) as fh:
            yield fh


@contextlib.contextmanager
def _parquet_errors(where: str) -> Iterator[None]:
    try:
        yield
    except RobostoreError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataset(f"{where}: not a readable parquet file ({exc}); re-copy or repair it") from exc


def _read_ranged(
    store: Store, path: str, ranges: list[tuple[int, int]], names: list[str]
) -> tuple[pa.Table, np.ndarray]:
    with _parquet_errors(store.describe(path)), _parquet_source(store, path) as source:
        return _read_selected(store, path, source, ranges, names)


def _read_selected(
    store: Store, path: str, source: Any, ranges: list[tuple[int, int]], names: list[str]
) -> tuple[pa.Table, np.ndarray]:
    """Row groups of ``source`` overlapping ``ranges`` (by ``index``), columns ``names``.

    Returns the table and each of its rows' row number inside the file.
    """
    where = store.describe(path)
    with _parquet_errors(where):
        pf = pq.ParquetFile(source)
        schema = pf.schema_arrow
        missing = [n for n in names if n not in schema.names]
        if missing:
            raise CorruptDataset(f"{where}: the data file lacks the feature columns {missing}")
        meta = pf.metadata
        # Row-group statistics are per parquet leaf column: a struct (image) column before
        # ``index`` holds several leaves, so the Arrow field position is not the leaf's.
        index_col = next((i for i in range(len(pf.schema)) if pf.schema.column(i).path == _INDEX), None)
        groups, offsets, start = [], [], 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            stats = None if index_col is None else rg.column(index_col).statistics
            if stats is None or not stats.has_min_max or any(lo <= stats.max and stats.min < hi for lo, hi in ranges):
                groups.append(g)
                offsets.append(np.arange(start, start + rg.num_rows, dtype=np.int64))
            start += rg.num_rows
        table = pf.read_row_groups(groups, columns=names) if groups else pf.schema_arrow.empty_table().select(names)
    rows = np.concatenate(offsets) if offsets else np.empty(0, dtype=np.int64)
    return table, rows


def _to_numpy(column: pa.ChunkedArray, feature: Feature, where: str, key: str) -> np.ndarray:
    """One feature column as numpy ``[N, *shape]`` (``[N]`` for shape ``[1]``), in the feature's dtype."""
    why = column_mismatch(column.type, feature)
    if why:
        raise CorruptDataset(f"{where}: column {key!r} {why}")
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(array)
    if array.null_count:
        raise CorruptDataset(f"{where}: column {key!r} has empty (null) values")
    if feature.dtype == "string":
        return np.asarray(array.to_pylist(), dtype=object)
    if feature.is_language:
        return language.language_values(array, key)
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    try:
        values: np.ndarray = array.to_numpy(zero_copy_only=False).astype(np.dtype(feature.dtype), copy=False)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise CorruptDataset(f"{where}: column {key!r} cannot be read as {feature.dtype} ({exc})") from exc
    shape = tuple(feature.shape)
    if shape == (1,):
        shape = ()
    if values.size != n * int(np.prod(shape, dtype=np.int64)):
        raise CorruptDataset(
            f"{where}: column {key!r} holds {values.size // max(n, 1)} values per frame, info.json says shape {list(feature.shape)}"
        )
    return values.reshape((n, *shape))


def _empty(feature: Feature) -> np.ndarray:
    shape = () if tuple(feature.shape) == (1,) else tuple(feature.shape)
    return np.empty((0, *shape), dtype=object if feature.dtype in ("string", "language") else np.dtype(feature.dtype))
