"""Recording at scale: cost per episode from the first episode to the n-th, and opening big datasets.

    PYTHONPATH=src python benchmarks/record_scale.py [--episodes 10000] [--backends local,s3]
        [--open 100,10000,100000] [--skip-record] [--skip-open]

Part 1 (recording): 3-frame episodes (state, action, one 64x48 h264 camera),
``publish_every=1``, recorded as fast as the recorder takes them. Prints the rate
(episodes/s, by the time ``save_episode`` returns) over episodes 100-1,000 (the
baseline) and over the last 1,000, and their ratio (flat = 1.0), then ``close``.

Part 2 (opening): datasets of 100 / 10,000 / 100,000 episodes on S3 (moto, on
loopback) whose metadata are written directly through the project's writers (not
recorded: one data file and one mp4 shared by all episodes, episodes table and stats
as the recorder writes them). For each: ``DatasetMeta.open`` plus the first sample of
``Dataset``, and ``robostore info``, each in a fresh process (imports excluded), median
of 3, and the ratio to the 100-episode time.

Reports ``uptime``'s load average: figures taken on a loaded machine are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robostore import Recorder, VideoOptions  # noqa: E402

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": None},
    "action": {"dtype": "float32", "shape": [6], "names": None},
    "observation.images.cam": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def record(url: str, options: dict[str, Any], episodes: int, staging: str) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(8, 48, 64, 3), dtype=np.uint8)
    done = np.zeros(episodes + 1)
    rec = Recorder.create(
        url, fps=30, features=FEATURES, storage_options=options, video=VideoOptions.h264(), staging_dir=staging, publish_every=1
    )
    t0 = time.perf_counter()
    for e in range(episodes):
        for i in range(3):
            rec.add_frame(
                {
                    "observation.state": np.full(6, e + i, np.float32),
                    "action": np.full(6, -e, np.float32),
                    "observation.images.cam": images[(e + i) % 8],
                    "task": f"task {e % 5}",
                }
            )
        rec.save_episode()
        done[e + 1] = time.perf_counter() - t0
        if (e + 1) % 1000 == 0:
            print(f"  {e + 1} episodes, {done[e + 1]:.1f} s, load {load()}", file=sys.stderr)
    t1 = time.perf_counter()
    rec.close()
    close_s = time.perf_counter() - t1

    def rate(a: int, b: int) -> float:
        return (b - a) / (done[b] - done[a])

    base = (min(100, episodes // 10), min(1000, episodes))
    last = (max(base[0], episodes - 1000), episodes)
    return {"base": base, "last": last, "base_rate": rate(*base), "last_rate": rate(*last), "overall": episodes / done[-1], "close_s": close_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--open", default="100,10000,100000")
    parser.add_argument("--skip-record", action="store_true")
    parser.add_argument("--skip-open", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {load()}")
    if not args.skip_record:
        rows = []
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory(prefix="robostore-scale-") as tmp:
                if backend == "local":
                    result = record(os.path.join(tmp, "ds"), {}, args.episodes, os.path.join(tmp, "staging"))
                else:
                    from backends.s3.server import S3Server

                    with S3Server() as server:
                        url = f"s3://{server.new_bucket('bench')}/ds"
                        result = record(url, server.storage_options(), args.episodes, os.path.join(tmp, "staging"))
            rows.append((backend, result))
            print(f"{backend}: done, load {load()}", file=sys.stderr)
        print(f"\n{args.episodes} episodes of 3 frames, publish_every=1; load average after: {load()}\n")
        print("| backend | episodes/s overall | rate over episodes a-b (baseline) | rate over the last 1,000 | ratio | close s |")
        print("|---|---|---|---|---|---|")
        for backend, r in rows:
            print(
                f"| {backend} | {r['overall']:.1f} | {r['base_rate']:.1f} ({r['base'][0]}-{r['base'][1]}) | "
                f"{r['last_rate']:.1f} ({r['last'][0]}-{r['last'][1]}) | {r['last_rate'] / r['base_rate']:.2f}x | {r['close_s']:.2f} |"
            )


if __name__ == "__main__":
    main()
