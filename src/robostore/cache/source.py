"""Decoding runs of a dataset's frames, by global frame index, to fill the cache.

The frames of global indices ``[start, stop)`` of one video key may span several
episodes and mp4 files; each episode's part is decoded with one seek and forward
decoding (:meth:`VideoReader.iter_frames`), and each wanted timestamp is matched to the
decoded frame closest to it within ``tolerance_s``, as the readers match them.
"""

from __future__ import annotations

import collections
import os
from typing import IO

import numpy as np
from fsspec.implementations.local import LocalFileSystem

from robostore.errors import CorruptDataset, VideoError
from robostore.meta import DatasetMeta


class FrameSource:
    """Decodes frames of one dataset, keeping a few readers open in this process.

    Args:
        meta: the dataset.
        tolerance_s: allowed |decoded - wanted| frame time (lerobot's default 1e-4 s).
        max_open: readers kept open (LRU).
    """

    def __init__(self, meta: DatasetMeta, tolerance_s: float = 1e-4, max_open: int = 4) -> None:
        self.meta = meta
        self.tolerance_s = tolerance_s
        self.max_open = max_open
        cols = meta.columns
        self._episodes = meta.episode_indices
        self._from = cols["dataset_from_index"]
        self._to = cols["dataset_to_index"]
        order = np.argsort(self._from, kind="stable")
        self._order, self._sorted_from = order, self._from[order]
        self._readers: collections.OrderedDict[str, object] = collections.OrderedDict()
        self._pid = os.getpid()

    def decode(self, video_key: str, start: int, stop: int) -> np.ndarray:
        """uint8 ``[stop - start, H, W, C]``: the frames of global indices ``[start, stop)``.

        Raises:
            VideoError: a frame is missing or off in time, or the video is unreadable.
            CorruptDataset: an index lies in no episode.
        """
        parts = []
        index = start
        while index < stop:
            pos = int(np.searchsorted(self._sorted_from, index, side="right")) - 1
            row = int(self._order[pos]) if pos >= 0 else -1
            if row < 0 or not self._from[row] <= index < self._to[row]:
                raise CorruptDataset(f"{self.meta.url}: frame index {index} belongs to no episode")
            end = min(stop, int(self._to[row]))
            parts.append(self._decode_episode(video_key, int(self._episodes[row]), index - int(self._from[row]), end - index))
            index = end
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def _decode_episode(self, video_key: str, episode: int, first: int, count: int) -> np.ndarray:
        span = self.meta.video_span(episode, video_key)
        wanted = span.from_timestamp + (first + np.arange(count)) / self.meta.fps
        reader = self._reader(span.path)
        got_t: list[float] = []
        got_f: list[np.ndarray] = []
        try:
            for t, frame in reader.iter_frames(float(wanted[0]), float(wanted[-1]) + 0.5 / self.meta.fps):
                got_t.append(t)
                got_f.append(frame)
        except BaseException:
            self._drop(span.path)
            raise
        if not got_t:
            raise VideoError(
                f"{self.meta.store.describe(span.path)}: no frames at t={wanted[0]:.4f}..{wanted[-1]:.4f}s "
                f"(episode {episode})"
            )
        times = np.asarray(got_t)
        pick = np.clip(np.searchsorted(times, wanted), 1, len(times) - 1) if len(times) > 1 else np.zeros(count, int)
        if len(times) > 1:
            left_closer = np.abs(times[pick - 1] - wanted) <= np.abs(times[pick] - wanted)
            pick = np.where(left_closer, pick - 1, pick)
        off = np.abs(times[pick] - wanted)
        if (off >= self.tolerance_s).any():
            i = int(np.argmax(off))
            raise VideoError(
                f"{self.meta.store.describe(span.path)}: wanted a frame at t={wanted[i]:.6f}s (episode {episode}) "
                f"but the closest decoded one is at t={times[pick[i]]:.6f}s (>= tolerance_s={self.tolerance_s})"
            )
        return np.stack([got_f[int(j)] for j in pick])

    def _reader(self, path: str):  # -> VideoReader
        from robostore.video.decode import VideoReader

        if self._pid != os.getpid():  # inherited through fork: not ours to use
            self._readers = collections.OrderedDict()
            self._pid = os.getpid()
        reader = self._readers.get(path)
        if reader is not None:
            self._readers.move_to_end(path)
            return reader
        store = self.meta.store
        source: IO[bytes] | str
        source = store.full_path(path) if isinstance(store.fs, LocalFileSystem) else store.open(path)
        # One decoder thread: fills run in DataLoader workers or warm processes, one per core.
        reader = VideoReader(source, store.describe(path), thread_type="NONE", close_file=not isinstance(source, str))
        self._readers[path] = reader
        while len(self._readers) > self.max_open:
            self._readers.popitem(last=False)[1].close()
        return reader

    def _drop(self, path: str) -> None:
        reader = self._readers.pop(path, None)
        if reader is not None:
            reader.close()

    def close(self) -> None:
        """Close the open readers."""
        while self._readers:
            self._readers.popitem()[1].close()
