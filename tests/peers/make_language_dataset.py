#!/usr/bin/env python
"""Probe for a lerobot 0.6.1-only feature: the language annotation columns.

Copies a lerobot-written dataset (SRC) to DST, then runs lerobot 0.6.1's own annotation *writer*
(lerobot.annotations.steerable_pipeline: EpisodeStaging -> LanguageColumnsWriter.write_all ->
Executor._ensure_annotation_metadata_in_info) with hand-made rows instead of VLM output:
  language_persistent (per frame, same for the whole episode): a "subtask" and a "plan" row at frame 0,
                      a "memory" row at frame 2 (a timestamp that float32 rounds)
  language_events     (only on the frame whose timestamp matches): an "interjection" at frame 3, a speech
                      atom (tool_calls, no content) and a camera-tagged "vqa" row at frame 5
and reads frame 3 back with LeRobotDataset.

  .venv/bin/python make_language_dataset.py --src out/ds061 --dst out/ds_lang
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from lerobot.annotations.steerable_pipeline.executor import Executor  # noqa: E402
from lerobot.annotations.steerable_pipeline.reader import iter_episodes  # noqa: E402
from lerobot.annotations.steerable_pipeline.staging import EpisodeStaging  # noqa: E402
from lerobot.annotations.steerable_pipeline.writer import LanguageColumnsWriter, speech_atom  # noqa: E402
from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--dst", required=True, type=Path)
    args = ap.parse_args()
    if args.dst.exists():
        shutil.rmtree(args.dst)
    shutil.copytree(args.src, args.dst)
    root = args.dst
    staging_dir = root.parent / (root.name + ".staging")
    shutil.rmtree(staging_dir, ignore_errors=True)
    records = list(iter_episodes(root))
    for rec in records:
        ts = rec.frame_timestamps
        EpisodeStaging(staging_dir, rec.episode_index).write(
            "plan",
            [
                {
                    "role": "assistant",
                    "content": f"subtask of episode {rec.episode_index}",
                    "style": "subtask",
                    "timestamp": float(ts[0]),
                    "camera": None,
                    "tool_calls": None,
                },
                {
                    "role": "assistant",
                    "content": "1. reach 2. grasp 3. lift",
                    "style": "plan",
                    "timestamp": float(ts[0]),
                    "camera": None,
                    "tool_calls": None,
                },
                {
                    "role": "assistant",
                    "content": f"cube seen at step {rec.episode_index}",
                    "style": "memory",
                    "timestamp": float(ts[2]),
                    "camera": None,
                    "tool_calls": None,
                },
            ],
        )
        EpisodeStaging(staging_dir, rec.episode_index).write(
            "interjections",
            [
                {
                    "role": "user",
                    "content": "careful, slower",
                    "style": "interjection",
                    "timestamp": float(ts[3]),
                    "camera": None,
                    "tool_calls": None,
                },
                speech_atom(float(ts[5]), "grasping now"),
                {
                    "role": "assistant",
                    "content": "the cube is red",
                    "style": "vqa",
                    "timestamp": float(ts[5]),
                    "camera": "observation.images.cam0",
                    "tool_calls": None,
                },
            ],
        )
    written = LanguageColumnsWriter().write_all(records, staging_dir, root)
    Executor._ensure_annotation_metadata_in_info(root)
    shutil.rmtree(staging_dir, ignore_errors=True)
    ds = LeRobotDataset("local/lang", root=root, video_backend="pyav")
    item = ds[3]
    print(
        json.dumps(
            {
                "written": [str(p) for p in written],
                "len": len(ds),
                "features_added": {k: v for k, v in ds.meta.features.items() if k.startswith("language")},
                "tools": ds.meta.info.tools,
                "item3_language_persistent": item.get("language_persistent"),
                "item3_language_events": item.get("language_events"),
                "item3_keys": sorted(item),
            },
            default=str,
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
