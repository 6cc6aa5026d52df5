"""Background fetching of the compressed video bytes of the episodes a stream reads next.

An episode's frames sit in a contiguous stretch of its mp4 (episodes are concatenated).
The container's index (``stream.index_entries``: pts, byte position and size of every
packet) tells where: from the keyframe at or before the episode's ``from_timestamp`` to
the last packet before its end (``VideoSpan.end_timestamp``). A :class:`Prefetcher` reads each file's
index once (per process), then fetches an episode's stretch in one ranged request on a
background thread, while training consumes earlier episodes.

The decoder then reads a :class:`SpanFile`: a seekable file object serving the
container header (recorded while the index was read) and the prefetched stretch from
memory. Anything else it asks for is read from the store in small blocks, so a wrong
guess costs a request, never a wrong frame.

Memory is bounded: a prefetcher holds the stretches of at most the episodes it was
asked to schedule and that were not released yet (the open episodes plus ``prefetch``
more), each the compressed size of one episode per camera.
"""

from __future__ import annotations

import bisect
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from robostore.errors import NotFound
from robostore.meta import DatasetMeta
from robostore.store import Store
from robostore.video._errors import wrap_av_errors

log = logging.getLogger(__name__)

#: Block size of reads outside the prefetched stretches.
MISS_BLOCK = 256 * 1024
#: Bytes read past an episode's last packet (the demuxer reads ahead in 32 KB blocks).
TAIL_PAD = 96 * 1024
#: Slack around an episode's time range when picking packets (well under a frame).
TIME_SLACK_S = 1e-3

Chunk = tuple[int, bytes]  # (offset in the file, bytes)


class SpanFile(io.RawIOBase):
    """A read-only, seekable view of a remote file whose needed parts are in memory.

    Args:
        name: how errors name the file.
        size: file size in bytes.
        chunks: ``(offset, bytes)`` pieces of the file held in memory.
        fetch: ``fetch(start, end)`` reads bytes ``[start, end)`` from the store, for
            anything outside ``chunks`` (kept in a few cached blocks).
    """

    def __init__(self, name: str, size: int, chunks: Iterable[Chunk], fetch: Callable[[int, int], bytes]) -> None:
        super().__init__()
        self.name = name
        self.size = size
        self._chunks = sorted(chunks, key=lambda c: c[0])
        self._fetch = fetch
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._pos = 0
        self.misses = 0  # blocks read from the store on demand

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = max(0, min(len(view), self.size - self._pos))
        got = 0
        while got < want:
            data, offset = self._piece(self._pos + got)
            n = min(want - got, len(data) - offset)
            view[got : got + n] = data[offset : offset + n]
            got += n
        self._pos += got
        return got

    def _piece(self, position: int) -> tuple[bytes, int]:
        """Bytes holding ``position``, and its offset in them."""
        i = bisect.bisect_right(self._chunks, position, key=lambda c: c[0]) - 1
        # Chunks may overlap (header and stretch); any one holding the position will do.
        while i >= 0:
            start, data = self._chunks[i]
            if position < start + len(data):
                return data, position - start
            i -= 1
        block = position - position % MISS_BLOCK
        held = self._blocks.get(block)
        if held is None:
            self.misses += 1
            log.debug("%s: reading bytes %d.. outside the prefetched ones", self.name, block)
            held = self._fetch(block, min(self.size, block + MISS_BLOCK))
            self._blocks[block] = held
            while len(self._blocks) > 4:
                self._blocks.popitem(last=False)
        return held, position - block


