"""The Recorder records depth cameras and language columns as lerobot 0.6.1 writes them.

That lerobot 0.6.1 reads them back with these values is checked in test_lerobot_peers.py
(``-m lerobot_peers``); here: what robostore reads back, the files' declared types, and
bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from robostore import Dataset, Recorder
from robostore.errors import SchemaError
from robostore.video.depth import DepthCodec

H, W = 16, 24
DEPTH = "observation.images.depth"


def _depth(t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (300 + 50 * yy + 7 * xx + 13 * t).astype(np.uint16)


def _features(**depth_info: Any) -> dict[str, Any]:
    return {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        DEPTH: {"dtype": "video", "shape": (H, W, 1), "names": None, "info": {"is_depth_map": True, **depth_info}},
        "language_persistent": {"dtype": "language", "shape": (1,), "names": None},
        "language_events": {"dtype": "language", "shape": (1,), "names": None},
    }


def test_depth_and_language_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    plan = {"role": "assistant", "content": "1. reach 2. grasp", "style": "plan", "timestamp": 0.1}
    call = {"type": "function", "function": {"name": "say", "arguments": {"text": "hi"}}}
    with Recorder.create(str(root), fps=10, features=_features()) as rec:
        for t in range(6):
            rec.add_frame(
                {
                    "observation.state": np.array([t, 1], np.float32),
                    DEPTH: _depth(t)[None] if t % 2 else _depth(t),  # [1, H, W] and [H, W] both taken
                    "language_persistent": [plan],
                    **(
                        {"language_events": [{"role": "assistant", "style": None, "tool_calls": [call]}]}
                        if t == 4
                        else {}
                    ),
                    "task": "look",
                }
            )
        rec.save_episode()

    info = json.loads((root / "meta/info.json").read_text())["features"][DEPTH]["info"]
    assert info["is_depth_map"] is True and info["depth_unit"] == "mm"
    assert (info["video.codec"], info["video.pix_fmt"], info["video.use_log"]) == ("hevc", "gray12le", True)
    with av.open(str(next((root / "videos" / DEPTH).rglob("*.mp4")))) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("hevc", "gray12le")

    codec = DepthCodec()
    ds = Dataset(str(root))
    for t in range(6):
        item = ds[t]
        assert item[DEPTH].dtype.is_floating_point and tuple(item[DEPTH].shape) == (1, H, W)
        # lossless 12-bit codes: exactly the quantizer's value of the recorded depth
        np.testing.assert_array_equal(item[DEPTH].numpy()[0], codec.decode(codec.encode(_depth(t), "mm")))
        assert np.abs(item[DEPTH].numpy()[0] - _depth(t)).max() <= 2  # log steps near 1 m: ~1.3 mm
        persistent = item["language_persistent"]
        assert persistent == [{**plan, "timestamp": float(np.float32(0.1)), "camera": None, "tool_calls": None}]
        events = item["language_events"]
        assert events == (
            [{"role": "assistant", "content": None, "style": None, "camera": None, "tool_calls": [call]}]
            if t == 4
            else []
        )

    table = pq.read_table(next((root / "data").rglob("*.parquet")))
    assert str(table.schema.field("language_persistent").type.value_type.field("timestamp").type) == "float"
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats[DEPTH]["min"] == [[[float(min(_depth(t).min() for t in range(6)))]]]  # millimetres, not / 255
    assert "language_persistent" not in stats


def test_depth_in_metres(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    linear = DepthCodec(0.1, 2.0, 0.5, False)
    features = {DEPTH: _features(depth_unit="m", **linear.info_entries())[DEPTH]}
    with Recorder.create(str(root), fps=10, features=features) as rec:
        for t in range(3):
            rec.add_frame({DEPTH: _depth(t).astype(np.float32) / 1000, "task": "look"})
        rec.save_episode()
    for t in range(3):
        metres = _depth(t).astype(np.float32) / 1000
        np.testing.assert_array_equal(
            Dataset(str(root))[t][DEPTH].numpy()[0], linear.decode(linear.encode(metres, "m"))
        )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (np.zeros((H, W), np.float32), "depth_unit is 'mm'"),
        (np.zeros((H, W, 3), np.uint16), "wrong shape"),
        (np.full((H, W), -1, np.int32), ">= 0"),
        ("far", "a depth map"),
    ],
)
def test_bad_depth_frames(tmp_path: Path, value: Any, why: str) -> None:
    with (
        Recorder.create(str(tmp_path / "ds"), fps=10, features={DEPTH: _features()[DEPTH]}) as rec,
        pytest.raises(SchemaError, match=why),
    ):
        rec.add_frame({DEPTH: value, "task": "look"})


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ("subtask", "a list of dicts"),
        ([{"content": "no role"}], "a list of dicts"),
        ([{"role": "user", "timestamp": "soon"}], "timestamp must be a finite number"),
        ([{"role": "user", "timestamp": 0.0, "mood": "happy"}], "unknown fields"),
        ([{"role": "user", "timestamp": 0.0, "tool_calls": "say hi"}], "'tool_calls' must be a list"),
        ([{"role": "user", "timestamp": 0.0, "content": 3}], "'content' must be a str"),
    ],
)
def test_bad_language_rows(tmp_path: Path, rows: Any, why: str) -> None:
    features = {"language_persistent": _features()["language_persistent"]}
    with Recorder.create(str(tmp_path / "ds"), fps=10, features=features) as rec, pytest.raises(SchemaError, match=why):
        rec.add_frame({"language_persistent": rows, "task": "talk"})


@pytest.mark.parametrize(
    ("feature", "use_videos", "why"),
    [
        ({"dtype": "video", "shape": (H, W, 1), "info": {"is_depth_map": True}}, False, "recorded as video"),
        ({"dtype": "image", "shape": (H, W, 1), "info": {"is_depth_map": True}}, True, "recorded as video"),
        ({"dtype": "video", "shape": (H, W, 3), "info": {"is_depth_map": True}}, True, r"\[height, width, 1\]"),
        (
            {"dtype": "video", "shape": (H, W, 1), "info": {"is_depth_map": True, "depth_unit": "cm"}},
            True,
            "depth_unit",
        ),
        (
            {"dtype": "video", "shape": (H, W, 1), "info": {"is_depth_map": True, "video.depth_max": 0.0}},
            True,
            "must exceed",
        ),
    ],
)
def test_bad_depth_features(tmp_path: Path, feature: dict, use_videos: bool, why: str) -> None:
    with pytest.raises(SchemaError, match=why):
        Recorder.create(str(tmp_path / "ds"), fps=10, features={DEPTH: feature}, use_videos=use_videos)
