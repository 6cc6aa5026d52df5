"""FrameCache (one cache location) and DatasetFrameCache (one dataset state in it).

The concerns live in their own modules: :mod:`.shard_io` reads and writes shard files,
:mod:`.fill` decodes missing shards, :mod:`.reports` builds ``cache info``,
:mod:`.layout` is the on-disk format, :mod:`.warm` fills ahead of training.
"""

from __future__ import annotations

import bisect
import collections
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from robostore.backends import open_store
from robostore.cache import evict as eviction
from robostore.cache.claims import Claims
from robostore.cache.fill import ShardFiller
from robostore.cache.fingerprint import dataset_fingerprint
from robostore.cache.layout import (
    COMPRESSIONS,
    DEFAULT_COMPRESSION,
    FORMAT_VERSION,
    ROOT_ATTR,
    ArrayLayout,
    array_prefix,
    choose_shard_frames,
    group_json,
    shard_key,
)
from robostore.cache.reports import CacheInfo, cache_info
from robostore.cache.shard_io import ShardFiles
from robostore.cache.stats import StatsRecorder
from robostore.cache.warm import WarmReport, warm
from robostore.errors import CorruptDataset, NotFound, RobostoreError, SchemaError
from robostore.forks import current_pid
from robostore.meta import DatasetMeta
from robostore.store import Store

if TYPE_CHECKING:
    import zarr


log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"


