"""One camera of one episode as a playable mp4 of its own, cut by stream copy.

An mp4 of a LeRobot v3.0 dataset holds many episodes back to back. A browser playing
it would buffer megabytes past the episode it shows; the clip holds that episode's
packets only (re-timed to start at 0, nothing re-encoded), read from the dataset's
mp4 in a few ranged reads: its header and index, then the episode's packets
(see :func:`robostore.mirror.remux.cut`).
"""

from __future__ import annotations

import collections
import io
import threading
from dataclasses import dataclass

from robostore.meta import DatasetMeta
from robostore.mirror.remux import Span, cut

#: Ranged-read size for the header and index of the dataset's mp4 (the episode's packets
#: come in one read of their own): small, so the bytes read stay close to the episode's
#: share of the file (the backend's default block is a few MB).
CLIP_BLOCK_SIZE = 16 * 1024


@dataclass(frozen=True, slots=True)
class Clip:
    """The mp4 bytes of one camera of one episode; its first frame is at 0 s."""

    data: bytes
    frames: int
    duration: float


class ClipCache:
    """Clips cut on first request and kept in a small LRU (``max_clips`` of them)."""

    def __init__(self, meta: DatasetMeta, max_clips: int = 32) -> None:
        self.meta = meta
        self.max_clips = max_clips
        self._clips: collections.OrderedDict[tuple[int, str], Clip] = collections.OrderedDict()
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, episode_index: int, video_key: str) -> Clip:
        """The clip of ``video_key`` in ``episode_index`` (typed errors for bad ones)."""
        key = (episode_index, video_key)
        with self._lock:
            clip = self._clips.get(key)
            if clip is not None:
                self._clips.move_to_end(key)
                return clip
            build_lock = self._locks.setdefault(key, threading.Lock())
        with build_lock:  # a second request for the same clip waits for the first
            with self._lock:
                clip = self._clips.get(key)
            if clip is None:
                clip = self._cut(episode_index, video_key)
            with self._lock:
                self._clips[key] = clip
                self._clips.move_to_end(key)
                while len(self._clips) > self.max_clips:
                    self._clips.popitem(last=False)
                self._locks.pop(key, None)
        return clip

    def _cut(self, episode_index: int, video_key: str) -> Clip:
        span = self.meta.video_span(episode_index, video_key)
        frames = self.meta.episode(episode_index).length
        half_frame = 0.5 / self.meta.fps
        # Frame i of the episode is at from_timestamp + i / fps: half a frame either side
        # absorbs timestamp rounding and works whether to_timestamp is the end of the
        # episode or its last frame (both are written).
        window = Span(
            start=span.from_timestamp - half_frame,
            end=span.from_timestamp + (frames - 0.5) / self.meta.fps,
            dest=-half_frame,
        )
        out = io.BytesIO()
        cut(self.meta.store, span.path, [window], out, block_size=CLIP_BLOCK_SIZE)
        return Clip(out.getvalue(), frames, frames / self.meta.fps)
