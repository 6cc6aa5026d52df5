"""Random recordings for the property, crash and fault tests: a schema, its frames, checks.

A :class:`Recording` is everything needed to record a dataset and to know what it must
read back as: the features, the file/chunk limits and, per episode, a length, a task and
a seed from which every frame's values are regenerated (:func:`frame_values`), so a test
or a subprocess can rebuild the expected values of any episode without storing them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from robostore.torch import Dataset
from robostore.video import VideoOptions

#: Near-lossless H.264 (fast to encode and decode): decoded frames are within a few levels.
LOSSLESS = VideoOptions.h264(crf=0, pix_fmt="yuv444p")
#: Largest |decoded - recorded| allowed for a video pixel with :data:`LOSSLESS`
#: (RGB -> YUV 4:4:4 -> RGB rounding only).
VIDEO_MAX_ERR = 3
#: Defaults filled in by the recorder, checked separately.
DEFAULTS = ("timestamp", "frame_index", "episode_index", "index", "task_index")


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
    extra: dict[str, Any] = field(default_factory=dict)

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
            **self.extra,
        }

    def cameras(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("image", "video")]


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


def _same_tabular(key: str, got: Any, want: Any, feature: Mapping[str, Any], where: str) -> None:
    if feature["dtype"] == "string":
        assert got == want, f"{where} {key}: {got!r} != {want!r}"
        return
    want_arr = np.asarray(want).reshape(tuple(feature["shape"]))
    if tuple(feature["shape"]) == (1,):
        want_arr = want_arr.reshape(())
    assert isinstance(got, torch.Tensor), f"{where} {key}: not a tensor but {type(got).__name__}"
    got_arr = got.numpy()
    assert got_arr.dtype == np.dtype(feature["dtype"]), f"{where} {key}: dtype {got_arr.dtype} != {feature['dtype']}"
    assert got_arr.shape == want_arr.shape, f"{where} {key}: shape {got_arr.shape} != {want_arr.shape}"
    # Bit-exact, so -0.0 vs 0.0 counts as a difference.
    assert got_arr.tobytes() == want_arr.tobytes(), f"{where} {key}: {got_arr} != {want_arr}"


def check_sample(
    item: Mapping[str, Any],
    rec: Recording,
    episode_index: int,
    frame: int,
    global_index: int,
    *,
    video_max_err: int = VIDEO_MAX_ERR,
) -> None:
    """``item`` (a uint8 sample of Dataset or StreamingDataset) holds what was recorded."""
    episode = rec.episodes[episode_index]
    want = frame_values(rec.features, episode, frame)
    where = f"episode {episode_index} frame {frame}:"
    assert item["task"] == episode.task, where
    assert int(item["episode_index"]) == episode_index, where
    assert int(item["frame_index"]) == frame, where
    assert int(item["index"]) == global_index, where
    assert item["timestamp"].dtype == torch.float32 and float(item["timestamp"]) == float(np.float32(frame / rec.fps)), where
    for key, feature in rec.features.items():
        if feature["dtype"] in ("image", "video"):
            got = item[key].numpy()
            assert got.dtype == np.uint8 and got.shape == (3, *feature["shape"][:2]), f"{where} {key}: {got.dtype} {got.shape}"
            diff = np.abs(np.moveaxis(got, 0, -1).astype(int) - want[key].astype(int)).max()
            is_video = feature["dtype"] == "video" and rec.use_videos
            limit = video_max_err if is_video else 0
            assert diff <= limit, f"{where} {key}: max pixel error {diff} > {limit}"
        else:
            _same_tabular(key, item[key], want[key], feature, where)


def expected_positions(rec: Recording, episodes: Iterable[int] | None = None) -> list[tuple[int, int, int]]:
    """(episode, frame, global index) of each frame in dataset order."""
    out = []
    start = 0
    chosen = None if episodes is None else set(episodes)
    for e, episode in enumerate(rec.episodes):
        for i in range(episode.length):
            if chosen is None or e in chosen:
                out.append((e, i, start + i))
        start += episode.length
    return out


def check_dataset(ds: Dataset, rec: Recording, episodes: Iterable[int] | None = None) -> None:
    """Every frame of a uint8 map-style Dataset holds what was recorded."""
    positions = expected_positions(rec, episodes)
    assert len(ds) == len(positions)
    for pos, (e, i, g) in enumerate(positions):
        check_sample(ds[pos], rec, e, i, g)
