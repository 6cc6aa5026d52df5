"""Checking what Dataset and StreamingDataset read back against a :class:`~recording.Recording`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from recording import VIDEO_MAX_ERR, Recording, frame_values
from robostore.torch import Dataset


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
    assert item["timestamp"].dtype == torch.float32 and float(item["timestamp"]) == float(
        np.float32(frame / rec.fps)
    ), where
    for key, feature in rec.features.items():
        if feature["dtype"] in ("image", "video"):
            got = item[key].numpy()
            assert got.dtype == np.uint8 and got.shape == (3, *feature["shape"][:2]), (
                f"{where} {key}: {got.dtype} {got.shape}"
            )
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