class _Recorder(io.RawIOBase):
    """Passes reads through to ``inner`` and remembers what was read (the header)."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner
        self.chunks: list[Chunk] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return int(self._inner.tell())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._inner.seek(offset, whence))

    def readinto(self, buffer: Any) -> int:
        start = self._inner.tell()
        data = self._inner.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        if data:
            self.chunks.append((start, bytes(data)))
        return len(data)


@dataclass(frozen=True)
class VideoLayout:
    """Where a video file's packets are: per packet time (s), byte start and end, keyframe."""

    size: int
    times: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    keyframes: np.ndarray
    header: list[Chunk]

    @classmethod
    def read(cls, store: Store, path: str) -> VideoLayout:
        """Open the container once, keeping the bytes it read as the header."""
        import av

        name = store.describe(path)
        size = store.info(path).size
        with store.open(path, block_size=MISS_BLOCK) as raw:
            recorder = _Recorder(raw)
            with (
                wrap_av_errors(name, "reading the container index", "re-copy the video file"),
                av.open(recorder, mode="r") as container,
            ):
                if not container.streams.video:
                    none = np.empty(0)
                    return cls(size, none, none, none, none, recorder.chunks)
                stream = container.streams.video[0]
                base = float(stream.time_base or 1)
                # IndexEntry objects point into the open stream: read them before it closes.
                entries = [(e.timestamp * base, e.pos, e.size, e.is_keyframe) for e in stream.index_entries]
        times = np.array([e[0] for e in entries], dtype=np.float64)
        starts = np.array([e[1] for e in entries], dtype=np.int64)
        ends = starts + np.array([e[2] for e in entries], dtype=np.int64)
        keys = np.array([e[3] for e in entries], dtype=bool)
        return cls(size, times, starts, ends, keys, recorder.chunks)

    def stretch(self, from_s: float, to_s: float) -> tuple[int, int] | None:
        """Byte range ``[start, end)`` of the packets a decoder needs for ``[from_s, to_s)``."""
        if len(self.times) == 0:
            return None
        before = np.flatnonzero(self.keyframes & (self.times <= from_s - TIME_SLACK_S))
        first = int(before[-1]) if len(before) else 0
        inside = np.flatnonzero(self.times < to_s + TIME_SLACK_S)
        last = int(inside[-1]) if len(inside) else 0
        if last < first:
            return None
        start = int(self.starts[first : last + 1].min())
        end = int(self.ends[first : last + 1].max())
        return start, min(self.size, end + TAIL_PAD)


class Prefetcher:
    """Fetches the video stretches of episodes ahead of use, on background threads.

    Args:
        meta: the dataset (episodes table: which mp4 and which time range per camera).
        store: the store to read from (this process's).
        threads: fetches in flight at once.
    """

    def __init__(self, meta: DatasetMeta, store: Store, threads: int = 2) -> None:
        self.meta = meta
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="robostore-prefetch")
        self._layouts: dict[str, Future[VideoLayout]] = {}
        # Per episode, one fetch per camera: a stream's first samples need every camera
        # of several episodes at once, and remote latency, not bandwidth, is the cost.
        self._episodes: dict[int, dict[str, Future[bytes | None]]] = {}
        self._lock = threading.Lock()

    def schedule(self, episodes: Iterable[int]) -> None:
        """Start fetching the video stretches of ``episodes`` (episode indices)."""
        with self._lock:
            for episode in episodes:
                if episode not in self._episodes:
                    self._episodes[episode] = {
                        self.meta.video_span(episode, key).path: self._pool.submit(self._fetch, episode, key)
                        for key in self.meta.video_keys
                    }

    def release(self, episode: int) -> None:
        """Drop an episode's bytes (its readers are done with them)."""
        with self._lock:
            futures = self._episodes.pop(episode, {})
        for future in futures.values():
            future.cancel()

    def source(self, path: str, episode: int) -> SpanFile:
        """A file object for ``path`` serving ``episode``'s prefetched stretch (waits for it)."""
        self.schedule([episode])
        with self._lock:
            future = self._episodes[episode].get(path)
        data = None if future is None else future.result()
        layout = self._layout(path).result()
        chunks = list(layout.header)
        if data is not None:
            span = self._stretch(path, episode, layout)
            if span is not None:
                chunks.append((span[0], data))
        return SpanFile(
            self.store.describe(path), layout.size, chunks, lambda start, end: self.store.read_range(path, start, end)
        )

    def close(self) -> None:
        """Stop fetching and drop everything held."""
        with self._lock:
            futures = [f for per_path in self._episodes.values() for f in per_path.values()]
            self._episodes.clear()
        for future in futures:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ internals
    def _layout(self, path: str) -> Future[VideoLayout]:
        with self._lock:
            future = self._layouts.get(path)
            if future is None:
                future = Future()
                self._layouts[path] = future
                owner = True
            else:
                owner = False
        if owner:
            try:
                future.set_result(VideoLayout.read(self.store, path))
            except BaseException as exc:  # noqa: BLE001 - raised in every caller waiting on the future
                future.set_exception(exc)
        return future

    def _stretch(self, path: str, episode: int, layout: VideoLayout) -> tuple[int, int] | None:
        for key in self.meta.video_keys:
            span = self.meta.video_span(episode, key)
            if span.path == path:
                return layout.stretch(span.from_timestamp, span.end_timestamp)
        return None

    def _fetch(self, episode: int, key: str) -> bytes | None:
        span = self.meta.video_span(episode, key)
        try:
            layout = self._layout(span.path).result()
        except NotFound as exc:
            raise NotFound(
                f"{self.store.describe(span.path)}: video file not found (needed for episode {episode}); "
                "re-copy the dataset"
            ) from exc
        stretch = layout.stretch(span.from_timestamp, span.end_timestamp)
        return None if stretch is None else self.store.read_range(span.path, *stretch)
