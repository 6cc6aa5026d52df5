"""compute_stats reproduces the per-episode stats lerobot wrote into the fixtures."""

from __future__ import annotations

import io
import json

import numpy as np
import PIL.Image
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixture_data import fixture_path
from robostore.stats import (
    add_episode_stats,
    aggregate_stats,
    camera_sample_indices,
    compute_stats,
    downsample_for_stats,
)


def _episode_values(name: str):
    root = fixture_path(name)
    info = json.loads((root / "meta/info.json").read_text())
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    data = pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("data/*/*.parquet"))])
    for ep in episodes:
        rows = data.filter(pc.equal(data["episode_index"], ep["episode_index"]))
        yield info, ep, rows


def _values(info: dict, key: str, rows: pa.Table) -> np.ndarray:
    feature = info["features"][key]
    if key == "timestamp":
        # lerobot takes stats of frame_index / fps in float64, before the float32 cast.
        return np.arange(rows.num_rows) / info["fps"]
    column = rows.column(key)
    if feature["shape"] == [1]:
        return column.to_numpy().astype(feature["dtype"])
    return np.stack(column.to_numpy(zero_copy_only=False)).astype(feature["dtype"])


@pytest.mark.parametrize("name", ["image_basic", "video_basic", "multi_chunk"])
def test_tabular_stats_equal_lerobot_exactly(name: str) -> None:
    checked = 0
    for info, ep, rows in _episode_values(name):
        for key, feature in info["features"].items():
            if feature["dtype"] in ("image", "video"):
                continue
            for stat, value in compute_stats(_values(info, key, rows)).items():
                want = np.asarray(ep[f"stats/{key}/{stat}"])
                assert value.shape == want.shape, (key, stat)
                np.testing.assert_array_equal(value.astype(float), want.astype(float), err_msg=f"{name} {key} {stat}")
                checked += 1
    assert checked > 100


def test_camera_stats_equal_lerobot_except_its_wrapped_std() -> None:
    for _, ep, rows in _episode_values("image_basic"):
        frames = [
            np.asarray(PIL.Image.open(io.BytesIO(r["bytes"])))
            for r in rows.column("observation.images.cam0").to_pylist()
        ]
        sampled = np.stack(frames)[camera_sample_indices(len(frames))].transpose(0, 3, 1, 2)
        stats = compute_stats(sampled, camera=True)
        for stat, value in stats.items():
            want = np.asarray(ep[f"stats/observation.images.cam0/{stat}"])
            assert value.shape == want.shape
            if stat == "std":
                # lerobot 0.4 squares uint8 pixels without widening: its std is always 0.
                assert (want == 0).all()
                np.testing.assert_allclose(value.ravel(), (sampled / 255.0).std(axis=(0, 2, 3)), rtol=1e-9)
            else:
                np.testing.assert_array_equal(value, want, err_msg=stat)


def test_camera_sampling_and_downsampling_rules() -> None:
    assert camera_sample_indices(15).tolist() == list(range(15))
    idx = camera_sample_indices(1000)
    assert len(idx) == 177 and idx[0] == 0 and idx[-1] == 999
    assert downsample_for_stats(np.zeros((480, 640, 3))).shape == (120, 160, 3)
    assert downsample_for_stats(np.zeros((96, 128, 3))).shape == (96, 128, 3)


def test_single_frame_and_multidimensional_features() -> None:
    one = compute_stats(np.array([[1.0, 2.0]], dtype=np.float32))
    assert one["q50"].tolist() == [1.0, 2.0] and one["count"].tolist() == [1]
    grid = compute_stats(np.arange(24, dtype=np.float64).reshape(4, 2, 3))
    assert grid["mean"].shape == (2, 3) and grid["min"][1, 2] == 5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_at_the_dtype_limits_give_finite_stats(dtype: str) -> None:
    """FLT_MAX-style sentinels overflowed sums, squares and the histogram range: the
    writer thread died (``bins must increase monotonically``) or stats.json got nulls."""

    big = np.finfo(dtype).max
    for column in ([big], [big, -big, 1.0], [big, big, big, 0.5]):
        values = np.array(column, dtype=dtype).reshape(-1, 1)
        stats = compute_stats(values)
        for name, value in stats.items():
            assert np.isfinite(value).all(), (column, name, value)
            assert value.dtype == (np.int64 if name == "count" else np.dtype(dtype)), name
        assert stats["min"][0] == values.min() and stats["max"][0] == values.max()
        assert values.min() <= stats["mean"][0] <= values.max()
        assert all(values.min() <= stats[q][0] <= values.max() for q in ("q01", "q10", "q50", "q90", "q99"))
        assert np.isclose(stats["mean"][0] / big, (values.astype(np.float64) / big).mean())
        merged = aggregate_stats([{"f": stats}, {"f": stats}]).to_json_dict()["f"]
        assert all(v is not None and np.isfinite(v).all() for v in merged.values()), merged


def test_ordinary_values_keep_lerobots_native_precision() -> None:
    """The overflow fallback is not taken for ordinary data (stats stay float32 sums)."""
    values = np.linspace(-3, 7, 50, dtype=np.float32).reshape(-1, 1)
    assert compute_stats(values)["mean"][0] == np.mean(values)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.floats(-1e6, 1e6), st.floats(0.01, 1e3), st.integers(0, 2**31)),
        min_size=1,
        max_size=12,
    )
)
def test_running_stats_equal_stats_recomputed_from_scratch(episodes):
    """The recorder folds each episode into the running stats; the result equals aggregating all at once."""
    per_episode = []
    for length, center, spread, seed in episodes:
        rng = np.random.default_rng(seed)
        values = (center + spread * rng.standard_normal((length, 3))).astype(np.float32)
        per_episode.append({"x": compute_stats(values), "i": compute_stats(rng.integers(-5, 50, size=(length, 1)))})
    running = None
    for stats in per_episode:
        running = add_episode_stats(running, stats)
    assert running is not None
    incremental, scratch = running.to_json_dict(), aggregate_stats(per_episode).to_json_dict()
    assert incremental.keys() == scratch.keys()
    for key in scratch:
        for name in ("min", "max", "count"):
            assert incremental[key][name] == scratch[key][name], (key, name)
        for name in ("mean", "std", "q01", "q10", "q50", "q90", "q99"):
            scale = 1 + np.abs(scratch[key]["max"]).max() + np.abs(scratch[key]["min"]).max()
            np.testing.assert_allclose(
                incremental[key][name], scratch[key][name], rtol=1e-9, atol=1e-12 * scale, err_msg=f"{key} {name}"
            )
