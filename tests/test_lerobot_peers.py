"""Datasets robostore records open in the real lerobot with the recorded values.

Marked ``lerobot_peers``: they run lerobot 0.4.4 and 0.6.1 from the venvs of tests/peers/
(``bash tests/peers/lerobot044/setup.sh``, ``bash tests/peers/lerobot061/setup.sh``;
``.ci/run`` does both) and run with ``python -m pytest -m lerobot_peers``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fixture_data import DATA
from peers import dump, run_peer
from robostore import Dataset, Recorder, VideoOptions
from robostore.video.depth import DepthCodec

pytestmark = pytest.mark.lerobot_peers

FRAME_ATOL = 1 / 255 + 1e-6
H, W = 24, 32
EPISODES = (7, 5)
TASKS = ("pick the cube", "place the cube")
DEPTH_MM = "observation.images.depth"
DEPTH_M = "observation.images.depth_m"


def _depth_mm(ep: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (400 + 37 * yy + 11 * xx + 23 * t + 300 * ep).astype(np.uint16)


def _state(ep: int, t: int) -> np.ndarray:
    return np.array([t / 7, -ep, 0.1 * t * ep], dtype=np.float32)


def _rgb(ep: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return np.stack([(xx * 8 + t * 9) % 256, (yy * 10 + ep * 40) % 256, np.full_like(xx, 60 + 20 * t)], -1).astype(
        np.uint8
    )


def _record(root: Path, features: dict[str, Any], frame: Any, video: VideoOptions | None = None) -> None:
    with Recorder.create(str(root), fps=30, features=features, robot_type="peer_test", video=video) as rec:
        for ep, n in enumerate(EPISODES):
            for t in range(n):
                rec.add_frame({**frame(ep, t), "task": TASKS[ep % 2]})
            rec.save_episode()


def _compare(header: dict, arrays: dict[str, np.ndarray], ds: Dataset, exact_cameras: tuple[str, ...] = ()) -> None:
    """lerobot's dump equals robostore's samples: tabular, depth and language exactly,
    decoded RGB within one step of 1/255 (image features exactly)."""
    assert header["len"] == len(ds) == sum(EPISODES)
    for idx in header["indices"]:
        got = ds[idx]
        keys = header["item_keys"][str(idx)]
        assert sorted(got) == sorted(keys), idx
        json_values = header["json_values"].get(str(idx), {}) if "json_values" in header else {}
        for key in keys:
            if key in json_values:
                assert got[key] == json_values[key], (idx, key)
                continue
            want = arrays[f"item/{idx}/{key}"]
            if key == "task":
                assert got[key] == str(want)
                continue
            value = got[key].numpy()
            assert value.dtype == want.dtype and value.shape == want.shape, (
                idx,
                key,
                value.dtype,
                want.dtype,
                value.shape,
                want.shape,
            )
            if key in header["camera_keys"] and key not in exact_cameras:
                np.testing.assert_allclose(value, want, atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")
            else:
                np.testing.assert_array_equal(value, want, err_msg=f"{idx} {key}")


def test_depth_and_language_open_in_lerobot061(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    linear = DepthCodec(depth_min=0.2, depth_max=4.0, shift=0.5, use_log=False)
    features = {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
        "observation.images.rgb": {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
        DEPTH_MM: {"dtype": "video", "shape": (H, W, 1), "names": None, "info": {"is_depth_map": True}},
        DEPTH_M: {
            "dtype": "video",
            "shape": (H, W, 1),
            "names": None,
            "info": {"is_depth_map": True, "depth_unit": "m", **linear.info_entries()},
        },
        "language_persistent": {"dtype": "language", "shape": (1,), "names": None},
        "language_events": {"dtype": "language", "shape": (1,), "names": None},
    }

    def frame(ep: int, t: int) -> dict[str, Any]:
        say = {"type": "function", "function": {"name": "say", "arguments": {"text": f"step {t}"}}}
        return {
            "observation.state": _state(ep, t),
            "observation.images.rgb": _rgb(ep, t),
            DEPTH_MM: _depth_mm(ep, t),
            DEPTH_M: _depth_mm(ep, t).astype(np.float32) / 1000,
            "language_persistent": [
                {"role": "assistant", "content": f"episode {ep}", "style": "subtask", "timestamp": 0.0},
                *([{"role": "assistant", "content": "seen", "style": "memory", "timestamp": 2 / 30}] if t >= 2 else []),
            ],
            "language_events": [{"role": "assistant", "content": None, "style": None, "tool_calls": [say]}]
            if t == 3
            else None,
        }

    _record(root, features, frame)
    header, arrays = dump("0.6.1", root, tmp_path / "dump.npz", "--all")
    assert header["errors"] == {}
    _compare(header, arrays, Dataset(str(root)))
    # ... and lerobot's values are the recorded ones, through the 12-bit quantizer
    default = DepthCodec()
    for idx, (ep, t) in enumerate((ep, t) for ep, n in enumerate(EPISODES) for t in range(n)):
        source = _depth_mm(ep, t)
        np.testing.assert_array_equal(arrays[f"item/{idx}/{DEPTH_MM}"][0], default.decode(default.encode(source, "mm")))
        metres = source.astype(np.float32) / 1000
        np.testing.assert_array_equal(arrays[f"item/{idx}/{DEPTH_M}"][0], linear.decode(linear.encode(metres, "m")))
        assert np.abs(arrays[f"item/{idx}/{DEPTH_MM}"][0] - source).max() <= 0.0015 * source.max()
        np.testing.assert_array_equal(arrays[f"item/{idx}/observation.state"], _state(ep, t))
    events = header["json_values"]["3"]["language_events"]
    assert events[0]["tool_calls"][0]["function"]["arguments"] == {"text": "step 3"}
    assert header["json_values"]["4"]["language_persistent"][1]["timestamp"] == float(np.float32(2 / 30))
    assert header["stats"][DEPTH_MM]["min"] == [[[float(_depth_mm(0, 0).min())]]]  # stats in millimetres


def test_depth_deltas_in_lerobot061(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    features = {
        "action": {"dtype": "float32", "shape": (3,), "names": None},
        DEPTH_MM: {"dtype": "video", "shape": (H, W, 1), "names": None, "info": {"is_depth_map": True}},
    }
    _record(root, features, lambda ep, t: {"action": _state(ep, t), DEPTH_MM: _depth_mm(ep, t)})
    deltas = '{"observation.images.depth": [-0.0666667, 0, 0.0333333], "action": [0, 0.0333333]}'
    header, arrays = dump("0.6.1", root, tmp_path / "dump.npz", "--indices", "0,3,6,7,11", "--delta-timestamps", deltas)
    ds = Dataset(str(root), delta_timestamps={DEPTH_MM: [-2 / 30, 0, 1 / 30], "action": [0, 1 / 30]})
    _compare(header, arrays, ds)


@pytest.mark.parametrize(("version", "video"), [("0.4.4", "av1"), ("0.6.1", "av1"), ("0.4.4", "h264")])
def test_plain_dataset_opens_in_lerobot(tmp_path: Path, version: str, video: str) -> None:
    """Video and image cameras, vectors, scalars and bools, two tasks: the values lerobot
    returns are robostore's, and the recorded ones where the codec is lossless."""
    root = tmp_path / "ds"
    features = {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
        "observation.images.cam": {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": "image", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
    }

    def frame(ep: int, t: int) -> dict[str, Any]:
        return {
            "observation.state": _state(ep, t),
            "action": np.array([t * 0.5, ep], dtype=np.float32),
            "next.reward": np.float32(t / 10),
            "next.done": t == EPISODES[ep] - 1,
            "observation.images.cam": _rgb(ep, t),
            "observation.images.wrist": _rgb(ep, t)[::-1].copy(),
        }

    _record(root, features, frame, VideoOptions() if video == "av1" else VideoOptions.h264())
    header, arrays = dump(version, root, tmp_path / "dump.npz", "--all")
    assert header["errors"] == {} and header["versions"]["lerobot"] == version
    _compare(header, arrays, Dataset(str(root)), exact_cameras=("observation.images.wrist",))
    for idx, (ep, t) in enumerate((ep, t) for ep, n in enumerate(EPISODES) for t in range(n)):
        np.testing.assert_array_equal(arrays[f"item/{idx}/observation.state"], _state(ep, t))
        wrist = torch.from_numpy(_rgb(ep, t)[::-1].copy()).permute(2, 0, 1).numpy() / np.float32(255)
        np.testing.assert_array_equal(arrays[f"item/{idx}/observation.images.wrist"], wrist)


@pytest.mark.parametrize(
    ("name", "indices", "deltas"),
    [
        ("video_basic", "0,5,29,30,89", "delta_video.json"),
        ("image_basic", "0,5,14,15,29", None),
        ("depth_061", "0,3,14,15,29", "delta_depth.json"),
    ],
)
def test_dropin_matches_lerobot061(name: str, indices: str, deltas: str | None) -> None:
    """robostore.lerobot.LeRobotDataset beside lerobot's own, in lerobot 0.6.1: the same
    metadata (features, stats, tasks, episodes, keys) and the same DataLoader batches."""
    args = ["--root", str(DATA / name), "--indices", indices]
    if deltas:
        args += ["--delta-timestamps", (DATA / deltas).read_text()]
    report = json.loads(run_peer("0.6.1", "check_dropin.py", *args, with_robostore=True).strip().splitlines()[-1])
    assert report["problems"] == []
    assert "task" in report["checked"]["keys"]


def test_act_trains_on_a_robostore_dataset() -> None:
    """A tiny lerobot 0.6.1 ACT policy and its processors, built from robostore.lerobot's
    metadata, train 20 steps on robostore.lerobot.LeRobotDataset (DataLoader, 2 workers):
    finite losses, lower at the end than at the start (seeded: the same run every time)."""
    out = run_peer(
        "0.6.1", "train_act.py", "--root", str(DATA / "video_basic"), "--steps", "20", timeout=1500, with_robostore=True
    )
    losses = json.loads(out.strip().splitlines()[-1])["losses"]
    assert len(losses) == 20 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
