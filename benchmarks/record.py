"""Recording benchmark: 2 cameras at 480x640, 30 fps, against real time.

    PYTHONPATH=src python benchmarks/record.py [--backends local,s3] [--seconds 60]
        [--episodes 6] [--height 480] [--width 640] [--fps 30] [--codec libsvtav1]

For each backend (local disk; S3 = moto on loopback, started here) a control loop
paced at ``--fps`` records ``--seconds`` of synthetic frames split into ``--episodes``
episodes, as a robot would: one ``add_frame`` per tick, ``save_episode`` between
episodes, then ``close``. It prints a markdown table of:

* sustained fps and its ratio to real time (the baseline: ``--fps``), ticks missed;
* ``add_frame`` latency p50/p99/max, ``save_episode`` latency p50/max;
* the largest encoder backlog (frames queued, both cameras) seen at any tick;
* peak RSS and RSS after each episode (flat = memory does not grow with episodes);
* time for ``close`` to publish what was left, and the dataset's size.

Frames are made before the timed loop (a pool of 2 s of frames per camera), so the
loop measures the recorder, not the frame generator.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SVT_LOG", "1")

from robostore import Recorder, VideoOptions, validate
from robostore.backends import open_store
from robostore.record.demo import SyntheticRobot, demo_features


class PeakRSS:
    """Samples the process RSS every 50 ms on a thread."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(url: str, options: dict[str, Any], args: argparse.Namespace, frames: list[dict[str, Any]]) -> dict[str, Any]:
    fps = args.fps
    per_episode = int(args.seconds * fps) // args.episodes
    video = VideoOptions.h264() if args.codec == "libx264" else VideoOptions(codec=args.codec)
    add_ms: list[float] = []
    save_ms: list[float] = []
    rss_after: list[float] = []
    backlog = 0
    missed = 0
    proc = psutil.Process()
    with PeakRSS() as rss:
        rec = Recorder.create(
            url, fps=fps, features=demo_features(args.height, args.width), storage_options=options, video=video
        )
        period = 1.0 / fps
        t_start = time.perf_counter()
        next_tick = t_start
        for episode in range(args.episodes):
            for i in range(per_episode):
                now = time.perf_counter()
                if now < next_tick:
                    time.sleep(next_tick - now)
                elif now - next_tick > period:
                    missed += 1
                frame = dict(frames[i % len(frames)])
                frame["task"] = f"benchmark task {episode % 3}"
                t0 = time.perf_counter()
                rec.add_frame(frame)
                add_ms.append((time.perf_counter() - t0) * 1e3)
                backlog = max(backlog, rec.encoder_backlog)
                next_tick += period
            t0 = time.perf_counter()
            rec.save_episode()
            save_ms.append((time.perf_counter() - t0) * 1e3)
            rss_after.append(proc.memory_info().rss / 2**20)
        t_loop = time.perf_counter() - t_start
        t0 = time.perf_counter()
        rec.close()
        t_close = time.perf_counter() - t0
    total = per_episode * args.episodes
    report = validate(url, options, check_videos=False)
    size = sum(f.size for f in open_store(url, options).list_info(""))
    return {
        "frames": total,
        "fps": total / t_loop,
        "realtime": (total / t_loop) / fps,
        "missed": missed,
        "add_p50": float(np.percentile(add_ms, 50)),
        "add_p99": float(np.percentile(add_ms, 99)),
        "add_max": max(add_ms),
        "save_p50": float(np.percentile(save_ms, 50)),
        "save_max": max(save_ms),
        "backlog": backlog,
        "peak_rss": rss.peak / 2**20,
        "rss_after": rss_after,
        "close_s": t_close,
        "size_mb": size / 2**20,
        "valid": report.ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--codec", default="libsvtav1")
    args = parser.parse_args()

    robot = SyntheticRobot(args.height, args.width)
    frames = [robot.frame(0, i, args.fps) for i in range(2 * args.fps)]
    rows = []
    for backend in args.backends.split(","):
        if backend == "local":
            tmp = tempfile.mkdtemp(prefix="robostore-bench-")
            result = run(os.path.join(tmp, "ds"), {}, args, frames)
        elif backend == "s3":
            from backends.s3.server import S3Server

            with S3Server() as server:
                result = run(f"s3://{server.new_bucket('bench')}/ds", server.storage_options(), args, frames)
        else:
            raise SystemExit(f"unknown backend {backend!r} (local, s3)")
        rows.append((backend, result))
        print(f"{backend}: done", file=sys.stderr)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"\n2 cameras {args.height}x{args.width} {args.codec} at {args.fps} fps, {args.seconds:.0f} s in "
        f"{args.episodes} episodes, {cpus} CPU cores\n"
    )
    print(
        "| backend | fps (x real time) | ticks missed | add_frame p50 / p99 / max ms | save_episode p50 / max ms "
        "| max encoder backlog | peak RSS MB | RSS after each episode MB | close s | size MB | valid |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for backend, r in rows:
        print(
            f"| {backend} | {r['fps']:.1f} ({r['realtime']:.3f}x) | {r['missed']} | "
            f"{r['add_p50']:.2f} / {r['add_p99']:.2f} / {r['add_max']:.1f} | {r['save_p50']:.1f} / {r['save_max']:.1f} | "
            f"{r['backlog']} | {r['peak_rss']:.0f} | {' '.join(f'{x:.0f}' for x in r['rss_after'])} | "
            f"{r['close_s']:.2f} | {r['size_mb']:.1f} | {r['valid']} |"
        )


if __name__ == "__main__":
    main()
