"""Recordings for the property, crash and fault tests: a schema, its episodes, their frames.

A :class:`Recording` is everything needed to record a dataset and to know what it must
read back as: the features, the file/chunk limits and, per episode, a length, a task and
a seed from which every frame's values are regenerated (:func:`frame_values`), so a test
or a subprocess can rebuild the expected values of any episode without storing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robostore.video import VideoOptions

#: Near-lossless H.264 (fast to encode and decode): decoded frames are within a few levels.
LOSSLESS = VideoOptions.h264(crf=0, pix_fmt="yuv444p")
#: Largest |decoded - recorded| allowed for a video pixel with :data:`LOSSLESS`
#: (RGB -> YUV 4:4:4 -> RGB rounding only).
VIDEO_MAX_ERR = 3


@dataclass(frozen=True)
class Episode:
    length: int
    task: str
    seed: int


@dataclass
class Recording:
    """A schema, file limits and the episodes to record into it."""

    features: dict[str, dict[str, Any]]
    episodes: list[Episode]
    fps: int = 30
    chunks_size: int = 1000
    data_files_size_in_mb: float = 100.0
    video_files_size_in_mb: float = 200.0
    use_videos: bool = True

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``Recorder.create`` for this recording (but the URL)."""
        return {
            "fps": self.fps,
            "features": self.features,
            "video": LOSSLESS,
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb,
            "use_videos": self.use_videos,
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (for a recording subprocess); :meth:`from_json` reverses it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Recording:
        fields = dict(data)
        fields["episodes"] = [Episode(**e) for e in fields["episodes"]]
        return cls(**fields)


def frame_values(features: Mapping[str, Mapping[str, Any]], episode: Episode, i: int) -> dict[str, Any]:
    """The values of frame ``i`` of ``episode`` (a pure function of its seed and ``i``).

    Numbers span awkward ranges (negative zero, huge and tiny magnitudes, integer
    extremes); camera frames are smooth gradients plus noise, so video codecs keep them
    close but not necessarily exact.
    """
    rng = np.random.default_rng([episode.seed, i])
    out: dict[str, Any] = {"task": episode.task}
    for key, feature in features.items():
        dtype, shape = feature["dtype"], tuple(feature["shape"])
        if dtype in ("image", "video"):
            h, w, _ = shape
            yy, xx = np.mgrid[0:h, 0:w]
            base = np.stack([xx * 9 + i * 13, yy * 7 + i * 5, (xx + yy) * 4 + episode.seed % 200], -1)
            out[key] = ((base + rng.integers(0, 8, (h, w, 3))) % 256).astype(np.uint8)
        elif dtype == "bool":
            out[key] = rng.random(shape) < 0.5
        elif dtype in ("int32", "int64"):
            info = np.iinfo(dtype)
            pool = np.array([info.min, info.max, 0, -1, 1], dtype=dtype)
            values = rng.integers(-1000, 1000, shape, dtype=dtype)
            pick = rng.random(shape) < 0.3
            out[key] = np.where(pick, pool[rng.integers(0, len(pool), shape)], values).astype(dtype)
        elif dtype == "string":
            out[key] = f"s{episode.seed}-{i}-é"
        else:
            finfo = np.finfo(dtype)
            pool = np.array([-0.0, finfo.max, finfo.min, finfo.tiny, finfo.eps, 1e-30, -1.5], dtype=dtype)
            values = (rng.standard_normal(shape) * 10.0 ** rng.integers(-5, 6, shape)).astype(dtype)
            pick = rng.random(shape) < 0.3
            out[key] = np.where(pick, pool[rng.integers(0, len(pool), shape)], values).astype(dtype)
    return out


def record_episode(rec: Any, features: Mapping[str, Mapping[str, Any]], episode: Episode) -> int:
    """Add every frame of ``episode`` to ``rec`` and save it; returns its index."""
    for i in range(episode.length):
        rec.add_frame(frame_values(features, episode, i))
    return rec.save_episode()
