"""Decode rate of VideoReader: random access vs sequential, threading modes.

Run: PYTHONPATH=src python benchmarks/video_decode.py [--frames 300]

Encodes a 480x640 episode with the default options (AV1, GOP 2), then measures
frames/s for: iter_frames (streaming), frames_at in order (continues from the
decoder position), frames_at in order with the continuation disabled (one seek per
call, the baseline), and frames_at in random order; each with FFmpeg threading
"AUTO" and "NONE". Also the tiny 48x64 fixture of tests/data.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from robostore.video import EpisodeEncoder, VideoOptions, VideoReader, append_segment

sys.path.insert(0, str(Path(__file__).parent))
from video_encode import FPS, H, W, synth_frames

log = logging.getLogger("video_decode")
FIXTURE = Path(__file__).parents[1] / "tests/data/video_basic/videos/observation.images.cam0/chunk-000/file-000.mp4"


def rate(path: Path, n: int, mode: str, threads: str, seed: int = 0, reps: int = 3) -> float:
    """Best of ``reps`` runs (the dev machine is shared and noisy)."""
    return max(_rate(path, n, mode, threads, seed) for _ in range(reps))


def _rate(path: Path, n: int, mode: str, threads: str, seed: int) -> float:
    order = np.arange(n) if mode != "random" else np.random.default_rng(seed).permutation(n)
    with VideoReader(str(path), path.name, thread_type=threads) as r:  # type: ignore[arg-type]
        t0 = time.perf_counter()
        if mode == "iter":
            k = sum(1 for _ in r.iter_frames(0, n / FPS))
            assert k == n
        else:
            for i in order:
                if mode == "seek-each":
                    r._decoder = None  # baseline: forget the position, as a reader without continuation
                    r._recent.clear()
                r.frames_at([i / FPS], 1e-4)
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    av.logging.set_level(av.logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        enc = EpisodeEncoder(W, H, FPS, VideoOptions(), tmp_dir=tmp)
        for f in synth_frames(args.frames):
            enc.add(f)
        dst = Path(tmp) / "file-000.mp4"
        append_segment(dst, enc.finish())
        for label, path, n in [(f"{W}x{H} av1", dst, args.frames), ("48x64 fixture", FIXTURE, 90)]:
            base = rate(path, n, "seek-each", "NONE")
            for mode in ("iter", "sequential", "seek-each", "random"):
                for threads in ("AUTO", "NONE"):
                    fps = rate(path, n, mode, threads)
                    log.info(
                        "%-14s %-10s threads=%-4s %7.1f frames/s (%.2fx seek-each/NONE)",
                        label,
                        mode,
                        threads,
                        fps,
                        fps / base,
                    )


if __name__ == "__main__":
    main()
