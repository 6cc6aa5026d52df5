#!/usr/bin/env python
"""robostore.lerobot against lerobot itself, in the lerobot 0.6.1 venv (robostore from
PYTHONPATH): same metadata, and DataLoader batches equal key by key.

  PYTHONPATH=src:$PEER06_VENV-robostore-deps $PEER06_VENV/bin/python tests/peers/check_dropin.py \
      --root tests/data/depth_061 --indices 0,3,14,15,29 [--delta-timestamps JSON]

Prints a JSON report ({"problems": [...], "checked": {...}}); exits 1 when there are problems.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset as LerobotDataset  # noqa: E402

from robostore.lerobot import LeRobotDataset  # noqa: E402

FRAME_ATOL = 1 / 255 + 1e-6


def same(a: Any, b: Any, atol: float = 0.0) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if (
            not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor))
            or a.dtype != b.dtype
            or a.shape != b.shape
        ):
            return False
        return bool(np.allclose(a.numpy(), b.numpy(), atol=atol, rtol=0)) if atol else bool(torch.equal(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.asarray(a).shape == np.asarray(b).shape and np.allclose(
            np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-9
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], atol) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, atol) for x, y in zip(a, b, strict=True))
    return a == b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--indices", required=True)
    ap.add_argument("--delta-timestamps", default=None)
    args = ap.parse_args()
    deltas = json.loads(args.delta_timestamps) if args.delta_timestamps else None
    theirs = LerobotDataset("local/x", root=args.root, video_backend="pyav", delta_timestamps=deltas)
    ours = LeRobotDataset("local/x", root=args.root, delta_timestamps=deltas)
    problems: list[str] = []

    def check(what: str, a: Any, b: Any) -> None:
        if not same(a, b):
            problems.append(f"{what}: lerobot {a!r:.300} != robostore {b!r:.300}")

    m, r = theirs.meta, ours.meta
    for name in (
        "fps",
        "robot_type",
        "total_episodes",
        "total_frames",
        "total_tasks",
        "chunks_size",
        "camera_keys",
        "video_keys",
        "image_keys",
        "depth_keys",
        "names",
        "shapes",
        "features",
        "data_path",
        "video_path",
    ):
        check(f"meta.{name}", getattr(m, name), getattr(r, name))
    check("meta.stats keys", sorted(m.stats), sorted(r.stats))
    for key in m.stats:
        check(f"meta.stats[{key}]", {k: np.asarray(v) for k, v in m.stats[key].items()}, r.stats[key])
    check("meta.tasks", m.tasks.reset_index().to_dict("list"), r.tasks.reset_index().to_dict("list"))
    for column in m.episodes.column_names:
        if not column.startswith("stats/"):
            check(
                f"meta.episodes[{column}]",
                m.episodes[column],
                r.episodes[column] if column in r.episodes.column_names else None,
            )
    for name in ("num_frames", "num_episodes", "fps", "features", "delta_indices" if deltas else "fps"):
        check(
            name,
            getattr(theirs, name, None) if name != "delta_indices" else theirs._ensure_reader().delta_indices,
            getattr(ours, name),
        )
    check("len", len(theirs), len(ours))

    indices = [int(i) for i in args.indices.split(",")]
    batches = []
    for ds in (theirs, ours):
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(ds, indices), batch_size=len(indices), num_workers=2
        )
        batches.append(next(iter(loader)))
    a, b = batches
    check("batch keys", sorted(a), sorted(b))
    rgb = set(m.camera_keys) - set(m.depth_keys)
    for key in sorted(set(a) & set(b)):
        if not same(a[key], b[key], FRAME_ATOL if key in rgb else 0.0):
            problems.append(f"batch[{key}] differs")
    report = json.dumps({"problems": problems, "checked": {"indices": indices, "keys": sorted(a)}})
    print(report)
    if problems:
        sys.exit(report)


if __name__ == "__main__":
    main()
