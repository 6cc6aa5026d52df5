"""Shard files of one dataset state in a frame cache: reading chunks (with a per-process
cache of shard indexes and one vectored read per run of chunks) and writing whole
shards and the arrays' metadata. Bytes move through the cache's Store only
(:meth:`~robostore.store.Store.read_into`, :meth:`~robostore.store.Store.write_parts`).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from robostore.cache import evict as eviction
from robostore.cache.layout import (
    CHECKSUM_BYTES,
    ROOT_ATTR,
    ArrayLayout,
    ShardIndex,
    array_prefix,
    check_chunk,
    decode_chunk,
    encode_shard,
    group_json,
    parse_index,
    shard_key,
)
from robostore.cache.stats import StatsRecorder
from robostore.errors import CorruptDataset, NotFound, RobostoreError, StoreError
from robostore.meta import DatasetMeta
from robostore.store import Store

log = logging.getLogger(__name__)

_INDEX_CACHE_SIZE = 2048
_MAX_RUN = 256
_MAX_GAP = 256 << 10  # chunks this close share one read (the bytes between are read and dropped)


class ShardFiles:
    """The shards of one dataset state (``fingerprint``) in the cache's ``store``.

    Args:
        store, fingerprint, meta: where the shards are, and the dataset they hold.
        stats: the cache's counters (filled and corrupt shards).
        ensure_root: called before the first write (marks the location as a cache).
        wrote: told the bytes of every shard written (eviction accounting).
        touch_on_read: mark shards as used when read (a local cache with ``max_bytes``).

    One object per process (it holds the index cache and the read buffers).
    """

    def __init__(
        self,
        store: Store,
        fingerprint: str,
        meta: DatasetMeta,
        stats: StatsRecorder,
        ensure_root: Callable[[], None],
        wrote: Callable[[int], None],
        touch_on_read: bool,
    ) -> None:
        self.store = store
        self.fingerprint = fingerprint
        self.meta = meta
        self.stats = stats
        self.ensure_root = ensure_root
        self.wrote = wrote
        self.touch_on_read = touch_on_read
        self._lock = threading.Lock()
        self._index_cache: collections.OrderedDict[str, ShardIndex] = collections.OrderedDict()
        self._touched: dict[str, float] = {}
        self._scratch = threading.local()  # per-thread read buffer
        self._arrays_written: set[str] = set()
        self._writable = True

    # ------------------------------------------------------------------ reading
    def index(self, path: str, layout: ArrayLayout) -> ShardIndex | None:
        with self._lock:
            index = self._index_cache.get(path)
            if index is not None:
                self._index_cache.move_to_end(path)
                return index
        try:
            raw = self._read_range(path, 0, layout.index_nbytes)
        except (NotFound, FileNotFoundError):
            return None
        index = parse_index(layout, raw, self.store.describe(path))
        self.remember_index(path, index)
        return index

    def remember_index(self, path: str, index: ShardIndex) -> None:
        with self._lock:
            self._index_cache[path] = index
            while len(self._index_cache) > _INDEX_CACHE_SIZE:
                self._index_cache.popitem(last=False)

    def forget_index(self, path: str) -> None:
        """Drop what this process remembers of a shard (it is gone, or is being rewritten)."""
        with self._lock:
            self._index_cache.pop(path, None)

    def read(
        self, video_key: str, layout: ArrayLayout, shard: int, inner: list[int], out: np.ndarray, positions: list[int]
    ) -> bool:
        """Decode the chunks ``inner`` of a shard into ``out[positions]``; False when it cannot serve them."""
        store = self.store
        path = shard_key(self.fingerprint, video_key, shard)
        try:
            index = self.index(path, layout)
            if index is None:
                return False
            held: dict[int, int] = {}  # chunk -> position of out it was decoded into
            for k, position in zip(inner, positions, strict=True):
                held.setdefault(k, position)
            chunks: list[tuple[int, tuple[int, int]]] = []
            for k in held:
                entry = index[k]
                if entry is None:
                    return False
                chunks.append((k, entry))
            # Runs of chunks that sit close together: one ranged read each.
            for run in _runs(sorted(chunks, key=lambda c: c[1][0])):
                frames = [out[held[k]] for k, _ in run]
                names = [_frame_name(store, path, shard * layout.shard_frames + k) for k, _ in run]
                if layout.compression == "none":
                    self._read_into(path, run, frames, names)
                    continue
                lo, hi = run[0][1][0], sum(run[-1][1])
                data = self._read_chunks(path, lo, hi)
                for (_, (offset, length)), frame, name in zip(run, frames, names, strict=True):
                    decode_chunk(layout, data[offset - lo : offset - lo + length], frame, name)
            for k, position in zip(inner, positions, strict=True):
                if held[k] != position:
                    out[position] = out[held[k]]
        except (NotFound, FileNotFoundError):
            self.forget_index(path)  # evicted meanwhile
            return False
        except CorruptDataset as exc:
            log.warning("frame cache: %s; decoding the shard again", exc)
            self.forget_index(path)
            self.stats.add(corrupt_chunks=1)
            return False
        except (StoreError, OSError) as exc:
            log.warning("frame cache: cannot read %s (%s); decoding instead", store.describe(path), exc)
            return False
        self._touch(path)
        return True

    def _read_chunks(self, path: str, start: int, end: int) -> np.ndarray:
        """Bytes ``[start, end)`` of a shard, in this thread's scratch buffer (valid until
        its next read: no allocation, no page faults per frame)."""
        scratch = getattr(self._scratch, "buffer", None)
        if scratch is None or len(scratch) < end - start:
            scratch = self._scratch.buffer = np.empty(end - start, dtype=np.uint8)
        data = scratch[: self.store.read_into(path, [scratch[: end - start]], start)]
        if len(data) != end - start:
            raise CorruptDataset(f"{self.store.describe(path)}: shard is shorter than its index says")
        return data

    def _read_into(
        self,
        path: str,
        run: list[tuple[int, tuple[int, int]]],
        frames: list[np.ndarray],
        names: list[Callable[[], str]],
    ) -> None:
        """Read a run of uncompressed chunks of a shard straight into ``frames`` (one
        vectored read: no copy in between on local disk), then check each one's crc32c."""
        checksums = np.empty((len(run), CHECKSUM_BYTES), dtype=np.uint8)
        buffers: list[np.ndarray] = []
        gaps = self._gap_buffer()
        end = run[0][1][0]
        for (_, (offset, length)), frame, checksum, name in zip(run, frames, checksums, names, strict=True):
            if length != frame.nbytes + CHECKSUM_BYTES:
                raise CorruptDataset(
                    f"{name()}: chunk holds {length - CHECKSUM_BYTES} bytes, a frame is {frame.nbytes}"
                )
            if offset > end:  # bytes of chunks not asked for: into a buffer every gap shares
                buffers.append(gaps[: offset - end])
            buffers += [frame.reshape(-1), checksum]
            end = offset + length
        start = run[0][1][0]
        if self.store.read_into(path, buffers, start) != end - start:
            raise CorruptDataset(f"{self.store.describe(path)}: shard is shorter than its index says")
        for frame, checksum, name in zip(frames, checksums, names, strict=True):
            check_chunk(frame.reshape(-1), checksum, name)

    def _gap_buffer(self) -> np.ndarray:
        gaps = getattr(self._scratch, "gaps", None)
        if gaps is None:
            gaps = self._scratch.gaps = np.empty(_MAX_GAP, dtype=np.uint8)
        return gaps

    def _read_range(self, path: str, start: int, end: int) -> bytes:
        buffer = bytearray(end - start)
        return bytes(buffer[: self.store.read_into(path, [buffer], start)])

    def _touch(self, path: str) -> None:
        if not self.touch_on_read:
            return
        now = time.monotonic()
        if now - self._touched.get(path, -1e9) >= eviction.TOUCH_INTERVAL_S:
            self._touched[path] = now
            local = self.store.local_path(path)
            if local is not None:  # max_bytes needs a local cache
                eviction.touch(local)

    # ------------------------------------------------------------------ writing
    def write(self, video_key: str, layout: ArrayLayout, shard: int, frames: np.ndarray) -> bool:
        if not self._writable:
            return False
        path = shard_key(self.fingerprint, video_key, shard)
        parts = encode_shard(layout, np.ascontiguousarray(frames))
        nbytes = sum(len(p) for p in parts)
        try:
            self._ensure_array(video_key, layout)
            # No flush to disk: after a power loss a shard may be empty or torn, which
            # its checksums catch (it is decoded again); flushing would double a fill's cost.
            self.store.write_parts(path, parts, durable=False)
        except (RobostoreError, OSError) as exc:
            log.warning(
                "frame cache: cannot write to %s (%s); serving decoded frames without caching them", self.store.url, exc
            )
            self._writable = False
            return False
        self.remember_index(path, parse_index(layout, bytes(parts[0]), path))
        self.stats.add(filled_shards=1, filled_bytes=nbytes)
        self.wrote(nbytes)
        return True

    def _ensure_array(self, video_key: str, layout: ArrayLayout) -> None:
        if video_key in self._arrays_written:
            return
        store = self.store
        self.ensure_root()
        group = f"{self.fingerprint}/zarr.json"
        if not store.exists(group):
            info = self.meta.info
            attributes = {
                ROOT_ATTR: {
                    "name": self.meta.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0],
                    "robot_type": info.robot_type,
                    "fps": info.fps,
                    "total_episodes": info.total_episodes,
                    "total_frames": info.total_frames,
                    "video_keys": self.meta.video_keys,
                }
            }
            store.write(group, group_json(attributes))
        array = f"{array_prefix(self.fingerprint, video_key)}/zarr.json"
        if not store.exists(array):
            store.write(array, json.dumps(layout.metadata(), indent=2).encode())
        self._arrays_written.add(video_key)


def _frame_name(store: Store, path: str, frame: int) -> Callable[[], str]:
    """The name of a cached frame for messages, made only when one is needed."""
    return lambda: f"{store.describe(path)} frame {frame}"


def _runs(chunks: list[tuple[int, tuple[int, int]]]) -> list[list[tuple[int, tuple[int, int]]]]:
    """``(chunk, (offset, length))`` in offset order, cut where the next chunk starts
    more than ``_MAX_GAP`` bytes after the previous one ends (and every ``_MAX_RUN``
    chunks: a vectored read takes at most IOV_MAX = 1024 buffers, three per chunk)."""
    runs: list[list[tuple[int, tuple[int, int]]]] = []
    for chunk in chunks:
        if runs and 0 <= chunk[1][0] - sum(runs[-1][-1][1]) <= _MAX_GAP and len(runs[-1]) < _MAX_RUN:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return runs
