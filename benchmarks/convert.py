"""``robostore.convert`` (v2.1 → v3.0) against lerobot's own converter, on the same input, in one run.

Run from the repository root::

    PYTHONPATH=src python benchmarks/convert.py [--mb 500] [--repeat 1] [--workdir DIR] \\
        [--peer-python ~/.cache/lerobot-peer/venv/bin/python]

A v2.1 dataset of about ``--mb`` MB is generated: episodes of 150 frames
at 30 fps, two h264 cameras 128x96 (noise-heavy frames, so the files are large; a few
episodes are encoded and their mp4s reused, which changes nothing for a converter),
per-episode parquet files with state/action, and the jsonl metadata with real
per-episode stats. Then, each in a fresh process (peak RSS is that process's own):

* lerobot: ``convert_dataset_v21_to_v30.convert_dataset(root=..., push_to_hub=False)``
  of lerobot 0.4.4 in the peer venv (``--peer-python``), local → local (it converts
  in place; it cannot write to another backend);
* robostore local→local: ``robostore.convert(src, dst)`` (default settings: the source
  validated first, every written file read back and compared), and with
  ``check=False, verify=False`` (what lerobot's converter does: neither);
* robostore local→s3: the same two into a moto S3 bucket on 127.0.0.1.

Medians of ``--repeat`` runs, the ratios against lerobot, the peak RSS of each, and
the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from backends.s3 import S3Server
from robostore import v21
from robostore.schema import Feature, default_features
from robostore.schema.arrow import data_schema
from robostore.stats import compute_stats

FPS, FRAMES, HEIGHT, WIDTH = 30, 150, 96, 128
CAMERAS = ("observation.images.front", "observation.images.wrist")
DISTINCT = 3  # episodes encoded per camera; the others reuse their mp4s


# ---------------------------------------------------------------------- the input
def encode(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"crf": "28", "preset": "ultrafast", "g": "2"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for t in range(FRAMES):
            noise = rng.integers(0, 8, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(np.roll(base, 3 * t, axis=1) ^ noise, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def make_v21(root: Path, episodes: int, kind: str = "video") -> int:
    """Write the v2.1 dataset (cameras as mp4s, or with ``kind="image"`` as PNGs in the
    parquet files); returns its size in bytes."""
    cameras = CAMERAS if kind == "video" else CAMERAS[:1]
    features = {
        "observation.state": Feature(dtype="float32", shape=(6,), names=None),
        "action": Feature(dtype="float32", shape=(6,), names=None),
        **{
            k: Feature(
                dtype=kind,
                shape=(HEIGHT, WIDTH, 3),
                names=["height", "width", "channels"],
                info={"video.fps": FPS, "video.codec": "h264", "video.pix_fmt": "yuv420p"} if kind == "video" else None,
            )
            for k in cameras
        },
        **default_features(),
    }
    info = {
        "codebase_version": "v2.1",
        "robot_type": "bench",
        "total_episodes": episodes,
        "total_frames": episodes * FRAMES,
        "total_tasks": 2,
        "total_videos": episodes * len(cameras) if kind == "video" else 0,
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": FPS,
        "splits": {"train": f"0:{episodes}"},
        "data_path": v21.DATA_PATH,
        "video_path": v21.VIDEO_PATH if kind == "video" else None,
        "features": {k: f.to_json() for k, f in features.items()},
    }
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    tasks = ["pick", "place"]
    (root / "meta/tasks.jsonl").write_text(
        "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks))
    )
    encoded = {}
    for k, key in enumerate(cameras if kind == "video" else ()):
        for d in range(DISTINCT):
            encoded[(key, d)] = root / f"distinct-{k}-{d}.mp4"
            encode(encoded[(key, d)], 10 * k + d)
    pngs = [png(i) for i in range(FRAMES)] if kind == "image" else []
    schema = data_schema(features)
    episode_lines, stats_lines = [], []
    rng = np.random.default_rng(0)
    for e in range(episodes):
        state = rng.standard_normal((FRAMES, 6)).astype(np.float32)
        action = rng.standard_normal((FRAMES, 6)).astype(np.float32)
        frame = np.arange(FRAMES, dtype=np.int64)
        values = {
            "observation.state": state,
            "action": action,
            "timestamp": (frame / FPS).astype(np.float32),
            "frame_index": frame,
            "episode_index": np.full(FRAMES, e),
            "index": e * FRAMES + frame,
            "task_index": np.full(FRAMES, e % 2),
        }
        for key in cameras if kind == "image" else ():
            values[key] = pa.array(
                [{"bytes": pngs[(t + e) % FRAMES], "path": None} for t in range(FRAMES)], schema.field(key).type
            )
        columns = [
            values[n]
            if isinstance(values[n], pa.Array)
            else pa.FixedSizeListArray.from_arrays(pa.array(values[n].reshape(-1)), 6)
            if values[n].ndim == 2
            else pa.array(values[n])
            for n in schema.names
        ]
        path = root / v21.DATA_PATH.format(episode_chunk=0, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns, schema=schema), path)
        for key in cameras if kind == "video" else ():
            video = root / v21.VIDEO_PATH.format(episode_chunk=0, video_key=key, episode_index=e)
            video.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(encoded[(key, e % DISTINCT)], video)
        kept = ("min", "max", "mean", "std", "count")
        stats = {
            n: {s: np.asarray(v).tolist() for s, v in compute_stats(values[n]).items() if s in kept}
            for n in values
            if n not in cameras
        }
        for key in cameras:
            stats[key] = {
                "min": [[[0.0]]] * 3,
                "max": [[[1.0]]] * 3,
                "mean": [[[0.5]]] * 3,
                "std": [[[0.2]]] * 3,
                "count": [100],
            }
        episode_lines.append(json.dumps({"episode_index": e, "tasks": [tasks[e % 2]], "length": FRAMES}) + "\n")
        stats_lines.append(json.dumps({"episode_index": e, "stats": stats}) + "\n")
    for p in encoded.values():
        p.unlink()
    (root / "meta/episodes.jsonl").write_text("".join(episode_lines))
    (root / "meta/episodes_stats.jsonl").write_text("".join(stats_lines))
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------- the runs
_LEROBOT = """
import json, os, resource, sys, time, logging
os.environ["HF_HUB_OFFLINE"] = "1"
logging.disable(logging.INFO)
from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset
start = time.perf_counter()
convert_dataset(repo_id="bench/v21", root=sys.argv[1], push_to_hub=False)
print(json.dumps({"seconds": time.perf_counter() - start, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_ROBOSTORE = """
import json, resource, sys, time
import robostore
options, trust = json.loads(sys.argv[3]), sys.argv[4] == "trust"
start = time.perf_counter()
report = robostore.convert(sys.argv[1], sys.argv[2], dst_options=options, progress=False, check=not trust, verify=not trust)
assert report.ok, report.failed
print(json.dumps({"seconds": time.perf_counter() - start, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    out = subprocess.run(args, check=False, capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=500, help="approximate dataset size")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--peer-python", default=os.path.expanduser("~/.cache/lerobot-peer/venv/bin/python"))
    parser.add_argument("--workdir", default=None, help="where the datasets go (default: a temp folder)")
    parser.add_argument(
        "--kind",
        choices=("video", "image"),
        default="video",
        help="cameras as h264 mp4s (2 cameras), or as PNGs inside the parquet files (1 camera)",
    )
    args = parser.parse_args()
    tmp = Path(args.workdir or tempfile.mkdtemp(prefix="bench-convert-"))
    if args.kind == "video":
        probe = tmp / "probe.mp4"
        encode(probe, 0)
        episode_mb = len(CAMERAS) * probe.stat().st_size / 1e6
        probe.unlink()
    else:
        episode_mb = FRAMES * len(png(0)) / 1e6
    episodes = max(2, round(args.mb / episode_mb))
    src = tmp / "src"
    shutil.rmtree(src, ignore_errors=True)
    size = make_v21(src, episodes, args.kind)
    print(f"machine: {os.cpu_count()} CPUs, shared; {load()}")
    cams = f"2 h264 cameras {WIDTH}x{HEIGHT}" if args.kind == "video" else f"1 PNG camera {WIDTH}x{HEIGHT} in parquet"
    print(f"input: v2.1, {episodes} episodes x {FRAMES} frames, {cams}: {size / 1e6:.0f} MB")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    names = (
        "lerobot local→local",
        "robostore local→local",
        "robostore local→local, no check/verify",
        "robostore local→s3",
        "robostore local→s3, no check/verify",
    )
    times: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with S3Server() as s3:
        for _ in range(args.repeat):
            work = tmp / "lerobot" / "bench" / "v21"
            shutil.rmtree(tmp / "lerobot", ignore_errors=True)
            shutil.copytree(src, work)
            times[names[0]].append(run([args.peer_python, "-c", _LEROBOT, str(tmp / "lerobot")]))
            shutil.rmtree(tmp / "lerobot")
            print(f"  {names[0]} done ({load()})", flush=True)
            for name, trust in ((names[1], "check"), (names[2], "trust")):
                dst = tmp / "dst"
                shutil.rmtree(dst, ignore_errors=True)
                times[name].append(run([sys.executable, "-c", _ROBOSTORE, str(src), str(dst), "{}", trust], env))
                shutil.rmtree(dst)
                print(f"  {name} done ({load()})", flush=True)
            for name, trust in ((names[3], "check"), (names[4], "trust")):
                url = f"s3://{s3.new_bucket()}/ds"
                times[name].append(
                    run([sys.executable, "-c", _ROBOSTORE, str(src), url, json.dumps(s3.storage_options()), trust], env)
                )
                print(f"  {name} done ({load()})", flush=True)
    base = statistics.median(r["seconds"] for r in times["lerobot local→local"])
    print("\n| run | median s | MB/s | vs lerobot | peak RSS MB |\n|---|---|---|---|---|")
    for name, runs in times.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        print(f"| {name} | {seconds:.1f} | {size / 1e6 / seconds:.0f} | **{base / seconds:.2f}x** | {rss:.0f} |")
    print(f"\n{load()}; {args.repeat} run(s) each")
    if not args.workdir:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
