#!/usr/bin/env python
"""Oracle dump: open a dataset folder with lerobot's own LeRobotDataset and dump what it returns.

Runs under lerobot 0.4.4 and 0.6.1 (the peer venvs of lerobot044/ and lerobot061/). Differences
absorbed here: in 0.6.1 meta.info is a DatasetInfo dataclass (dumped via .to_dict()), the video backend
and delta_indices live on the DatasetReader (ds._video_backend, ds.reader.delta_indices).
--return-uint8 (LeRobotDataset(return_uint8=True), 0.6.1 only): frames come back uint8 CxHxW;
--video-backend torchcodec: lerobot 0.6.1's default when torchcodec loads (default here stays pyav).
Values that are not tensors or strings (0.6.1's language columns: lists of dicts) go to the header's
"json_values" ({"<idx>": {"<key>": value}}) instead of the arrays.

  python dump_dataset.py --root out/ds_video --indices 0,5,17 --out out/dump.npz
  python dump_dataset.py --root out/ds_video --all --out out/dump.json \
      --delta-timestamps '{"action": [0, 0.0333333, 0.0666667], "observation.images.cam0": [-0.0333333, 0]}'
  (--delta-timestamps also accepts @path/to/file.json)

Output
------
.npz : one array per returned value, named  "item/<idx>/<key>"  (tensors -> numpy with their dtype,
       strings -> 0-d unicode array), plus "__meta_json__" (0-d unicode array holding the JSON header
       described below).  Load with np.load(path, allow_pickle=False).
.json: {"meta": <header>, "items": {"<idx>": {"<key>": {"dtype", "shape", "data"} | "<str>"}}}

Header ("meta"): lerobot/torch/av versions, root, video_backend, tolerance_s, delta_timestamps,
delta_indices, len(ds), num_frames, num_episodes, fps, features, video_keys, image_keys, camera_keys,
meta.info (info.json as lerobot loaded it), meta.stats (all values as nested lists) and its keys,
meta.tasks (task string -> task_index), meta.episodes (all non "stats/" columns, one dict per episode),
the indices dumped, and per-index errors (exception type + message) if lerobot raised for an index.

Conventions of what lerobot returns (v0.4.4 and v0.6.1): camera frames are float32 CxHxW in [0,1]; scalars
(shape (1,) features) come back as 0-d tensors; "task" is a str; "<key>_is_pad" are bool tensors
present only for keys listed in delta_timestamps.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import sys
import traceback
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import contextlib

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def to_jsonable(x):
    if dataclasses.is_dataclass(x) and not isinstance(x, type):  # e.g. lerobot 0.6.1 DatasetInfo
        return to_jsonable(x.to_dict() if hasattr(x, "to_dict") else dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return x.tolist()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return x


def value_to_numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    if isinstance(v, str):
        return np.array(v)
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, (bool, int, float)):
        return np.array(v)
    raise TypeError(f"unsupported value type {type(v)}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--repo-id", default="local/x")
    p.add_argument("--delta-timestamps", default=None, help="JSON dict or @file.json")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--indices", default=None, help="comma separated dataset indices (default: 0)")
    g.add_argument("--all", action="store_true", help="dump every index")
    p.add_argument("--episodes", default=None, help="comma separated episode indices -> LeRobotDataset(episodes=...)")
    p.add_argument("--tolerance-s", type=float, default=1e-4, help="lerobot default 1e-4")
    p.add_argument("--video-backend", default="pyav", help="pyav (default) | torchcodec")
    p.add_argument("--return-uint8", action="store_true", help="LeRobotDataset(return_uint8=True) (new in 0.6.1)")
    p.add_argument("--out", required=True, type=Path, help="FILE.npz or FILE.json")
    p.add_argument("--strict", action="store_true", help="re-raise lerobot errors instead of recording them")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    delta = None
    if args.delta_timestamps:
        s = args.delta_timestamps
        delta = json.loads(Path(s[1:]).read_text() if s.startswith("@") else s)
    episodes = [int(e) for e in args.episodes.split(",")] if args.episodes else None

    extra = {"return_uint8": True} if args.return_uint8 else {}  # 0.4.4 has no such argument
    ds = LeRobotDataset(
        repo_id=args.repo_id,
        root=args.root,
        episodes=episodes,
        delta_timestamps=delta,
        tolerance_s=args.tolerance_s,
        video_backend=args.video_backend,
        **extra,
    )

    if args.all:
        indices = list(range(len(ds)))
    elif args.indices:
        indices = [int(i) for i in args.indices.split(",") if i.strip()]
    else:
        indices = [0]

    import av
    import lerobot

    meta = ds.meta
    ep_cols = [c for c in meta.episodes.column_names if not c.startswith("stats/")]
    episodes_rows = [to_jsonable({c: row[c] for c in ep_cols}) for row in meta.episodes]
    versions = {"lerobot": lerobot.__version__, "torch": torch.__version__, "av": av.__version__}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["torchcodec"] = importlib.metadata.version("torchcodec")
    reader = ds._ensure_reader() if hasattr(ds, "_ensure_reader") else ds
    header = {
        "versions": versions,
        "root": str(args.root),
        "video_backend": getattr(ds, "_video_backend", getattr(ds, "video_backend", None)),
        "return_uint8": args.return_uint8,
        "tolerance_s": ds.tolerance_s,
        "episodes_arg": episodes,
        "delta_timestamps": delta,
        "delta_indices": getattr(reader, "delta_indices", None),
        "len": len(ds),
        "num_frames": ds.num_frames,
        "num_episodes": ds.num_episodes,
        "fps": ds.fps,
        "features": to_jsonable(ds.features),
        "video_keys": meta.video_keys,
        "image_keys": meta.image_keys,
        "camera_keys": meta.camera_keys,
        "info": to_jsonable(meta.info),
        "stats_keys": {k: sorted(v) for k, v in (meta.stats or {}).items()},
        "stats": to_jsonable(meta.stats),
        "tasks": {str(t): int(r.task_index) for t, r in meta.tasks.iterrows()},
        "episodes": episodes_rows,
        "indices": indices,
        "errors": {},
        "item_keys": {},
        "json_values": {},
    }

    arrays: dict[str, np.ndarray] = {}
    items_json: dict[str, dict] = {}
    for idx in indices:
        try:
            item = ds[idx]
        except Exception as e:  # record lerobot's own failure as part of the oracle
            if args.strict:
                raise
            header["errors"][str(idx)] = f"{type(e).__name__}: {e}"
            traceback.print_exc(file=sys.stderr)
            continue
        header["item_keys"][str(idx)] = sorted(item)
        rec = {}
        for k, v in item.items():
            if v is None or isinstance(v, (list, dict)):
                header["json_values"].setdefault(str(idx), {})[k] = to_jsonable(v)
                rec[k] = {"json": to_jsonable(v)}
                continue
            a = value_to_numpy(v)
            arrays[f"item/{idx}/{k}"] = a
            if a.dtype.kind == "U":
                rec[k] = str(a)
            else:
                rec[k] = {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.tolist()}
        items_json[str(idx)] = rec

    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".json":
        args.out.write_text(json.dumps({"meta": header, "items": items_json}))
    elif args.out.suffix == ".npz":
        arrays["__meta_json__"] = np.array(json.dumps(header))
        np.savez_compressed(args.out, **arrays)
    else:
        sys.exit("--out must end with .npz or .json")

    print(
        json.dumps(
            {
                "out": str(args.out),
                "len": header["len"],
                "num_episodes": header["num_episodes"],
                "dumped": len(items_json),
                "errors": len(header["errors"]),
                "keys": header["item_keys"].get(str(indices[0])) if indices else None,
            }
        )
    )


if __name__ == "__main__":
    main()
