#!/usr/bin/env python
"""Write a LeRobot v2.1 dataset with lerobot 0.3.3's own recording API (the tests/data/v21_* fixtures).

    LeRobotDataset.create(...) -> add_frame(frame, task=...) -> save_episode()

Deterministic content (only the arguments decide it): state/action are sines per episode,
cameras a drifting colour gradient with a white 8x8 marker whose column encodes the frame.
Run with the venv tests/peer033/setup.sh builds:

    ~/.cache/lerobot033-venv/bin/python tests/peer033/make_dataset.py --root /tmp/v21/video \\
        --lengths 30,20,40 --cameras 2 --video --tasks-per-episode 2 --chunks-size 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# save_episode orders an episode's new tasks through set(): fix str hashing for stable output.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") is None:
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.datasets.utils import write_info

TASKS = ["pick up the red cube", "place the cube in the bowl", "open the drawer", "wipe the table"]


def state_at(ep: int, t: int, dim: int, fps: int) -> np.ndarray:
    rng = np.random.default_rng([7, ep])
    phase, freq = rng.uniform(0, 2 * np.pi, size=dim), rng.uniform(0.2, 1.5, size=dim)
    return (np.sin(2 * np.pi * freq * t / fps + phase) + 0.1 * ep).astype(np.float32)


def camera_frame(cam: int, ep: int, t: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shift = 2.0 * t + 7.0 * ep + 40.0 * cam
    img = np.stack(
        [
            127.5 + 100.0 * np.sin(2 * np.pi * (xx + shift) / w),
            127.5 + 100.0 * np.sin(2 * np.pi * (yy + 0.5 * shift) / h),
            127.5 + 100.0 * np.cos(2 * np.pi * (xx + yy + shift) / (w + h)),
        ],
        axis=-1,
    )
    x0 = (t % max(w // 8, 1)) * 8
    y0 = (cam * 8) % max(h - 7, 1)
    img[y0 : y0 + 8, x0 : x0 + 8, :] = 255.0
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--lengths", default="30,20,40")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--height", type=int, default=48)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--video", action="store_true", help="cameras as dtype video (else image: PNG in parquet)")
    p.add_argument("--extras", action="store_true", help="next.reward float32 [1] and next.done bool [1]")
    p.add_argument("--tasks-per-episode", type=int, default=1)
    p.add_argument("--chunks-size", type=int, default=None)
    p.add_argument("--vcodec", default="libsvtav1")
    args = p.parse_args()
    if args.root.exists():
        shutil.rmtree(args.root)
    dim = 6
    features = {
        "observation.state": {"dtype": "float32", "shape": (dim,), "names": [f"joint_{i}" for i in range(dim)]},
        "action": {"dtype": "float32", "shape": (dim,), "names": [f"joint_{i}" for i in range(dim)]},
    }
    if args.extras:
        features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
        features["next.done"] = {"dtype": "bool", "shape": (1,), "names": None}
    cams = [f"observation.images.cam{k}" for k in range(args.cameras)]
    for key in cams:
        features[key] = {
            "dtype": "video" if args.video else "image",
            "shape": (args.height, args.width, 3),
            "names": ["height", "width", "channels"],
        }
    ds = LeRobotDataset.create(
        repo_id="local/v21",
        fps=args.fps,
        features=features,
        root=args.root,
        robot_type="peer_sim",
        use_videos=args.video,
        video_backend="pyav",
    )
    if args.chunks_size:
        ds.meta.info["chunks_size"] = args.chunks_size
        write_info(ds.meta.info, ds.meta.root)
    lengths = [int(x) for x in args.lengths.split(",")]
    for ep, n in enumerate(lengths):
        for t in range(n):
            part = min(t * args.tasks_per_episode // n, args.tasks_per_episode - 1)
            frame = {
                "observation.state": state_at(ep, t, dim, args.fps),
                "action": state_at(ep, t + 1, dim, args.fps) + np.float32(0.01),
            }
            if args.extras:
                frame["next.reward"] = np.array([float(t == n - 1)], dtype=np.float32)
                frame["next.done"] = np.array([t == n - 1], dtype=bool)
            for k, key in enumerate(cams):
                frame[key] = camera_frame(k, ep, t, args.height, args.width)
            ds.add_frame(frame, task=TASKS[(ep + part) % len(TASKS)])
        ds.save_episode()
    shutil.rmtree(args.root / "images", ignore_errors=True)
    check = LeRobotDataset("local/v21", root=args.root, video_backend="pyav")
    print({"root": str(args.root), "len": len(check), "episodes": check.num_episodes, "keys": sorted(check[0])})


if __name__ == "__main__":
    main()