class FrameCache:
    """Decoded video frames of any number of datasets, in Zarr v3 arrays at ``url``.

    Args:
        url: where the cache lives: a local folder, or any fsspec URL (``s3://bucket/cache``)
            that several machines can share.
        storage_options: passed to the cache's fsspec filesystem.
        max_bytes: keep a local cache under this size, evicting the least recently
            used shards. Not available for remote caches (use the bucket's lifecycle rules).
        shard_frames: frames per shard for arrays this cache creates (default: about
            32 MiB of raw frames, a power of two in 16..256). Existing arrays keep theirs.
        compression: ``"none"`` (default: decoded video compresses ~1.07x losslessly, and
            uncompressed frames are read straight into the sample, see
            docs/frame_cache.md) or ``"lz4"`` (blosc-lz4, ~7% smaller, a copy more per
            read), for arrays this cache creates. Existing arrays keep theirs.

    The object is cheap, picklable (DataLoader workers rebuild it from the URL) and
    safe to share between threads and processes.
    """

    def __init__(
        self,
        url: str,
        storage_options: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
        *,
        shard_frames: int | None = None,
        compression: str = DEFAULT_COMPRESSION,
    ) -> None:
        self.url = str(url)
        self.storage_options = dict(storage_options or {})
        self.max_bytes = max_bytes
        self.shard_frames = shard_frames
        if compression not in COMPRESSIONS:
            raise SchemaError(
                f"frame cache {url}: compression must be one of {list(COMPRESSIONS)}, got {compression!r}"
            )
        self.compression = compression
        self.store: Store = open_store(self.url, self.storage_options)
        self.local_root: str | None = self.store.local_path()
        if max_bytes is not None:
            if max_bytes <= 0:
                raise SchemaError(f"frame cache {self.url}: max_bytes must be positive, got {max_bytes}")
            if self.local_root is None:
                raise RobostoreError(
                    f"frame cache {self.url}: max_bytes (eviction) works on local caches only; "
                    "limit a bucket with its lifecycle rules, or clear it with `robostore cache clear`"
                )
        if shard_frames is not None and not 1 <= shard_frames <= 4096:
            raise SchemaError(f"frame cache {self.url}: shard_frames must be in 1..4096, got {shard_frames}")
        self.stats = StatsRecorder(self.store)
        self.claims = Claims(os.path.join(self.local_root, CLAIMS_DIR) if self.local_root else None)
        self._lock = threading.Lock()
        self._root_checked = False
        self._size_known: int | None = None  # bytes of shards at the last scan, plus writes since

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "storage_options": self.storage_options,
            "max_bytes": self.max_bytes,
            "shard_frames": self.shard_frames,
            "compression": self.compression,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, **state)

    def __repr__(self) -> str:
        return f"FrameCache({self.url!r}, max_bytes={self.max_bytes})"

    # ------------------------------------------------------------------ datasets
    def for_dataset(
        self, dataset: DatasetMeta | str, storage_options: Mapping[str, Any] | None = None
    ) -> DatasetFrameCache:
        """The cache of one dataset in its current state (its fingerprint).

        ``dataset`` is a :class:`DatasetMeta` or a dataset URL. Costs a read of
        info.json and two listings (see :func:`~robostore.cache.fingerprint.dataset_fingerprint`).
        """
        meta = dataset if isinstance(dataset, DatasetMeta) else DatasetMeta.open(dataset, storage_options)
        return DatasetFrameCache(self, meta)

    def warm(
        self,
        dataset: DatasetMeta | str,
        episodes: Iterable[int] | None = None,
        workers: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        progress: bool = True,
    ) -> WarmReport:
        """Decode and store every frame of ``episodes`` (all by default) not cached yet.

        Runs ``workers`` processes (default: the CPU count), with a progress bar.
        """
        return warm(self.for_dataset(dataset, storage_options), episodes, workers, progress)

    # ------------------------------------------------------------------ maintenance
    def info(self) -> CacheInfo:
        """Size, coverage per dataset and video key, and hit/miss counters of all processes."""
        return cache_info(self.store, self.url, self.max_bytes)

    def clear(self) -> int:
        """Delete everything in the cache; returns the number of files deleted.

        Refuses to touch a location that holds files but is not a frame cache.
        """
        files = [f.path for f in self.store.list_info("")]
        if files and not self._is_cache():
            raise RobostoreError(
                f"{self.url} holds {len(files)} files but is not a robostore frame cache "
                "(no zarr.json with a robostore_frame_cache attribute); nothing deleted"
            )
        # The root marker last: an interrupted clear leaves a location still known as a cache.
        body, marker = [p for p in files if p != "zarr.json"], [p for p in files if p == "zarr.json"]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda p: self.store.delete(p, missing_ok=True), body))
        for path in marker:
            self.store.delete(path, missing_ok=True)
        self._root_checked = False
        with self._lock:
            self._size_known = None
        return len(files)

    def evict(self) -> int:
        """Enforce ``max_bytes`` now (it is also enforced as shards are written).

        Returns the number of shards deleted.
        """
        if self.max_bytes is None or self.local_root is None:
            return 0
        deleted, freed, left = eviction.evict(self.local_root, self.max_bytes)
        with self._lock:
            self._size_known = left
        if deleted:
            self.stats.add(evicted_shards=deleted, evicted_bytes=freed)
        return deleted

    # ------------------------------------------------------------------ internals
    def _is_cache(self) -> bool:
        try:
            node = json.loads(self.store.read("zarr.json"))
        except (NotFound, ValueError):
            return False
        return isinstance(node, dict) and ROOT_ATTR in node.get("attributes", {})

    def _ensure_root(self) -> None:
        if self._root_checked:
            return
        if not self.store.exists("zarr.json"):
            self.store.write("zarr.json", group_json({ROOT_ATTR: {"format": FORMAT_VERSION}}))
        elif not self._is_cache():
            raise RobostoreError(
                f"{self.url} has a zarr.json that is not a robostore frame cache; use another location"
            )
        self._root_checked = True

    def _wrote(self, nbytes: int) -> None:
        """Account a shard written; evict when the local cache went over ``max_bytes``."""
        if self.max_bytes is None or self.local_root is None:
            return
        with self._lock:
            if self._size_known is None:
                self._size_known = sum(f.size for f in eviction.shard_files(self.local_root))
            else:
                self._size_known += nbytes
            over = self._size_known > self.max_bytes
        if over:
            self.evict()


