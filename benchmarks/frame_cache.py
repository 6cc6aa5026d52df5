"""Frame cache benchmark: no cache vs cold (filling) vs warm, same data, same run.

Run: PYTHONPATH=src python benchmarks/frame_cache.py [--episodes 20 --frames 200 --cameras 1]
     PYTHONPATH=src python benchmarks/frame_cache.py --codecs     (the codec measurement)

Writes a synthetic LeRobot v3.0 dataset (AV1 as lerobot encodes it: libsvtav1, yuv420p,
GOP 2, crf 30, here preset 12; episodes back to back in one mp4 per camera; 240x320
camera-like scenes from benchmarks/scenes.py: textured room, moving objects and arm, drifting camera, sensor noise) into a temporary folder, then
measures, each mode on the same dataset in this process:

* map-style random access: one epoch of ``robostore.Dataset`` in a random order
  (num_workers=0), float32 frames as lerobot returns them; no cache, then a fresh
  cache (cold: every miss decodes and writes its whole shard), then the filled
  cache (warm); the same a batch of 32 per call (``ds[indices]``, what a DataLoader
  with ``batch_size=32`` asks for through ``Dataset.__getitems__``);
* streaming, frame level: episodes in a shuffled order, each decoded sequentially
  (``VideoReader.iter_frames``) without a cache, vs ``DatasetFrameCache.get`` of the
  episode's frame range, cold and warm;
* streaming, dataset level: one epoch of ``robostore.StreamingDataset`` (num_workers=0,
  uint8 frames, default shuffling), no cache / cold / warm;

Frames are channels first ([3, H, W]) everywhere, as the torch readers ask for them.
* ``cache warm`` with all cores, and the cache's size next to the mp4s.

With ``--codecs``: compression ratio and speed of the candidate codecs on decoded
frames of the synthetic dataset and of the lerobot fixtures, and zarr-python's read
time of one frame next to robostore's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import robostore
from robostore.cache import FrameCache
from robostore.cache.layout import COMPRESSIONS
from robostore.layout import tasks_table
from robostore.meta import DatasetMeta
from robostore.video.decode import VideoReader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scenes import Room, episode_frames

log = logging.getLogger("frame_cache_bench")
FIXTURES = Path(__file__).parents[1] / "tests" / "data"

FPS = 30
CASES = (
    "map_float32",
    "map_uint8",
    "batched_float32",
    "batched_uint8",
    "frame_layer",
    "streaming",
    "streaming_dataset",
)


def _encode(path: Path, episodes: list[np.ndarray]) -> list[tuple[float, float]]:
    """Encode episodes back to back into one mp4; returns each one's (from, to) seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spans = []
    with av.open(str(path), "w") as container:
        h, w = episodes[0].shape[1:3]
        stream = container.add_stream("libsvtav1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, 15360)
        stream.options = {"g": "2", "crf": "30", "preset": "12"}
        pts = 0
        step = 15360 // FPS
        for frames in episodes:
            start = pts / 15360
            for frame in frames:
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = pts
                vf.time_base = stream.time_base
                pts += step
                container.mux(stream.encode(vf))
            spans.append((start, pts / 15360))
        container.mux(stream.encode())
    return spans


def make_dataset(
    root: Path,
    episodes: int = 20,
    frames: int = 200,
    cameras: int = 1,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
) -> Path:
    """Write the dataset at ``root`` and return it."""
    rng = np.random.default_rng(seed)
    keys = [f"observation.images.cam{i}" for i in range(cameras)]
    video_info = {
        "video.height": height,
        "video.width": width,
        "video.codec": "av1",
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": FPS,
        "video.channels": 3,
        "has_audio": False,
    }
    features: dict[str, dict] = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": [f"j{i}" for i in range(6)]},
    }
    for key in keys:
        features[key] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": video_info,
        }
    for name, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    spans = {}
    for key in keys:
        room = Room(rng, height, width)
        spans[key] = _encode(
            root / "videos" / key / "chunk-000" / "file-000.mp4",
            [episode_frames(room, rng, frames) for _ in range(episodes)],
        )
    n = episodes * frames
    frame_index = np.tile(np.arange(frames), episodes)
    data = pa.table(
        {
            "observation.state": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(n * 6).astype(np.float32)), 6
            ),
            "timestamp": pa.array((frame_index / FPS).astype(np.float32)),
            "frame_index": pa.array(frame_index, pa.int64()),
            "episode_index": pa.array(np.repeat(np.arange(episodes), frames), pa.int64()),
            "index": pa.array(np.arange(n), pa.int64()),
            "task_index": pa.array(np.zeros(n, np.int64)),
        }
    )
    (root / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(data, root / "data" / "chunk-000" / "file-000.parquet")
    ep_cols: dict[str, pa.Array] = {
        "episode_index": pa.array(np.arange(episodes), pa.int64()),
        "tasks": pa.array([["move the blocks"]] * episodes, pa.list_(pa.string())),
        "length": pa.array(np.full(episodes, frames), pa.int64()),
        "data/chunk_index": pa.array(np.zeros(episodes, np.int64)),
        "data/file_index": pa.array(np.zeros(episodes, np.int64)),
        "dataset_from_index": pa.array(np.arange(episodes) * frames, pa.int64()),
        "dataset_to_index": pa.array((np.arange(episodes) + 1) * frames, pa.int64()),
    }
    for key in keys:
        ep_cols[f"videos/{key}/chunk_index"] = pa.array(np.zeros(episodes, np.int64))
        ep_cols[f"videos/{key}/file_index"] = pa.array(np.zeros(episodes, np.int64))
        ep_cols[f"videos/{key}/from_timestamp"] = pa.array([s[0] for s in spans[key]], pa.float64())
        ep_cols[f"videos/{key}/to_timestamp"] = pa.array([s[1] for s in spans[key]], pa.float64())
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table(ep_cols), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    pq.write_table(tasks_table(["move the blocks"]), root / "meta" / "tasks.parquet")
    info = {
        "codebase_version": "v3.0",
        "robot_type": "synthetic",
        "total_episodes": episodes,
        "total_frames": n,
        "total_tasks": 1,
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": FPS,
        "splits": {"train": f"0:{episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": features,
    }
    state = data.column("observation.state").combine_chunks().flatten().to_numpy().reshape(n, 6)
    stats = {
        "observation.state": {
            "min": state.min(0),
            "max": state.max(0),
            "mean": state.mean(0),
            "std": state.std(0),
            "count": [n],
        }
    }
    (root / "meta" / "stats.json").write_text(
        json.dumps({k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()})
    )
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return root


# ---------------------------------------------------------------------- measurements
def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Clock:
    """Wall and CPU seconds of a block (CPU time is robust on a shared, loaded machine)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def map_style_epoch(url: str, order: list[int], cache: FrameCache | None, uint8: bool) -> Clock:
    """One epoch of ``robostore.Dataset`` in ``order``."""
    ds = robostore.Dataset(url, frame_cache=cache, return_uint8=uint8)
    ds.load()
    with Clock() as clock:
        for i in order:
            ds[i]
    ds.close()
    return clock


def map_batched_epoch(url: str, order: list[int], cache: FrameCache | None, uint8: bool, batch: int = 32) -> Clock:
    """One epoch of ``robostore.Dataset`` in ``order``, a batch per call (``ds[indices]``,
    what a DataLoader with ``batch_size`` asks for through ``__getitems__``)."""
    ds = robostore.Dataset(url, frame_cache=cache, return_uint8=uint8)
    ds.load()
    with Clock() as clock:
        for i in range(0, len(order), batch):
            ds[order[i : i + batch]]
    ds.close()
    return clock


def frame_layer_epoch(meta: DatasetMeta, order: list[int], cache: FrameCache | None) -> Clock:
    """One frame per index in ``order``: VideoReader.frames_at (kept open) vs DatasetFrameCache.get."""
    key = meta.video_keys[0]
    spans = [meta.video_span(e, key) for e in meta.episode_indices.tolist()]
    starts = meta.columns["dataset_from_index"]
    if cache is None:
        readers: dict[str, VideoReader] = {}
        with Clock() as clock:
            for i in order:
                row = int(np.searchsorted(starts, i, side="right")) - 1
                span = spans[row]
                reader = readers.get(span.path)
                if reader is None:
                    reader = readers[span.path] = VideoReader(meta.store.full_path(span.path), thread_type="NONE")
                reader.frames_at([span.from_timestamp + (i - int(starts[row])) / meta.fps], channels_first=True)
        for reader in readers.values():
            reader.close()
        return clock
    frames = cache.for_dataset(meta)
    with Clock() as clock:
        for i in order:
            frames.get(key, [i], channels_first=True)
    frames.close()
    return clock


def streaming_epoch(meta: DatasetMeta, episodes: list[int], cache: FrameCache | None) -> Clock:
    """Every frame of every camera, episode by episode, in ``episodes`` order."""
    with Clock() as clock:
        if cache is None:
            readers: dict[str, VideoReader] = {}
            for episode in episodes:
                for key in meta.video_keys:
                    span = meta.video_span(episode, key)
                    reader = readers.get(span.path)
                    if reader is None:
                        reader = readers[span.path] = VideoReader(meta.store.full_path(span.path), thread_type="NONE")
                    frames = np.stack(
                        [f for _, f in reader.iter_frames(span.from_timestamp, span.to_timestamp, channels_first=True)]
                    )
                    assert len(frames) == meta.frame_range(episode)[1] - meta.frame_range(episode)[0]
            for reader in readers.values():
                reader.close()
        else:
            frames_cache = cache.for_dataset(meta)
            for episode in episodes:
                start, stop = meta.frame_range(episode)
                for key in meta.video_keys:
                    assert frames_cache.get(key, np.arange(start, stop), channels_first=True) is not None
            frames_cache.close()
    return clock


def streaming_dataset_epoch(url: str, cache: FrameCache | None) -> Clock:
    """One epoch of ``robostore.StreamingDataset`` in this process (uint8 frames)."""
    sds = robostore.StreamingDataset(url, frame_cache=cache, return_uint8=True)
    with Clock() as clock:
        count = sum(1 for _ in sds)
    assert count == sds.num_frames
    return clock


def three_modes(work: Path, name: str, run: Callable[[FrameCache | None], Clock]) -> dict[str, Clock]:
    """``run(cache)`` without a cache, with a fresh one (cold), with the filled one (warm)."""
    folder = work / f"cache-{name}"
    shutil.rmtree(folder, ignore_errors=True)
    cache = FrameCache(str(folder))
    return {"none": run(None), "cold": run(cache), "warm": run(cache)}


def best(runs: list[dict[str, Clock]]) -> dict[str, dict[str, float]]:
    return {mode: {"wall": min(r[mode].wall for r in runs), "cpu": min(r[mode].cpu for r in runs)} for mode in runs[0]}


def bench(args: argparse.Namespace) -> dict[str, object]:
    import torch

    torch.set_num_threads(1)  # as in DataLoader workers; more threads only contend here
    work = Path(tempfile.mkdtemp(prefix="robostore-frame-cache-"))
    try:
        began = time.perf_counter()
        root = make_dataset(work / "ds", args.episodes, args.frames, args.cameras, args.height, args.width)
        log.info("dataset written in %.1f s", time.perf_counter() - began)
        url = str(root)
        meta = DatasetMeta.open(url)
        rng = np.random.default_rng(0)
        order = [int(i) for i in rng.permutation(meta.total_frames)]
        episodes = [int(e) for e in rng.permutation(meta.num_episodes)]
        out: dict[str, object] = {"frames": meta.total_frames, "cameras": args.cameras, "repeats": args.repeats}
        cases = {
            "map_float32": lambda c: map_style_epoch(url, order, c, uint8=False),
            "map_uint8": lambda c: map_style_epoch(url, order, c, uint8=True),
            "batched_float32": lambda c: map_batched_epoch(url, order, c, uint8=False),
            "batched_uint8": lambda c: map_batched_epoch(url, order, c, uint8=True),
            "frame_layer": lambda c: frame_layer_epoch(meta, order, c),
            "streaming": lambda c: streaming_epoch(meta, episodes, c),
            "streaming_dataset": lambda c: streaming_dataset_epoch(url, c),
        }
        for name, run in cases.items():
            if args.cases and name not in args.cases.split(","):
                continue
            out[name] = best([three_modes(work, name, run) for _ in range(args.repeats)])
            log.info("%s: %s", name, out[name])

        cache = FrameCache(str(work / "cache-warm"))
        with Clock() as clock:
            warm_report = cache.warm(url, workers=args.workers, progress=False)
        out["warm_cmd"] = {"wall": clock.wall, "shards": warm_report.filled, "workers": args.workers or os.cpu_count()}
        out["mp4_bytes"] = _du(root / "videos")
        out["cache_bytes"] = _du(work / "cache-warm")
        out["raw_bytes"] = meta.total_frames * args.cameras * args.height * args.width * 3
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(r: dict) -> None:
    n, cams = r["frames"], r["cameras"]
    print(f"\n{n} frames x {cams} camera(s), {r['repeats']} repeat(s), best of each; wall s (CPU s)\n")
    print("| case | no cache | cold (filling) | warm | cold / none (CPU) | none / warm (CPU) |")
    print("| --- | --- | --- | --- | --- | --- |")
    labels = {
        "map_float32": "Dataset[i], random order, float32 frames",
        "map_uint8": "Dataset[i], random order, return_uint8",
        "batched_float32": "Dataset[batch of 32], random order, float32 frames",
        "batched_uint8": "Dataset[batch of 32], random order, return_uint8",
        "frame_layer": "one frame, random order: VideoReader.frames_at vs cache.get",
        "streaming": "streaming, frame level: episode by episode (all cameras)",
        "streaming_dataset": "streaming: StreamingDataset epoch, return_uint8",
    }
    for name, label in labels.items():
        if name not in r:
            continue
        t = r[name]
        cells = [f"{t[m]['wall']:.2f} ({t[m]['cpu']:.2f})" for m in ("none", "cold", "warm")]
        print(
            f"| {label} | {' | '.join(cells)} | {t['cold']['wall'] / t['none']['wall']:.2f}x "
            f"({t['cold']['cpu'] / t['none']['cpu']:.2f}x) | {t['none']['wall'] / t['warm']['wall']:.1f}x "
            f"({t['none']['cpu'] / t['warm']['cpu']:.1f}x) |"
        )
    w = r["warm_cmd"]
    print(
        f"\n`cache warm`, {w['workers']} processes: {w['shards']} shards in {w['wall']:.1f} s ({n * cams / w['wall']:,.0f} frames/s)"
    )
    print(
        f"sizes: mp4s {r['mp4_bytes'] / 1e6:.1f} MB, cache {r['cache_bytes'] / 1e6:.1f} MB "
        f"({r['cache_bytes'] / r['mp4_bytes']:.1f}x the mp4s), raw frames {r['raw_bytes'] / 1e6:.1f} MB "
        f"(compression {r['raw_bytes'] / r['cache_bytes']:.2f}x)"
    )


# ---------------------------------------------------------------------- codecs
def _decoded_frames(url: str, limit: int) -> np.ndarray:
    meta = DatasetMeta.open(url)
    key = meta.video_keys[0]
    out: list[np.ndarray] = []
    for path in dict.fromkeys(meta.video_span(e, key).path for e in meta.episode_indices.tolist()):
        with VideoReader(meta.store.full_path(path)) as reader:
            for _, frame in reader.iter_frames(0.0, 1e9):
                out.append(frame)
                if len(out) >= limit:
                    return np.stack(out)
    return np.stack(out)


def codecs(args: argparse.Namespace) -> None:
    import numcodecs.blosc as blosc
    from numcodecs import Zstd

    blosc.use_threads = False
    candidates = {
        "none (a copy)": (lambda f: f.tobytes(), lambda b: np.frombuffer(b, np.uint8).copy()),
        "zstd 1": (lambda f: Zstd(1).encode(f), lambda b: Zstd(1).decode(b)),
        "zstd 3": (lambda f: Zstd(3).encode(f), lambda b: Zstd(3).decode(b)),
    }
    for cname, shuffle, level in (
        ("lz4", blosc.NOSHUFFLE, 5),
        ("lz4", blosc.BITSHUFFLE, 5),
        ("lz4hc", blosc.BITSHUFFLE, 1),
        ("zstd", blosc.NOSHUFFLE, 1),
        ("zstd", blosc.BITSHUFFLE, 1),
        ("zstd", blosc.BITSHUFFLE, 5),
    ):
        name = f"blosc {cname} {'bitshuffle' if shuffle else 'noshuffle'} {level}"
        candidates[name] = (
            lambda f, c=cname, s=shuffle, lv=level: blosc.compress(f, c.encode(), lv, s, 0, 1),
            blosc.decompress,
        )
    work = Path(tempfile.mkdtemp(prefix="robostore-codecs-"))
    try:
        sources = {
            f"synthetic {args.height}x{args.width}": str(make_dataset(work / "ds", 2, 200, 1, args.height, args.width)),
            "lerobot fixture video_basic 48x64": str(FIXTURES / "video_basic"),
        }
        for label, url in sources.items():
            frames = _decoded_frames(url, 400)
            print(f"\n{label}: {len(frames)} decoded frames\n")
            print("| codec | ratio | encode frames/s | decode us/frame |")
            print("| --- | --- | --- | --- |")
            for name, (enc, dec) in candidates.items():
                began = time.perf_counter()
                packed = [enc(f) for f in frames]
                t_enc = time.perf_counter() - began
                best = float("inf")
                for _ in range(3):
                    began = time.perf_counter()
                    for b in packed:
                        dec(b)
                    best = min(best, time.perf_counter() - began)
                ratio = frames.nbytes / sum(len(b) for b in packed)
                print(f"| {name} | {ratio:.2f} | {len(frames) / t_enc:,.0f} | {best / len(frames) * 1e6:,.0f} |")
        zarr_read(work / "ds")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def zarr_read(root: Path) -> None:
    """One-frame reads of a warm local cache: zarr-python's Array vs robostore's own read,
    for each compression robostore offers (random order, channels first as readers ask)."""
    readers: dict[str, Callable[[int], object]] = {}
    for compression in COMPRESSIONS:
        frames = FrameCache(str(root.parent / f"cache-{compression}"), compression=compression).for_dataset(str(root))
        key = frames.video_keys[0]
        frames.fill(key, range(frames.layout(key).num_shards))
        readers[f"robostore DatasetFrameCache.get, {compression}"] = lambda i, f=frames, k=key: f.get(
            k, [i], channels_first=True
        )
    array = frames.zarr_array(key)
    readers["zarr-python Array[i]"] = lambda i: array[i]
    idx = np.random.default_rng(0).integers(0, frames.layout(key).num_frames, 300).tolist()
    print("\none-frame reads from a warm local cache:")
    for name, read in readers.items():
        read(idx[0])
        began = time.perf_counter()
        for i in idx:
            read(i)
        print(f"  {name}: {(time.perf_counter() - began) / len(idx) * 1e3:.3f} ms/frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--workers", type=int, default=None, help="processes for `cache warm` (default: CPU count)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each case; the best is reported")
    parser.add_argument("--codecs", action="store_true", help="measure the candidate codecs instead")
    parser.add_argument("--json", action="store_true", help="also print the raw numbers as JSON")
    parser.add_argument("--cases", default="", help="comma-separated cases to run (default: all): " + ", ".join(CASES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.codecs:
        codecs(args)
        return
    results = bench(args)
    report(results)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
