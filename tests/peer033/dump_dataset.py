#!/usr/bin/env python
"""The v2.1 oracle: what lerobot 0.3.3's LeRobotDataset returns for a dataset folder, as an npz.

    ~/.cache/lerobot033-venv/bin/python tests/peer033/dump_dataset.py --root DIR --indices 0,5 \\
        [--delta-timestamps @delta.json] --out OUT.npz

Same npz layout as the v3.0 fixtures' dumps (tests/data/README.md): ``item/<index>/<key>``
arrays (``task`` as a 0-d unicode array) and ``__meta_json__`` with len, num_episodes, fps,
features, info, stats (lerobot's aggregate of episodes_stats.jsonl), tasks, episodes, indices,
delta_timestamps, delta_indices, item_keys, camera_keys.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--indices", required=True, help="comma separated, or 'all'")
    p.add_argument("--delta-timestamps", default=None, help="JSON or @file.json")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    delta = None
    if args.delta_timestamps:
        s = args.delta_timestamps
        delta = json.loads(Path(s[1:]).read_text() if s.startswith("@") else s)
    ds = LeRobotDataset("local/v21", root=args.root, delta_timestamps=delta, video_backend="pyav")
    indices = list(range(len(ds))) if args.indices == "all" else [int(i) for i in args.indices.split(",")]
    meta = ds.meta
    header = {
        "len": len(ds),
        "num_episodes": ds.num_episodes,
        "fps": ds.fps,
        "features": jsonable(ds.features),
        "camera_keys": meta.camera_keys,
        "info": jsonable(meta.info),
        "stats": jsonable(meta.stats),
        "tasks": {str(t): int(i) for i, t in meta.tasks.items()},
        "episodes": jsonable(list(meta.episodes.values())),
        "indices": indices,
        "delta_timestamps": delta,
        "delta_indices": ds.delta_indices,
        "item_keys": {},
    }
    arrays = {}
    for idx in indices:
        item = ds[idx]
        header["item_keys"][str(idx)] = sorted(item)
        for key, value in item.items():
            arrays[f"item/{idx}/{key}"] = np.array(value) if isinstance(value, str) else value.numpy()
    arrays["__meta_json__"] = np.array(json.dumps(header))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print({"out": str(args.out), "len": len(ds), "dumped": len(indices)})


if __name__ == "__main__":
    main()
