"""Shared pieces of the recording tests: features, synthetic frames, reading back."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.parquet as pq

from robostore.meta import DatasetMeta
from robostore.video import VideoOptions, VideoReader

H, W, FPS = 32, 48, 30
#: Near-lossless H.264 so decoded frames can be compared tightly and quickly.
LOSSLESS = VideoOptions.h264(crf=0, pix_fmt="yuv444p")

FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
    "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
    "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    "observation.images.front": {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "image", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
}


def image(episode: int, i: int, seed: int = 0) -> np.ndarray:
    """A smooth moving pattern, distinct per frame and episode."""
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack(
        [
            (xx * 5 + i * 7 + episode * 30 + seed) % 256,
            (yy * 6 + i * 3) % 256,
            np.full_like(xx, (i * 11 + episode * 50) % 256),
        ],
        -1,
    ).astype(np.uint8)


def frame(episode: int, i: int, task: str, length: int = 10**9) -> dict[str, Any]:
    return {
        "observation.state": np.arange(6, dtype=np.float32) * 0.1 + i + episode * 100,
        "action": -np.arange(6, dtype=np.float32) - i * 0.5,
        "next.done": np.array([i == length - 1]),
        "observation.images.front": image(episode, i),
        "observation.images.wrist": image(episode, i, seed=90),
        "task": task,
    }


def record_episode(rec: Any, episode: int, length: int, task: str = "pick") -> int:
    for i in range(length):
        rec.add_frame(frame(episode, i, task, length))
    return rec.save_episode()


def read_data(url: str, options: dict | None = None) -> pa.Table:
    meta = DatasetMeta.open(url, options)
    return pa.concat_tables([pq.read_table(meta.store.open(p)) for p in meta.data_files()])


def decode_episode(url: str, episode: int, key: str, options: dict | None = None) -> np.ndarray:
    meta = DatasetMeta.open(url, options)
    span = meta.video_span(episode, key)
    length = meta.episode(episode).length
    with meta.store.open(span.path) as fh, VideoReader(fh, span.path) as video:
        times = [span.from_timestamp + i / meta.fps for i in range(length)]
        return video.frames_at(times)


def png(data: bytes) -> np.ndarray:
    return np.asarray(PIL.Image.open(io.BytesIO(data)))


def check_values(
    url: str, lengths: dict[int, int], tasks: dict[int, str], max_err: float = 1.0, options: dict | None = None
) -> None:
    """Every recorded episode reads back: tabular exactly, video within ``max_err``."""
    table = read_data(url, options)
    meta = DatasetMeta.open(url, options)
    for episode, length in lengths.items():
        rows = table.filter(pa.compute.equal(table["episode_index"], episode)).to_pylist()
        assert len(rows) == length
        start = meta.frame_range(episode)[0]
        for i, row in enumerate(rows):
            want = frame(episode, i, tasks[episode], length)
            np.testing.assert_array_equal(np.array(row["observation.state"], np.float32), want["observation.state"])
            np.testing.assert_array_equal(np.array(row["action"], np.float32), want["action"])
            assert row["next.done"] == bool(want["next.done"][0])
            assert row["frame_index"] == i and row["index"] == start + i
            assert row["timestamp"] == np.float32(i / FPS)
            assert meta.task(row["task_index"]) == tasks[episode]
            np.testing.assert_array_equal(
                png(row["observation.images.wrist"]["bytes"]), want["observation.images.wrist"]
            )
        decoded = decode_episode(url, episode, "observation.images.front", options).astype(float)
        expected = np.stack([image(episode, i) for i in range(length)]).astype(float)
        assert np.abs(decoded - expected).mean() <= max_err, np.abs(decoded - expected).mean()
