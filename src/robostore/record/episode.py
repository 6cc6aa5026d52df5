"""The episode being recorded: buffered values, PNG jobs, video encoders, stats samples."""

from __future__ import annotations

import io
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robostore.stats import camera_sample_indices, downsample_for_stats

#: Camera frames kept per episode for stats (downsampled); beyond this the sampler
#: keeps every 2nd, 4th, ... frame. lerobot's sample is reproduced exactly for
#: episodes of up to this many frames and approximated (nearest kept frame) above.
CAMERA_SAMPLES_KEPT = 512


class CameraSampler:
    """Keeps a bounded, evenly spaced subset of an episode's frames for camera stats."""

    def __init__(self, cap: int = CAMERA_SAMPLES_KEPT) -> None:
        self.cap = cap
        self.step = 1
        self.kept: list[np.ndarray] = []  # frame i * step

    def add(self, index: int, frame: np.ndarray) -> None:
        """Offer frame ``index`` (uint8 [H, W, C]); it is copied if kept."""
        if index % self.step:
            return
        self.kept.append(np.array(downsample_for_stats(frame), copy=True))
        if len(self.kept) > self.cap:
            self.kept = self.kept[::2]
            self.step *= 2

    def sample(self, frames: int) -> np.ndarray:
        """The frames stats are computed from, uint8 [N, C, H, W]."""
        wanted = camera_sample_indices(frames)
        positions = np.minimum(np.round(wanted / self.step).astype(int), len(self.kept) - 1)
        return np.stack([self.kept[p] for p in positions]).transpose(0, 3, 1, 2)


def encode_png(frame: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] frame (compress level 1, as lerobot's image writer)."""
    import PIL.Image

    out = io.BytesIO()
    PIL.Image.fromarray(frame).save(out, format="PNG", compress_level=1)
    return out.getvalue()


@dataclass
class EpisodeBuffer:
    """What :meth:`Recorder.add_frame` accumulated for one episode.

    Tabular values are kept as small arrays; image features are PNG-encoded on a
    thread pool as frames arrive; video frames go straight to their encoders.
    """

    episode_index: int
    numeric: dict[str, list[Any]] = field(default_factory=dict)
    pngs: dict[str, list[Future[bytes]]] = field(default_factory=dict)
    encoders: dict[str, Any] = field(default_factory=dict)
    samplers: dict[str, CameraSampler] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.tasks)

    def add(
        self,
        values: dict[str, Any],
        task: str,
        camera_kinds: dict[str, str],
        png_pool: Executor | None,
    ) -> None:
        """Append one checked frame (see :class:`~robostore.record.frames.FrameSchema`)."""
        index = self.length
        for key, value in values.items():
            kind = camera_kinds.get(key)
            if kind is None:
                self.numeric.setdefault(key, []).append(value)
                continue
            self.samplers.setdefault(key, CameraSampler()).add(index, value)
            if kind == "video":
                self.encoders[key].add(value)
            else:
                assert png_pool is not None, "a dataset with image features has a PNG pool"
                self.pngs.setdefault(key, []).append(png_pool.submit(encode_png, value))
        self.tasks.append(task)

    def abort(self) -> None:
        """Drop everything: stop encoders (deleting their files), cancel PNG jobs."""
        for encoder in self.encoders.values():
            encoder.abort()
        for futures in self.pngs.values():
            for future in futures:
                future.cancel()
