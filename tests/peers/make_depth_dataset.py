#!/usr/bin/env python
"""Probe for a lerobot 0.6.1-only feature: a depth camera (dtype "video", shape (H, W, 1),
info {"is_depth_map": True}), quantized to 12 bit and encoded as HEVC gray12le by lerobot's
DepthEncoderConfig; plus one RGB video camera, state and action.

  .venv/bin/python make_depth_dataset.py --root out/ds_depth [--episodes 2 --frames 15 --height 48 --width 64]
      [--metres] [--linear --depth-min 0.2 --depth-max 3.0 --shift 0.5]

Depth frames are uint16 millimetres: a smooth ramp 500..2500 mm that drifts with t (with --metres:
the same ramp as float32 metres, so lerobot records depth_unit "m"). --linear/--depth-min/--depth-max/
--shift set lerobot's DepthEncoderConfig (default: its defaults, logarithmic 0.01..10 m, shift 3.5 m).
Prints lerobot's own read-back of frame 0 (shape/dtype/min/max of the depth tensor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from lerobot.configs.video import DepthEncoderConfig
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def depth_frame(ep: int, t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mm = 500 + 2000 * ((xx + yy + 2 * t + 5 * ep) % (w + h)) / (w + h)
    return mm.astype(np.uint16)[..., None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--frames", type=int, default=15)
    ap.add_argument("--height", type=int, default=48)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--metres", action="store_true", help="record float32 metres instead of uint16 mm")
    ap.add_argument("--linear", action="store_true", help="linear quantization (default: logarithmic)")
    ap.add_argument("--depth-min", type=float, default=None)
    ap.add_argument("--depth-max", type=float, default=None)
    ap.add_argument("--shift", type=float, default=None)
    args = ap.parse_args()
    tuning = {
        k: v
        for k, v in (("depth_min", args.depth_min), ("depth_max", args.depth_max), ("shift", args.shift))
        if v is not None
    }
    depth_encoder = DepthEncoderConfig(use_log=not args.linear, **tuning)
    if args.root.exists():
        shutil.rmtree(args.root)
    h, w = args.height, args.width
    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["a", "b"]},
        "observation.images.rgb": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.images.depth": {
            "dtype": "video",
            "shape": (h, w, 1),
            "names": ["height", "width", "channels"],
            "info": {"is_depth_map": True},
        },
    }
    ds = LeRobotDataset.create(
        repo_id="local/depth",
        fps=30,
        features=features,
        root=args.root,
        robot_type="peer_sim",
        use_videos=True,
        video_backend="pyav",
        depth_encoder=depth_encoder,
    )
    for ep in range(args.episodes):
        for t in range(args.frames):
            rgb = np.full((h, w, 3), (t * 8 + ep * 40) % 256, dtype=np.uint8)
            ds.add_frame(
                {
                    "observation.state": np.array([t, ep], np.float32),
                    "action": np.array([t + 1, ep], np.float32),
                    "observation.images.rgb": rgb,
                    "observation.images.depth": (
                        depth_frame(ep, t, h, w).astype(np.float32) / 1000 if args.metres else depth_frame(ep, t, h, w)
                    ),
                    "task": "look at the depth",
                }
            )
        ds.save_episode(parallel_encoding=False)
    ds.finalize()
    check = LeRobotDataset(repo_id="local/depth", root=args.root, video_backend="pyav")
    item = check[0]
    d = item["observation.images.depth"]
    exp = depth_frame(0, 0, h, w)[..., 0].astype(np.float32)
    print(
        json.dumps(
            {
                "len": len(check),
                "depth_keys": check.meta.depth_keys,
                "depth_shape": list(d.shape),
                "depth_dtype": str(d.dtype),
                "depth_min": float(d.min()),
                "depth_max": float(d.max()),
                "depth_mae_vs_source_mm": float(np.abs(d.numpy()[0] - exp).mean()),
                "depth_info": check.meta.features["observation.images.depth"].get("info"),
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