class DatasetFrameCache:
    """The cached frames of one dataset state: what readers call.

    Frames are addressed by video key and global frame ``index`` (the ``index``
    column, ``dataset_from_index + frame_index``). See the package docstring for the
    contract of :meth:`get` and :meth:`put`.
    """

    def __init__(self, cache: FrameCache, meta: DatasetMeta, fingerprint: str | None = None) -> None:
        self.cache = cache
        self.meta = meta
        self.fingerprint = fingerprint or dataset_fingerprint(meta)
        self._layouts: dict[str, ArrayLayout] = {}
        self._init_process_state()

    def _init_process_state(self) -> None:
        cache = self.cache
        self._pid = current_pid()
        self._shards = ShardFiles(
            cache.store,
            self.fingerprint,
            self.meta,
            cache.stats,
            ensure_root=cache._ensure_root,
            wrote=cache._wrote,
            touch_on_read=cache.max_bytes is not None,
        )
        self._filler = ShardFiller(self.meta, cache.claims, self._shards)

    def __getstate__(self) -> dict[str, Any]:
        return {"cache": self.cache, "meta": self.meta, "fingerprint": self.fingerprint, "layouts": self._layouts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.cache, self.meta, self.fingerprint = state["cache"], state["meta"], state["fingerprint"]
        self._layouts = state["layouts"]
        self._init_process_state()

    def __repr__(self) -> str:
        return f"DatasetFrameCache({self.meta.url!r} -> {self.cache.url!r}, fingerprint={self.fingerprint})"

    @property
    def video_keys(self) -> list[str]:
        return self.meta.video_keys

    # ------------------------------------------------------------------ layout
    def layout(self, video_key: str) -> ArrayLayout:
        """Shape and sharding of ``video_key``'s array (existing, or the one it will get)."""
        layout = self._layouts.get(video_key)
        if layout is not None:
            return layout
        if video_key not in self.meta.video_keys:
            raise SchemaError(
                f"{self.meta.url}: {video_key!r} is not a video feature (video keys: {self.meta.video_keys})"
            )
        path = f"{array_prefix(self.fingerprint, video_key)}/zarr.json"
        try:
            layout = ArrayLayout.from_metadata(json.loads(self.cache.store.read(path)), self.cache.store.describe(path))
        except NotFound:
            h, w, c = self.meta.features[video_key].frame_size
            frames = self.cache.shard_frames or choose_shard_frames(h * w * c)
            layout = ArrayLayout(self.meta.total_frames, h, w, c, frames, self.cache.compression)
        except ValueError as exc:
            raise CorruptDataset(f"{self.cache.store.describe(path)}: not JSON ({exc}); clear the cache") from exc
        self._layouts[video_key] = layout
        return layout

    def zarr_array(self, video_key: str) -> zarr.Array[Any]:
        """The cached frames of ``video_key`` as a read-only ``zarr.Array`` (needs zarr)."""
        import zarr

        zstore: Any = self.cache.local_root  # zarr opens a local folder itself
        if zstore is None:
            zstore = zarr.storage.FsspecStore.from_url(
                self.cache.url, storage_options=self.cache.storage_options, read_only=True
            )
        return zarr.open_array(zstore, path=array_prefix(self.fingerprint, video_key), mode="r")

    # ------------------------------------------------------------------ reading
    def get(
        self,
        video_key: str,
        indices: Sequence[int] | np.ndarray,
        *,
        fill: bool = True,
        channels_first: bool = False,
        out: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """uint8 ``[len(indices), H, W, C]`` frames at global frame ``indices``, or None.

        With ``channels_first`` the frames come as ``[len(indices), C, H, W]``, the
        layout the chunks store (no transposing: what torch readers ask for); ``out``
        (uint8 ``[len(indices), C, H, W]``, C-contiguous) then receives them directly
        and is returned. Any set of frames is served in one call: the frames of one
        shard are read together (one vectored read for chunks close together).

        All or nothing: frames come from the cache; with ``fill`` (the default) a shard
        that is missing, or whose chunks fail their checksum, is decoded whole from the
        dataset's videos, written, and served. None means "decode them yourself": a
        shard is missing and ``fill`` is off, another process is filling it right now,
        or decoding failed (the caller's own decode then reports the error).
        """
        self._check_process()
        layout = self.layout(video_key)
        # Python ints, not numpy: a query is one frame or a few, and numpy's per-call
        # overhead would cost a good part of serving a cached frame.
        idx = np.asarray(indices, dtype=np.int64).reshape(-1).tolist()
        if idx and (min(idx) < 0 or max(idx) >= layout.num_frames):
            raise SchemaError(
                f"{self.meta.url}: frame indices {min(idx)}..{max(idx)} out of range 0..{layout.num_frames - 1}"
            )
        if out is None:
            out = np.empty((len(idx), *layout.stored_shape), dtype=np.uint8)
        elif (
            not channels_first
            or out.dtype != np.uint8
            or out.shape != (len(idx), *layout.stored_shape)
            or not out.flags.c_contiguous
        ):
            raise SchemaError(
                f"{self.meta.url}: {video_key} frames are uint8 [{len(idx)}, {', '.join(map(str, layout.stored_shape))}] "
                f"channels first; the output is {out.dtype} {list(out.shape)}"
            )
        by_shard: dict[int, list[int]] = {}  # shard -> positions in out
        for position, i in enumerate(idx):
            by_shard.setdefault(i // layout.shard_frames, []).append(position)
        served = 0
        for shard, positions in by_shard.items():
            inner = [idx[p] - shard * layout.shard_frames for p in positions]
            frames = self._filler.recently_filled(video_key, shard)
            if frames is not None:
                served += len(positions)
            else:
                if self._shards.read(video_key, layout, shard, inner, out, positions):
                    served += len(positions)
                    continue
                frames = self._filler.fill(video_key, layout, shard) if fill else None
                if frames is None:
                    self.cache.stats.add(hits=served, misses=len(idx) - served)
                    return None
            if positions == list(range(positions[0], positions[-1] + 1)) and inner == list(
                range(inner[0], inner[-1] + 1)
            ):
                out[positions[0] : positions[-1] + 1] = frames[inner[0] : inner[-1] + 1]  # a run: one copy
            else:
                out[positions] = frames[inner]
        self.cache.stats.add(hits=served, misses=len(idx) - served)
        return out if channels_first else np.ascontiguousarray(out.transpose(0, 2, 3, 1))

    def has(self, video_key: str, shard: int) -> bool:
        """Whether ``shard`` of ``video_key`` is in the cache (one existence check)."""
        return self.cache.store.exists(shard_key(self.fingerprint, video_key, shard))

    def cached_shards(self, video_key: str) -> set[int]:
        """The shards of ``video_key`` present in the cache (one listing)."""
        prefix = f"{array_prefix(self.fingerprint, video_key)}/c"
        found = set()
        for f in self.cache.store.list_info(prefix):
            head, _, tail = f.path[len(prefix) + 1 :].partition("/")
            if tail == "0/0/0" and head.isdigit():
                found.add(int(head))
        return found

    # ------------------------------------------------------------------ writing
    def put(self, video_key: str, first_index: int, frames: np.ndarray, *, channels_first: bool = False) -> int:
        """Offer frames the caller decoded (uint8 [n, H, W, C], or [n, C, H, W] with
        ``channels_first``): global indices ``first_index ...``.

        Writes every shard that the run covers completely and that is not cached yet,
        whole and atomically; the frames of partly covered shards are not kept (those
        shards are filled by :meth:`get` or ``cache warm``). Returns the number of
        shards written. Streaming readers that decode whole episodes call this.
        """
        self._check_process()
        layout = self.layout(video_key)
        frames = np.asarray(frames)
        shape = layout.stored_shape if channels_first else layout.frame_shape
        if frames.dtype != np.uint8 or frames.shape[1:] != shape:
            raise SchemaError(
                f"{self.meta.url}: {video_key} frames must be uint8 [n, {', '.join(map(str, shape))}], "
                f"got {frames.dtype} {list(frames.shape)}"
            )
        if not channels_first:
            frames = frames.transpose(0, 3, 1, 2)
        stop = first_index + len(frames)
        if first_index < 0 or stop > layout.num_frames:
            raise SchemaError(
                f"{self.meta.url}: frames {first_index}..{stop - 1} out of range 0..{layout.num_frames - 1}"
            )
        written = 0
        first_shard = -(-first_index // layout.shard_frames)
        for shard in range(first_shard, layout.num_shards):
            start, end = layout.shard_range(shard)
            if end > stop:
                break
            if not self.has(video_key, shard) and self._shards.write(
                video_key, layout, shard, frames[start - first_index : end - first_index]
            ):
                written += 1
        return written

    def fill(self, video_key: str, shards: Iterable[int]) -> int:
        """Decode and write ``shards`` of ``video_key`` (``cache warm`` calls this).

        Returns the number written by this call (shards claimed by another process,
        or whose frames fail to decode, are skipped and logged).
        """
        self._check_process()
        layout = self.layout(video_key)
        return sum(self._filler.fill(video_key, layout, shard) is not None for shard in shards)

    def close(self) -> None:
        """Close the video readers this process opened for filling; flush the counters."""
        self._filler.close()
        self.cache.stats.flush()

    def files(self, tolerance_s: float = 1e-4) -> VideoFileFrames:
        """This cache seen by mp4 path and timestamps (what ``robostore.torch`` readers use)."""
        return VideoFileFrames(self, tolerance_s)

    # ------------------------------------------------------------------ internals
    def _check_process(self) -> None:
        if self._pid != current_pid():  # forked: readers, claims and caches are the parent's
            self._init_process_state()


class VideoFileFrames:
    """A :class:`DatasetFrameCache` addressed by mp4 path and timestamps in it.

    This is the ``frame_cache`` interface of ``robostore.torch`` readers
    (``get(video_path, timestamps)`` / ``put(video_path, timestamps, frames)``).
    Timestamps are mapped to global frame indices through the episodes table: the
    episode whose span in that file holds the time, then ``round((t - from) * fps)``.
    A timestamp that is not within ``tolerance_s`` of a frame time of an episode is a
    miss (the reader's decoder then handles it as it would without a cache).
    """

    def __init__(self, frames: DatasetFrameCache, tolerance_s: float = 1e-4) -> None:
        self.frames = frames
        self.tolerance_s = tolerance_s
        meta = frames.meta
        cols = meta.columns
        self._fps = meta.fps
        self._spans: dict[str, tuple[str, list[float], list[int], list[int]]] = {}
        by_path: dict[str, list[tuple[float, int, int, str]]] = collections.defaultdict(list)
        for key in meta.video_keys:
            for row, episode in enumerate(meta.episode_indices.tolist()):
                span = meta.video_span(episode, key)
                length = int(cols["dataset_to_index"][row] - cols["dataset_from_index"][row])
                by_path[span.path].append((span.from_timestamp, int(cols["dataset_from_index"][row]), length, key))
        for path, rows in by_path.items():
            rows.sort()
            self._spans[path] = (rows[0][3], [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        self._span_arrays = {
            path: (np.asarray(starts, np.float64), np.asarray(first, np.int64), np.asarray(lengths, np.int64))
            for path, (_, starts, first, lengths) in self._spans.items()
        }

    def __getstate__(self) -> dict[str, Any]:
        return {"frames": self.frames, "tolerance_s": self.tolerance_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["frames"], state["tolerance_s"])

    def indices(self, video_path: str, timestamps: Sequence[float]) -> tuple[str, np.ndarray] | None:
        """``(video_key, global frame indices)`` of timestamps in ``video_path``, or None."""
        spans = self._spans.get(video_path)
        if spans is None or len(timestamps) == 0:
            return None
        key, starts, first_index, lengths = spans
        tolerance, fps = self.tolerance_s, self._fps
        # Scalar arithmetic: a query holds one timestamp or a few (numpy's per-call
        # overhead would cost more than a cached frame's read).
        found = []
        for t in timestamps:
            t = float(t)
            row = bisect.bisect_right(starts, t + tolerance) - 1
            if row < 0:
                return None
            frame = round((t - starts[row]) * fps)
            if abs(starts[row] + frame / fps - t) >= tolerance or not 0 <= frame < lengths[row]:
                return None
            found.append(first_index[row] + frame)
        return key, np.array(found, dtype=np.int64)

    def _many_indices(self, video_path: str, timestamps: np.ndarray) -> tuple[str, np.ndarray] | None:
        """:meth:`indices` of many timestamps at once (float64 array), in numpy."""
        spans = self._spans.get(video_path)
        if spans is None or len(timestamps) == 0:
            return None
        starts, first_index, lengths = self._span_arrays[video_path]
        rows = np.searchsorted(starts, timestamps + self.tolerance_s, side="right") - 1
        if rows.min() < 0:
            return None
        frame = np.round((timestamps - starts[rows]) * self._fps)  # half to even, as round()
        if (
            (np.abs(starts[rows] + frame / self._fps - timestamps) >= self.tolerance_s).any()
            or (frame < 0).any()
            or (frame >= lengths[rows]).any()
        ):
            return None
        return spans[0], first_index[rows] + frame.astype(np.int64)

    def get(self, video_path: str, timestamps: Sequence[float]) -> np.ndarray | None:
        """uint8 [T, C, H, W] frames at ``timestamps`` of ``video_path`` (filled on a miss), or None."""
        found = self.indices(video_path, timestamps)
        if found is None:
            return None
        return self.frames.get(*found, channels_first=True)

    def get_many(self, queries: Sequence[tuple[str, Sequence[float]]], out: np.ndarray) -> bool:
        """The frames of several ``(video_path, timestamps)`` queries of one video key,
        in one cache read, written into ``out`` (uint8 [sum of T, C, H, W], queries in
        order); False (``out`` then holds nothing meaningful) when any is not served."""
        if not queries:
            return False
        lengths = [len(timestamps) for _, timestamps in queries]
        times = np.concatenate([np.asarray(timestamps, np.float64) for _, timestamps in queries])
        paths = [path for path, _ in queries]
        ends = np.cumsum(lengths)
        indices = np.empty(len(times), np.int64)
        key = None
        for path in dict.fromkeys(paths):  # each file's timestamps at once
            mine = np.concatenate(
                [np.arange(e - n, e) for p, n, e in zip(paths, lengths, ends, strict=True) if p == path]
            )
            found = self._many_indices(path, times[mine])
            if found is None or (key is not None and found[0] != key):
                return False
            key = found[0]
            indices[mine] = found[1]
        assert key is not None
        return self.frames.get(key, indices, channels_first=True, out=out) is not None

    def put(self, video_path: str, timestamps: Sequence[float], frames: np.ndarray) -> None:
        """Offer decoded frames (uint8 [T, C, H, W]); runs of consecutive frames covering
        whole shards are stored."""
        found = self.indices(video_path, timestamps)
        if found is None:
            return
        key, idx = found
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        for run in np.split(np.arange(len(idx)), breaks):
            self.frames.put(key, int(idx[run[0]]), frames[run], channels_first=True)
