#!/usr/bin/env python
"""Epoch throughput of robostore.StreamingDataset against the map-style Dataset and PyAV.

Uses the synthetic dataset of ``benchmarks/map_dataset.py`` (imported: 2 cameras,
AV1 GOP 2 crf 30 like lerobot, one mp4 per camera, 50 episodes x 200 frames at
240x320; an existing dataset at ``--root`` is reused). For each source (local disk, and with ``--s3`` a moto S3 server on
loopback) and delta_timestamps off/on (action: 10 future steps, state and each camera
[-1/fps, 0]) it runs one epoch of

* ``StreamingDataset`` over ``--epoch-episodes`` episodes (default: all, a whole
  epoch) behind ``DataLoader(batch_size=32, num_workers=2)``,
* the same with the dataset collating its own batches ("batched":
  ``StreamingDataset(batch_size=32)`` behind ``DataLoader(batch_size=None,
  num_workers=2)``, batches handed over through reused shared memory), and
* the map-style ``Dataset`` behind ``DataLoader(shuffle=True, batch_size=32,
  num_workers=2)`` for ``--map-samples`` samples (its rate is flat over an epoch),

(each twice: float32 cameras, and with ``return_uint8=True``, which leaves out the
float conversion and moves 4x fewer bytes between processes) and reports samples/s,
samples/s after the first batch and the time to the first batch (median of
``--repeat`` runs). All local runs come first, then the S3 server is started (a server
busy right after an upload would slow the local runs down).

Two ceilings frame the figures:

* decoding: PyAV's own sequential decode of the same files on one thread (every frame
  of both cameras in order, converted to RGB, as any reader must); streaming with 2
  workers is compared with twice that;
* transport: the same DataLoader (2 workers, batches of 32) fed by a dataset that only
  copies ready-made samples of the same keys, shapes and dtypes: what moving samples
  from workers to the training process costs on its own (for "batched", through the
  dataset's own collation and shared buffers). On a machine with as many
  cores as workers, decoding and transport share the cores, so the best any reader can
  reach is ``workers / (1 / decode + workers / transport)`` samples/s (printed as
  "both").

    PYTHONPATH=src python benchmarks/streaming.py [--s3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from map_dataset import CAMERAS, FPS, default_delta, generate
from robostore import Dataset, StreamingDataset
from robostore.meta import DatasetMeta
from robostore.torch.batches import BatchCollator

BATCH = 32


def sequential_ceiling(root: Path, until_s: float) -> float:
    """Samples/s of bare PyAV on one thread: every frame of every camera up to ``until_s``
    (the streamed episodes), decoded in order and converted to RGB."""
    start = time.perf_counter()
    frames = 0
    for cam in CAMERAS:
        reformatter = VideoReformatter()
        with av.open(str(root / f"videos/{cam}/chunk-000/file-000.mp4")) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                if frame.time >= until_s:
                    break
                reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
                frames += 1
    return frames / len(CAMERAS) / (time.perf_counter() - start)


def run(make_loader: Callable[[], DataLoader], limit: int | None) -> dict[str, float]:
    """Pull batches; the time to the first batch includes opening the dataset."""
    t0 = time.perf_counter()
    loader = make_loader()
    n = n_after = 0
    t_first = None
    for batch in loader:
        size = len(batch["index"])
        n += size
        if t_first is None:
            t_first = time.perf_counter()
        else:
            n_after += size
        if limit is not None and n >= limit:
            break
    t_end = time.perf_counter()
    assert t_first is not None
    return {
        "samples_per_s": n / (t_end - t0),
        "after_first_batch": n_after / (t_end - t_first),
        "first_batch_s": t_first - t0,
        "n": n,
    }


def streaming(
    url: str,
    options: dict[str, Any] | None,
    delta: bool,
    workers: int,
    episodes: list[int],
    epoch: int,
    uint8: bool,
    batched: bool,
) -> dict[str, float]:
    def make() -> DataLoader:
        dt = default_delta() if delta else None
        sds = StreamingDataset(
            url,
            episodes=episodes,
            delta_timestamps=dt,
            storage_options=options,
            return_uint8=uint8,
            batch_size=BATCH if batched else None,
        )
        sds.set_epoch(epoch)
        return DataLoader(sds, batch_size=None if batched else BATCH, num_workers=workers)

    return run(make, None)


def map_style(
    url: str, options: dict[str, Any] | None, delta: bool, workers: int, samples: int, seed: int, uint8: bool
) -> dict[str, float]:
    def make() -> DataLoader:
        ds = Dataset(
            url, delta_timestamps=default_delta() if delta else None, storage_options=options, return_uint8=uint8
        )
        g = torch.Generator()
        g.manual_seed(seed)
        return DataLoader(ds, batch_size=32, shuffle=True, num_workers=workers, generator=g)

    return run(make, samples)


class _ReadyMade(IterableDataset):
    """Yields copies of ready-made samples: a reader whose samples cost nothing to make
    (with ``collator``, collated into batches as StreamingDataset(batch_size=...) does)."""

    def __init__(self, samples: list[dict[str, Any]], total: int, collator: BatchCollator | None) -> None:
        self.samples, self.total, self.collator = samples, total, collator

    def __iter__(self) -> Any:
        info = get_worker_info()
        share = self.total // (info.num_workers if info else 1)
        copies = (
            {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.samples[i % len(self.samples)].items()}
            for i in range(share)
        )
        return copies if self.collator is None else self.collator.batches(copies)


def transport(url: str, delta: bool, workers: int, uint8: bool, total: int, batched: bool) -> dict[str, float]:
    """DataLoader throughput for samples like the streaming dataset's, made in no time."""
    sds = StreamingDataset(url, delta_timestamps=default_delta() if delta else None, return_uint8=uint8)
    samples = [item for _, item in zip(range(64), sds, strict=True)]
    if not batched:
        return run(lambda: DataLoader(_ReadyMade(samples, total, None), batch_size=BATCH, num_workers=workers), None)
    # The samples are final (float32 or uint8 cameras): the collator only copies them.
    collator = BatchCollator(BATCH, False, sds.meta.camera_keys, True, None, url)
    return run(lambda: DataLoader(_ReadyMade(samples, total, collator), batch_size=None, num_workers=workers), None)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, default=None, help="dataset folder (default: one per size under /tmp/robostore-bench)"
    )
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--epoch-episodes", type=int, default=None, help="episodes streamed per epoch (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--map-samples", type=int, default=960)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s3", action="store_true", help="also stream from a loopback S3 server (backends/s3)")
    ap.add_argument("--s3-only", action="store_true", help="stream from the S3 server only (the ceilings still run)")
    ap.add_argument("--delta", choices=("off", "on", "both"), default="both")
    ap.add_argument("--frames-as", choices=("float32", "uint8", "both"), default="both", help="camera dtype(s) to run")
    ap.add_argument("--no-map", action="store_true", help="leave out the map-style Dataset rows")
    args = ap.parse_args()
    if args.root is None:
        args.root = Path(
            f"/tmp/robostore-bench/streaming-{args.episodes}x{args.frames}-{args.height}x{args.width}-scenes"
        )
    torch.set_num_threads(1)

    if not (args.root / "meta/info.json").exists():
        t = time.perf_counter()
        generate(args.root, args.episodes, args.frames, args.height, args.width)
        print(f"generated {args.root} in {time.perf_counter() - t:.1f}s", file=sys.stderr)
    meta = DatasetMeta.open(str(args.root))
    total = meta.total_frames
    subset = meta.episode_indices[: args.epoch_episodes or meta.total_episodes].tolist()
    epoch_frames = sum(stop - start for start, stop in map(meta.frame_range, subset))
    until_s = max(meta.video_span(e, CAMERAS[0]).to_timestamp for e in subset) - 0.5 / FPS
    ceiling = statistics.median(sequential_ceiling(args.root, until_s) for _ in range(args.repeat))
    print(f"PyAV sequential decode, 1 thread: {ceiling:.1f} samples/s", file=sys.stderr, flush=True)
    kinds = tuple(k for k in (("", False), (" uint8", True)) if args.frames_as in ("both", k[0].strip() or "float32"))
    deltas = {"off": (False,), "on": (True,), "both": (False, True)}[args.delta]
    modes = (("streaming", False), ("streaming batched", True))
    rows: dict[tuple[str, str, bool], dict[str, float]] = {}
    server = None
    server_cpu: list[float] = []
    try:
        for source in ("s3",) if args.s3_only else ("local", "s3") if args.s3 else ("local",):
            url, options = str(args.root), None
            if source == "s3":
                from backends.pytest_plugin import upload_folder
                from backends.s3 import S3Server

                server = S3Server().__enter__()
                url, options = f"s3://{server.new_bucket()}/dataset", server.storage_options()
                upload_folder(args.root, url, options)
            for delta in deltas:
                for suffix, uint8 in kinds:
                    for mode, batched in modes:
                        runs = []
                        for rep in range(args.repeat):
                            cpu = _cpu_seconds(server)
                            runs.append(streaming(url, options, delta, args.workers, subset, rep, uint8, batched))
                            if server is not None:
                                server_cpu.append(
                                    (_cpu_seconds(server) - cpu) / (runs[-1]["n"] / runs[-1]["samples_per_s"])
                                )
                        rows[(source, mode + suffix, delta)] = median(runs)
                        if ("-", "transport" + mode.removeprefix("streaming") + suffix, delta) not in rows:
                            rows[("-", "transport" + mode.removeprefix("streaming") + suffix, delta)] = median(
                                [
                                    transport(str(args.root), delta, args.workers, uint8, epoch_frames, batched)
                                    for _ in range(args.repeat)
                                ]
                            )
                    if not args.no_map:
                        rows[(source, "map" + suffix, delta)] = median(
                            [
                                map_style(url, options, delta, args.workers, args.map_samples, rep, uint8)
                                for rep in range(args.repeat)
                            ]
                        )
                    for kind in ("streaming" + suffix, "streaming batched" + suffix, "map" + suffix):
                        if (source, kind, delta) in rows:
                            print(
                                f"{source} {kind} delta={delta}: {rows[(source, kind, delta)]}",
                                file=sys.stderr,
                                flush=True,
                            )
    finally:
        if server is not None:
            server.__exit__(None, None, None)

    decode = args.workers * ceiling
    print(
        f"\ndataset: {meta.total_episodes} episodes, {total} frames, 2 cameras {args.height}x{args.width} (camera-like "
        f"scenes), AV1 GOP 2; streaming epoch: {len(subset)} episodes; {os.cpu_count()} CPUs; {args.workers} DataLoader "
        f"workers; median of {args.repeat}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n"
    )
    print("| source | dataset | delta | samples/s | after 1st batch | 1st batch (s) |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for (source, kind, delta), r in rows.items():
        print(
            f"| {source} | {kind} | {'on' if delta else 'off'} | {r['samples_per_s']:.0f} | "
            f"{r['after_first_batch']:.0f} | {r['first_batch_s']:.2f} |"
        )
    print(
        f"\nPyAV sequential decode, one thread: {ceiling:.0f} samples/s (ceiling of {args.workers} cores: {decode:.0f})\n"
    )
    for (source, kind, delta), r in rows.items():
        if not kind.startswith("streaming"):
            continue
        suffix = kind.removeprefix("streaming").removeprefix(" batched")
        moving = rows[("-", "transport" + kind.removeprefix("streaming"), delta)]["samples_per_s"]
        both = args.workers / (1 / ceiling + args.workers / moving)
        sps, steady = r["samples_per_s"], r["after_first_batch"]
        parts = [
            f"{sps / decode:.2f}x the decode ceiling of {args.workers} cores ({steady / decode:.2f}x after the first batch)",
            f"{sps / both:.2f}x decode+transport ({both:.0f}/s; transport alone {moving:.0f}/s)",
        ]
        if (source, "map" + suffix, delta) in rows:
            parts.append(f"{sps / rows[(source, 'map' + suffix, delta)]['samples_per_s']:.1f}x the map-style Dataset")
        if source != "local" and (("local", kind, delta)) in rows:
            parts.append(f"{sps / rows[('local', kind, delta)]['samples_per_s']:.2f}x from local disk")
        print(f"- {source}, {kind}, delta {'on' if delta else 'off'}: " + "; ".join(parts))
    if server_cpu:
        print(
            f"\nThe S3 server's own CPU while streaming: median {statistics.median(server_cpu):.2f} cores "
            f"of {os.cpu_count()} (it shares the machine with the DataLoader workers)"
        )


def _cpu_seconds(server: Any) -> float:
    """CPU seconds used so far by a server process and its children (0 without one)."""
    if server is None:
        return 0.0
    import psutil

    proc = psutil.Process(server._proc.pid)
    return sum(sum(p.cpu_times()[:2]) for p in (proc, *proc.children(recursive=True)))


if __name__ == "__main__":
    main()
