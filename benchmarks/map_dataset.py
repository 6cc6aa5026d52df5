#!/usr/bin/env python
"""Throughput of robostore.Dataset behind a DataLoader, against PyAV's own rate and lerobot.

Generates a synthetic LeRobot v3.0 video dataset (default 50 episodes x 200 frames,
2 cameras 240x320, AV1 GOP 2 crf 30 like lerobot, one mp4 per camera), then for
num_workers in --workers and delta_timestamps off/on (action: 10 future steps, state and
each camera: [-1/fps, 0], as peer/bench_lerobot.py uses) pulls --samples samples from
DataLoader(shuffle=True, batch_size=32) and reports samples/s (median of --repeat runs),
twice: "per-sample" (the dataset behind a wrapper without ``__getitems__``: the
DataLoader fetches samples one by one and collates them, as before batches were built)
and "batched" (``Dataset.__getitems__``: the batch built per column). Frames are
camera-like scenes (benchmarks/scenes.py), not flat patterns.

The ceiling is PyAV itself on the same files, one thread: per sample and camera, a
random seek to the keyframe before the wanted frame, decode forward to it (and to the
previous frame too with deltas) and convert to RGB (what any reader must do to hand out
pixels, through one single-threaded reformatter: the fastest way PyAV has). Figures of merit printed at the end:

* workers=2 samples/s / (2 x single-thread ceiling)  (target >= 0.5)
* s3 / local                                          (--s3, target >= 0.7)
* robostore / lerobot                                 (--lerobot, target >= 3)

    PYTHONPATH=src python benchmarks/map_dataset.py --s3 --lerobot
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import DataLoader

from robostore import Dataset
from robostore.layout import episodes_file
from robostore.meta import DatasetMeta
from robostore.parquet import to_parquet_bytes
from robostore.schema.arrow import data_schema
from robostore.stats import aggregate_stats, compute_stats

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import Room, Scene

CAMERAS = ("observation.images.front", "observation.images.wrist")
FPS = 30
TIME_BASE = Fraction(1, 15360)
PEER_VENV = Path.home() / ".cache/lerobot-peer/venv/bin/python"
PEER_BENCH = Path("/work/shared/peer/bench_lerobot.py")


# ---------------------------------------------------------------------- dataset


def generate(root: Path, episodes: int, frames: int, height: int, width: int) -> None:
    """Write the synthetic dataset at ``root`` (PyAV for the mp4s, robostore.meta for meta/)."""
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
        **{
            cam: {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"]}
            for cam in CAMERAS
        },
    }
    meta = DatasetMeta.create(str(root), fps=FPS, features=features, robot_type="synthetic")
    info = meta.info
    tasks = ["pick the cube", "open the drawer", "stack the blocks"]
    rng = np.random.default_rng(0)
    n = episodes * frames
    ep_col = np.repeat(np.arange(episodes), frames)
    fi = np.tile(np.arange(frames), episodes)
    state = rng.standard_normal((n, 6)).astype(np.float32).cumsum(0) / 10
    action = state + rng.standard_normal((n, 6)).astype(np.float32) / 100
    columns = {
        "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 6),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(action.ravel()), 6),
        "timestamp": pa.array((fi / FPS).astype(np.float32)),
        "frame_index": pa.array(fi.astype(np.int64)),
        "episode_index": pa.array(ep_col.astype(np.int64)),
        "index": pa.array(np.arange(n, dtype=np.int64)),
        "task_index": pa.array((ep_col % len(tasks)).astype(np.int64)),
    }
    schema = data_schema(info.features)
    table = pa.table([columns[f.name] for f in schema], schema=schema)
    data_path = info.data_file(0, 0)
    meta.store.write(data_path, to_parquet_bytes(table, row_group_size=frames))

    cam_stats: dict[str, list[dict]] = {cam: [] for cam in CAMERAS}
    for cam in CAMERAS:
        room = Room(rng, height, width)
        out = root / info.video_file(cam, 0, 0)
        out.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(out), "w") as container:
            stream = container.add_stream("libsvtav1", rate=FPS, options={"g": "2", "crf": "30", "preset": "12"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.time_base = TIME_BASE
            ticks = int(1 / (FPS * TIME_BASE))
            for ep in range(episodes):
                scene = Scene(room, rng)
                pics = [scene.frame(i) for i in range(frames)]
                cam_stats[cam].append(
                    compute_stats(np.stack(pics[:: max(1, frames // 20)]).transpose(0, 3, 1, 2) / 255, camera=True)
                )
                for i, pic in enumerate(pics):
                    frame = av.VideoFrame.from_ndarray(pic, format="rgb24")
                    frame.pts = (ep * frames + i) * ticks
                    frame.time_base = TIME_BASE
                    container.mux(stream.encode(frame))
            container.mux(stream.encode())

    per_episode = []
    for ep in range(episodes):
        sl = slice(ep * frames, (ep + 1) * frames)
        stats = {
            "observation.state": compute_stats(state[sl]),
            "action": compute_stats(action[sl]),
            "timestamp": compute_stats(fi[sl] / FPS),
            "frame_index": compute_stats(fi[sl]),
            "episode_index": compute_stats(ep_col[sl]),
            "index": compute_stats(np.arange(sl.start, sl.stop)),
            "task_index": compute_stats(ep_col[sl] % len(tasks)),
            **{cam: cam_stats[cam][ep] for cam in CAMERAS},
        }
        per_episode.append(stats)
    span = frames / FPS
    rows: dict[str, list] = {
        "episode_index": list(range(episodes)),
        "tasks": [[tasks[ep % len(tasks)]] for ep in range(episodes)],
        "length": [frames] * episodes,
        "data/chunk_index": [0] * episodes,
        "data/file_index": [0] * episodes,
        "dataset_from_index": [ep * frames for ep in range(episodes)],
        "dataset_to_index": [(ep + 1) * frames for ep in range(episodes)],
    }
    for cam in CAMERAS:
        rows[f"videos/{cam}/chunk_index"] = [0] * episodes
        rows[f"videos/{cam}/file_index"] = [0] * episodes
        rows[f"videos/{cam}/from_timestamp"] = [ep * span for ep in range(episodes)]
        rows[f"videos/{cam}/to_timestamp"] = [(ep + 1) * span for ep in range(episodes)]
    for key in per_episode[0]:
        for stat in per_episode[0][key]:
            rows[f"stats/{key}/{stat}"] = [np.asarray(s[key][stat]).tolist() for s in per_episode]
    rows["meta/episodes/chunk_index"] = [0] * episodes
    rows["meta/episodes/file_index"] = [0] * episodes
    meta.store.write(episodes_file(0, 0), to_parquet_bytes(pa.table(rows)))
    meta.tasks = tasks
    meta.write_tasks()
    meta.stats = aggregate_stats(per_episode)
    meta.write_stats()
    for cam in CAMERAS:
        feature = info.features[cam]
        feature.info = {**(feature.info or {}), "video.fps": FPS, "video.codec": "av1"}
    meta.info = info.model_copy(
        update={
            "total_episodes": episodes,
            "total_frames": n,
            "total_tasks": len(tasks),
            "splits": {"train": f"0:{episodes}"},
        }
    )
    meta.write_info()


# ---------------------------------------------------------------------- measurements


def pyav_ceiling(root: Path, total_frames: int, samples: int, delta: bool, seed: int) -> float:
    """Samples/s of bare PyAV, one thread: per camera one seek + decode (+ previous frame with delta)."""
    rng = random.Random(seed)
    reformatter = VideoReformatter()  # the fastest RGB conversion PyAV offers (see VideoReader)
    containers = []
    for cam in CAMERAS:
        container = av.open(str(root / f"videos/{cam}/chunk-000/file-000.mp4"))
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        containers.append((container, stream))
    start = time.perf_counter()
    for _ in range(samples):
        target = rng.randrange(total_frames)
        for container, stream in containers:
            want = [target - 1, target] if delta and target > 0 else [target]
            wanted_pts = {int(w / FPS / stream.time_base + 0.5) for w in want}
            container.seek(min(wanted_pts), stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts in wanted_pts:
                    reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
                if frame.pts >= max(wanted_pts):
                    break
    elapsed = time.perf_counter() - start
    for container, _ in containers:
        container.close()
    return samples / elapsed


def default_delta() -> dict[str, list[float]]:
    return {
        "action": [k / FPS for k in range(10)],
        "observation.state": [-1 / FPS, 0.0],
        **{cam: [-1 / FPS, 0.0] for cam in CAMERAS},
    }


class PerSample(torch.utils.data.Dataset):
    """The dataset without ``__getitems__``: the DataLoader asks sample by sample and
    collates (the path before batches were built per column)."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return self.ds[i]


