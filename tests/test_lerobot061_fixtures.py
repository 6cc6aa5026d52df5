"""Datasets written by lerobot 0.6.1 (depth cameras, language columns) read as 0.6.1 reads them.

The fixtures in tests/data were made with tests/peers/make_depth_dataset.py and
make_language_dataset.py, their ``*.expected.npz`` with tests/peers/dump_dataset.py (see
tests/data/README.md): depth frames must equal lerobot's float32 millimetres exactly,
language rows must equal lerobot's lists of dicts.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fixture_data import DATA, expected
from robostore import Dataset, DatasetMeta, StreamingDataset
from robostore.errors import SchemaError
from robostore.schema import DatasetInfo
from robostore.video.depth import DepthCodec
from test_dataset import assert_item, open_dataset  # noqa: F401  (a fixture)

DEPTH = "observation.images.depth"
FIXTURES_061 = ("depth_061", "depth_linear_m_061", "language_061")


def assert_matches(got: dict, meta: dict, npz: np.lib.npyio.NpzFile, idx: int) -> None:
    """Every key of ``got`` equals lerobot's value: depth and tabular exactly, RGB within 1/255,
    language rows as the same lists of dicts."""
    rgb = [key for key in meta["camera_keys"] if key != DEPTH]
    json_values = meta.get("json_values", {}).get(str(idx), {})
    assert_item(got, npz, meta["item_keys"][str(idx)], idx, rgb, json_values)


@pytest.mark.parametrize("name", FIXTURES_061)
def test_matches_lerobot061(open_dataset, name: str) -> None:  # noqa: F811
    meta, npz = expected(name)
    ds = open_dataset(name)
    assert len(ds) == meta["len"]
    for idx in reversed(meta["indices"]):  # backwards: every sample is a fresh seek
        assert_matches(ds[idx], meta, npz, idx)


def test_depth_with_deltas_matches_lerobot061(open_dataset) -> None:  # noqa: F811
    meta, npz = expected("depth_061", delta=True)
    deltas = json.loads((DATA / "delta_depth.json").read_text())
    ds = open_dataset("depth_061", delta_timestamps=deltas)
    for idx in meta["indices"]:
        got = ds[idx]
        assert tuple(got[DEPTH].shape) == (2, 1, 48, 64)
        assert_matches(got, meta, npz, idx)


def test_depth_is_millimetres_even_with_return_uint8() -> None:
    """lerobot dequantizes depth whatever ``return_uint8`` says; RGB cameras stay uint8."""
    meta, npz = expected("depth_061.uint8")
    ds = Dataset(str(DATA / "depth_061"), return_uint8=True)
    for idx in meta["indices"]:
        assert_matches(ds[idx], meta, npz, idx)


def test_image_transforms_skip_depth() -> None:
    _, npz = expected("depth_061")
    seen: list[tuple[int, ...]] = []

    def transform(frame: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(frame.shape))
        return frame

    item = Dataset(str(DATA / "depth_061"), image_transforms=transform)[3]
    assert seen == [(3, 48, 64)]  # the RGB camera only, as lerobot
    np.testing.assert_array_equal(item[DEPTH].numpy(), npz[f"item/3/{DEPTH}"])


@pytest.mark.parametrize("name", FIXTURES_061)
def test_streaming_matches_lerobot061(name: str) -> None:
    meta, npz = expected(name)
    wanted = set(meta["indices"])
    seen = 0
    for item in StreamingDataset(str(DATA / name), shuffle=False):
        idx = int(item["index"])
        if idx in wanted:
            assert_matches(item, meta, npz, idx)
            seen += 1
    assert seen == len(wanted)


def test_metadata_keys() -> None:
    depth = DatasetMeta.open(str(DATA / "depth_061"))
    assert depth.depth_keys == [DEPTH]
    assert depth.rgb_camera_keys == ["observation.images.rgb"]
    assert depth.camera_keys == ["observation.images.rgb", DEPTH]
    language = DatasetMeta.open(str(DATA / "language_061"))
    assert language.language_keys == ["language_persistent", "language_events"]
    assert language.depth_keys == []


def test_depth_codec_table_follows_lerobots_float32_steps() -> None:
    """The 4096-entry table equals lerobot's tensor arithmetic (multiply, add, exp,
    subtract, clamp, x1000, round, clamp) for parameters other than the fixtures'."""
    for codec in (DepthCodec(), DepthCodec(0.0, 6.0, 0.25, True), DepthCodec(0.3, 4.0, 3.5, False)):
        lo, hi = math.log(codec.depth_min + codec.shift), math.log(codec.depth_max + codec.shift)
        scale, offset = (
            ((hi - lo) / 4095, lo) if codec.use_log else ((codec.depth_max - codec.depth_min) / 4095, codec.depth_min)
        )
        buf = torch.arange(4096, dtype=torch.int32).to(torch.float32).mul_(scale).add_(offset)
        if codec.use_log:
            buf.exp_().sub_(codec.shift)
        buf.clamp_(codec.depth_min, codec.depth_max).mul_(1000.0).round_().clamp_(0.0, 65535)
        np.testing.assert_array_equal(codec.millimetres_table, buf.numpy())
        # numpy's float32 exp (used without torch) is off by at most one step of rounding
        assert np.abs(codec._numpy_table(scale, offset) - buf.numpy()).max() <= 1


def test_depth_codec_round_trip() -> None:
    codec = DepthCodec()
    mm = np.array([0, 10, 500, 1234, 9999, 10000, 60000], dtype=np.uint16)
    back = codec.decode(codec.encode(mm, "mm"))
    assert back.dtype == np.float32
    inside = (mm >= 10) & (mm <= 10000)
    assert np.all(np.abs(back[inside] - mm[inside]) <= mm[inside] * 0.002 + 1)  # log steps: ~0.13 % of the depth
    assert back[0] == 10 and back[-1] == 10000  # clamped to [depth_min, depth_max]


@pytest.mark.parametrize(
    ("info", "why"),
    [
        ({"video.depth_min": 2.0, "video.depth_max": 1.0}, "must exceed"),
        ({"video.depth_min": -5.0, "video.shift": 1.0}, r"depth_min \+ shift > 0"),
        ({"video.use_log": "yes"}, "true or false"),
        ({"video.depth_max": "far"}, "finite numbers"),
    ],
)
def test_bad_depth_parameters_are_schema_errors(info: dict, why: str) -> None:
    with pytest.raises(SchemaError, match=why):
        DepthCodec.from_info(info, "features.depth.info")


def test_language_feature_needs_lerobots_column_name() -> None:
    raw = json.loads((DATA / "language_061/meta/info.json").read_text())
    raw["features"]["notes"] = raw["features"].pop("language_events")
    with pytest.raises(SchemaError, match="language features are named"):
        DatasetInfo.from_json(json.dumps(raw))
