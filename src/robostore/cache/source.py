"""Decoding runs of a dataset's frames, by global frame index, to fill the cache.

The frames of global indices ``[start, stop)`` of one video key may span several
episodes and mp4 files; each episode's part is decoded with one seek and forward
decoding (:meth:`VideoReader.frames_at` with all its timestamps), each wanted timestamp
matched to the decoded frame closest to it within ``tolerance_s``, as the readers match
them, and written straight into the caller's array.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import numpy as np

from robostore.errors import CorruptDataset, VideoError
from robostore.meta import DatasetMeta
from robostore.reader_pool import ReaderPool

if TYPE_CHECKING:
    from robostore.video.decode import VideoReader


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
        self._pool: ReaderPool[VideoReader] = ReaderPool(max_open)

    def decode(self, video_key: str, start: int, stop: int) -> np.ndarray:
        """uint8 ``[stop - start, C, H, W]``: the frames of global indices ``[start, stop)``.

        Raises:
            VideoError: a frame is missing or off in time, or the video is unreadable.
            CorruptDataset: an index lies in no episode.
        """
        h, w, c = self.meta.features[video_key].frame_size
        out = np.empty((stop - start, c, h, w), dtype=np.uint8)
        index = start
        while index < stop:
            pos = int(np.searchsorted(self._sorted_from, index, side="right")) - 1
            row = int(self._order[pos]) if pos >= 0 else -1
            if row < 0 or not self._from[row] <= index < self._to[row]:
                raise CorruptDataset(f"{self.meta.url}: frame index {index} belongs to no episode")
            end = min(stop, int(self._to[row]))
            first = index - int(self._from[row])
            self._decode_episode(video_key, int(self._episodes[row]), first, out[index - start : end - start])
            index = end
        return out

    def _decode_episode(self, video_key: str, episode: int, first: int, out: np.ndarray) -> None:
        """Decode frames ``first ...`` of an episode into ``out`` (one per row), in one
        forward pass, matched to their timestamps as the readers match them."""
        span = self.meta.video_span(episode, video_key)
        wanted = span.from_timestamp + (first + np.arange(len(out))) / self.meta.fps
        reader = self._reader(span.path)
        if (3, reader.height, reader.width) != out.shape[1:]:
            raise VideoError(
                f"{self.meta.store.describe(span.path)}: frames are {reader.width}x{reader.height}, "
                f"info.json says {out.shape[3]}x{out.shape[2]}"
            )
        try:
            reader.frames_at(wanted.tolist(), self.tolerance_s, episode=episode, channels_first=True, out=out)
        except BaseException:
            self._drop(span.path)
            raise

    def _reader(self, path: str) -> VideoReader:
        return self._pool.get(path, lambda: self._open(path))

    def _open(self, path: str) -> VideoReader:
        from robostore.video.decode import VideoReader  # PyAV only when filling

        store = self.meta.store
        source: IO[bytes] | str
        source = store.local_path(path) or store.open(path)
        # One decoder thread: fills run in DataLoader workers or warm processes, one per core.
        return VideoReader(source, store.describe(path), thread_type="NONE", close_file=not isinstance(source, str))

    def _drop(self, path: str) -> None:
        self._pool.evict(path)

    def close(self) -> None:
        """Close the open readers."""
        self._pool.close()