def run_loader(
    url: str,
    options: dict | None,
    workers: int,
    delta: bool,
    samples: int,
    seed: int,
    batched: bool = True,
    uint8: bool = False,
) -> dict:
    """Same protocol as peer/bench_lerobot.py: open, DataLoader, pull ``samples``."""
    t0 = time.perf_counter()
    ds = Dataset(url, delta_timestamps=default_delta() if delta else None, storage_options=options, return_uint8=uint8)
    g = torch.Generator()
    g.manual_seed(seed)
    source = ds if batched else PerSample(ds)
    loader = DataLoader(source, batch_size=32, shuffle=True, num_workers=workers, generator=g, persistent_workers=False)
    n = n_after = 0
    t_first = None
    while n < samples:
        for batch in loader:
            n += len(batch["index"])
            if t_first is None:
                t_first = time.perf_counter()
            else:
                n_after += len(batch["index"])
            if n >= samples:
                break
    t_end = time.perf_counter()
    return {
        "samples_per_s": n / (t_end - t0),
        "after_first_batch": n_after / (t_end - t_first),
        "first_batch_s": t_first - t0,
    }


def median_runs(fn, repeat: int) -> dict:  # type: ignore[no-untyped-def]
    runs = [fn(rep) for rep in range(repeat)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def lerobot_numbers(root: Path, samples: int, workers: list[int], repeat: int) -> dict[tuple[int, bool], float]:
    """Run peer/bench_lerobot.py in lerobot's venv; {(workers, delta): median samples/s}."""
    out = root.parent / f"{root.name}.lerobot.jsonl"
    out.unlink(missing_ok=True)
    cmd = [
        str(PEER_VENV),
        str(PEER_BENCH),
        "--root",
        str(root),
        "--samples",
        str(samples),
        "--workers",
        ",".join(map(str, workers)),
        "--delta",
        "both",
        "--repeat",
        str(repeat),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    runs: dict[tuple[int, bool], list[float]] = {}
    for line in out.read_text().splitlines():
        r = json.loads(line)
        runs.setdefault((r["workers"], r["delta"]), []).append(r["samples_per_s"])
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, default=None, help="dataset folder (default: one per size under /tmp/robostore-bench)"
    )
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--samples", type=int, default=640)
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--modes", default="per-sample,batched", help="per-sample (DataLoader collates), batched (__getitems__)"
    )
    ap.add_argument("--delta", choices=("off", "on", "both"), default="both")
    ap.add_argument("--uint8", action="store_true", help="return_uint8=True")
    ap.add_argument("--s3", action="store_true", help="also read from a loopback S3 server (backends/s3)")
    ap.add_argument("--lerobot", action="store_true", help="also run lerobot (bash /work/shared/peer/setup.sh first)")
    args = ap.parse_args()
    if args.root is None:
        args.root = Path(
            f"/tmp/robostore-bench/map_dataset-{args.episodes}x{args.frames}-{args.height}x{args.width}-scenes"
        )
    workers = [int(w) for w in args.workers.split(",")]
    torch.set_num_threads(1)

    if not (args.root / "meta/info.json").exists():
        t = time.perf_counter()
        generate(args.root, args.episodes, args.frames, args.height, args.width)
        print(f"generated {args.root} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    total = DatasetMeta.open(str(args.root)).total_frames
    sources: dict[str, tuple[str, dict | None]] = {"local": (str(args.root), None)}
    server = None
    if args.s3:
        sys.path.insert(0, str(REPO))
        from backends.pytest_plugin import upload_folder
        from backends.s3 import S3Server

        server = S3Server().__enter__()
        url, options = f"s3://{server.new_bucket()}/dataset", server.storage_options()
        upload_folder(args.root, url, options)
        sources["s3"] = (url, options)

    modes = args.modes.split(",")
    deltas = {"off": [False], "on": [True], "both": [False, True]}[args.delta]
    results: dict[tuple[str, int, bool, str], float] = {}
    ceilings: dict[bool, float] = {}
    lines = []
    try:
        for delta in deltas:
            ceilings[delta] = statistics.median(
                pyav_ceiling(args.root, total, 300, delta, s) for s in range(args.repeat)
            )
            for source, (url, options) in sources.items():
                for w in workers:
                    for mode in modes:
                        r = median_runs(
                            lambda rep, url=url, options=options, w=w, delta=delta, mode=mode: run_loader(
                                url, options, w, delta, args.samples, rep, mode == "batched", args.uint8
                            ),
                            args.repeat,
                        )
                        results[(source, w, delta, mode)] = r["samples_per_s"]
                        lines.append(
                            f"{source:>6} {w:>7} {delta!s:>5} {mode:>10} {r['samples_per_s']:>10.1f} "
                            f"{r['after_first_batch']:>12.1f} {r['first_batch_s']:>9.2f}"
                        )
                        print(lines[-1], file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    peer = lerobot_numbers(args.root, args.samples, workers, args.repeat) if args.lerobot else {}

    load = os.getloadavg()
    print(
        f"\ndataset: {args.root} ({args.episodes} episodes x {args.frames} frames, 2 cameras {args.height}x{args.width}, "
        f"AV1 GOP 2); {'uint8' if args.uint8 else 'float32'} frames; {os.cpu_count()} CPUs; median of {args.repeat}; "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print("source workers delta       mode  samples/s  after 1st batch  1st batch s")
    print("\n".join(lines))
    print("\nPyAV ceiling, 1 thread (samples/s): " + ", ".join(f"delta={d}: {c:.1f}" for d, c in ceilings.items()))
    for (source, w, delta, mode), sps in results.items():
        parts = [f"{source} workers={w} delta={delta} {mode}: {sps:.1f}/s"]
        parts.append(f"{sps / (max(w, 1) * ceilings[delta]):.2f}x the ceiling of {max(w, 1)} core(s)")
        if mode == "batched" and (source, w, delta, "per-sample") in results:
            parts.append(f"{sps / results[(source, w, delta, 'per-sample')]:.2f}x per-sample")
        if source == "s3":
            parts.append(f"{sps / results[('local', w, delta, mode)]:.2f}x local")
        if source == "local" and (w, delta) in peer:
            parts.append(f"lerobot {peer[(w, delta)]:.1f}/s -> {sps / peer[(w, delta)]:.2f}x lerobot")
        print("  " + "; ".join(parts))


if __name__ == "__main__":
    main()
