"""The fill path of a frame cache: a shard missing from the cache is decoded whole from
the dataset's videos (under a claim, so concurrent readers decode it once), written,
and kept decoded for a while (a stream reads on through the shard it just filled)."""

from __future__ import annotations

import collections
import logging
import threading

import numpy as np

from robostore.cache.claims import Claims
from robostore.cache.layout import ArrayLayout
from robostore.cache.shard_io import ShardFiles
from robostore.cache.source import FrameSource
from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta

log = logging.getLogger(__name__)

_FILLED_BYTES = 128 << 20  # shards this process filled, kept decoded (LRU)


class ShardFiller:
    """Decodes and writes whole shards of one dataset state; one per process (it holds
    the open decoders)."""

    def __init__(self, meta: DatasetMeta, claims: Claims, shards: ShardFiles) -> None:
        self.meta = meta
        self.claims = claims
        self.shards = shards
        self._lock = threading.Lock()
        self._decode_lock = threading.Lock()  # one FrameSource (open decoders) per process
        self._source: FrameSource | None = None
        self._filled: collections.OrderedDict[tuple[str, int], np.ndarray] = collections.OrderedDict()

    def _frame_source(self) -> FrameSource:
        if self._source is None:
            self._source = FrameSource(self.meta)
        return self._source

    def fill(self, video_key: str, layout: ArrayLayout, shard: int) -> np.ndarray | None:
        """Decode a shard whole, write it, return its frames; None when not possible now."""
        release = self.claims.take(f"{self.shards.fingerprint}/{video_key}/{shard}")
        if release is None:
            return None
        try:
            start, stop = layout.shard_range(shard)
            try:
                with self._decode_lock:
                    frames = self._frame_source().decode(video_key, start, stop)
            except RobostoreError as exc:
                log.warning("frame cache: cannot decode frames %d..%d of %s: %s", start, stop - 1, video_key, exc)
                return None
            if frames.shape[1:] != layout.stored_shape:
                log.warning(
                    "frame cache: %s decodes to frames of %s (C, H, W) but info.json says %s; not caching it",
                    video_key,
                    frames.shape[1:],
                    layout.stored_shape,
                )
                return None
            self.shards.write(video_key, layout, shard, frames)
            self._remember(video_key, shard, frames)
            return frames
        finally:
            release()

    def _remember(self, video_key: str, shard: int, frames: np.ndarray) -> None:
        # A stream reads on through the shard it just filled: serving the rest of it from
        # memory saves reading back (and checking) every frame just written.
        with self._lock:
            self._filled[(video_key, shard)] = frames
            while sum(f.nbytes for f in self._filled.values()) > _FILLED_BYTES:
                self._filled.popitem(last=False)

    def recently_filled(self, video_key: str, shard: int) -> np.ndarray | None:
        with self._lock:
            frames = self._filled.get((video_key, shard))
            if frames is not None:
                self._filled.move_to_end((video_key, shard))
            return frames

    def close(self) -> None:
        """Close the video readers this process opened."""
        if self._source is not None:
            with self._decode_lock:
                self._source.close()
