#!/usr/bin/env python
"""Run lerobot 0.4.4's own v2.1 -> v3.0 converter on a copy of a v2.1 dataset and dump what it wrote.

Runs in the lerobot 0.4.4 peer venv (the project's 0.4.4 harness: /work/shared/peer/setup.sh):

    PEER=~/.cache/lerobot-peer/venv/bin/python
    $PEER tests/peer033/convert_with_lerobot.py --src tests/data/v21_video --work /tmp/conv \\
        --data-mb 0.004 --video-mb 0.015 --out tests/data/v21_video.lerobot_converted.json

The JSON holds the converted info.json, stats.json, tasks (task -> task_index) and every
episodes-table row (stats columns included) as lerobot's converter wrote them; with
--dump-items it also holds what lerobot 0.4.4's LeRobotDataset returns for the
converted dataset at those indices (npz next to the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--data-mb", type=float, default=None)
    p.add_argument("--video-mb", type=float, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dump-items", default=None, help="comma separated indices read back with LeRobotDataset")
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    root = args.work / "local" / "v21"
    shutil.copytree(args.src, root)
    convert_dataset(
        repo_id="local/v21",
        root=str(args.work),
        push_to_hub=False,
        data_file_size_in_mb=args.data_mb,
        video_file_size_in_mb=args.video_mb,
    )
    rows = [r for f in sorted((root / "meta/episodes").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    out = {
        "info": json.loads((root / "meta/info.json").read_text()),
        "stats": json.loads((root / "meta/stats.json").read_text()),
        "tasks": {str(t): int(r.task_index) for t, r in tasks.iterrows()},
        "episodes": jsonable(rows),
        "files": sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file()),
    }
    if args.dump_items:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        ds = LeRobotDataset("local/v21", root=root, video_backend="pyav")
        arrays = {}
        for idx in [int(i) for i in args.dump_items.split(",")]:
            for key, value in ds[idx].items():
                arrays[f"item/{idx}/{key}"] = np.array(value) if isinstance(value, str) else value.numpy()
        np.savez_compressed(args.out.with_suffix(".npz"), **arrays)
    args.out.write_text(json.dumps(out, indent=1))
    print({"out": str(args.out), "episodes": len(rows), "files": len(out["files"])})


if __name__ == "__main__":
    main()
