"""Encoder throughput, add() latency and append cost for camera video.

Run: PYTHONPATH=src python benchmarks/video_encode.py [--frames 300]

Prints frames/s for 480x640 with the default options (AV1 libsvtav1 preset 12,
crf 30, GOP 2) and h264, the ratio against real time for 2 cameras at 30 fps, add()
latency while recording two cameras in real time, the cost of append_segment as
the file grows, and, for the rejected fragmented-MP4 design, how many reads a
reader needs to open a file and seek to its last episode.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import av
import numpy as np

from robostore.video import EpisodeEncoder, VideoOptions, VideoReader, append_segment

log = logging.getLogger("video_encode")
H, W, FPS, CAMERAS = 480, 640, 30, 2


def synth_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """A textured scene panning sideways with a moving object and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0 : W * 2]
    grad = np.stack([xx * 255 / (2 * W), yy * 255 / H, 128 + 60 * np.sin(xx / 23) * np.cos(yy / 17)], -1)
    tex = rng.integers(0, 255, (H // 4, W // 2, 3)).repeat(4, 0).repeat(4, 1)
    base = (0.5 * grad + 0.5 * tex).astype(np.float32)
    out = []
    for i in range(n):
        f = base[:, (i * 4) % W : (i * 4) % W + W].copy()
        f[100 + i % 200 : 180 + i % 200, 200 + i % 300 : 300 + i % 300] = (220, 30, 30)
        f += rng.normal(0, 3, f.shape)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return out


def throughput(frames: list[np.ndarray], options: VideoOptions, tmp: str, cameras: int) -> float:
    """Aggregate frames/s of ``cameras`` encoders fed as fast as possible."""
    encs = [EpisodeEncoder(W, H, FPS, options, tmp_dir=tmp, name=f"cam{c}") for c in range(cameras)]
    t0 = time.perf_counter()

    def feed(enc: EpisodeEncoder) -> None:
        for f in frames:
            enc.add(f)
        enc.finish().path.unlink()

    threads = [threading.Thread(target=feed, args=(e,)) for e in encs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return cameras * len(frames) / (time.perf_counter() - t0)


def realtime_latency(frames: list[np.ndarray], options: VideoOptions, tmp: str) -> dict[str, float]:
    """add() latency with two cameras fed at 30 fps from one loop, like a Recorder."""
    encs = [EpisodeEncoder(W, H, FPS, options, tmp_dir=tmp, name=f"cam{c}") for c in range(CAMERAS)]
    lat, backlog = [], 0
    t_start = time.perf_counter()
    for i, f in enumerate(frames):
        for e in encs:
            t0 = time.perf_counter()
            e.add(f)
            lat.append(time.perf_counter() - t0)
            backlog = max(backlog, e.backlog)
        sleep = t_start + (i + 1) / FPS - time.perf_counter()
        if sleep > 0:
            time.sleep(sleep)
    t0 = time.perf_counter()
    for e in encs:
        e.finish().path.unlink()
    drain = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {
        "p50_ms": float(np.median(a)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
        "max_backlog": backlog,
        "finish_s": drain,
    }


def append_cost(frames: list[np.ndarray], tmp: str, episodes: int) -> list[tuple[float, float]]:
    """(file MB before, seconds) of append_segment for a file growing episode by episode."""
    enc = EpisodeEncoder(W, H, FPS, VideoOptions(), tmp_dir=tmp)
    for f in frames:
        enc.add(f)
    seg = enc.finish()
    dst = Path(tmp) / "file-000.mp4"
    out = []
    for _ in range(episodes):
        size = dst.stat().st_size / 2**20 if dst.exists() else 0.0
        t0 = time.perf_counter()
        append_segment(dst, seg, keep_segment=True)
        out.append((size, time.perf_counter() - t0))
    seg.path.unlink()
    return out


class CountingFile(io.FileIO):
    """A local file that counts reads and seeks that land outside the last read, like
    ranged requests on an object store without a block cache."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "rb")
        self.reads = 0
        self.jumps = 0
        self.bytes = 0
        self._pos_after_read = 0

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        if self.tell() != self._pos_after_read:
            self.jumps += 1
        data = super().read(n)
        self.reads += 1
        self.bytes += len(data)
        self._pos_after_read = self.tell()
        return data


def to_fragmented(src: Path, dst: Path) -> None:
    """Stream-copy ``src`` into a fragmented MP4 (one fragment per keyframe)."""
    with (
        av.open(str(src)) as i,
        av.open(str(dst), "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as o,
    ):
        st = o.add_stream_from_template(i.streams.video[0], opaque=True)
        for p in i.demux(i.streams.video[0]):
            if p.dts is None:
                continue
            p.stream = st
            o.mux(p)


def seek_reads(path: Path, t: float) -> tuple[int, int, int]:
    f = CountingFile(str(path))
    with VideoReader(f, path.name, thread_type="NONE") as r:
        r.frames_at([t], 1e-4)
    f.close()
    return f.reads, f.jumps, f.bytes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--episodes", type=int, default=8)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    av.logging.set_level(av.logging.ERROR)
    frames = synth_frames(args.frames)
    need = FPS * CAMERAS
    log.info(
        "cores: %s, frames %dx%d, real time = %d cameras x %d fps = %d frames/s",
        os.cpu_count(),
        W,
        H,
        CAMERAS,
        FPS,
        need,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for label, opts in [
            ("av1 default (preset 12)", VideoOptions()),
            ("av1 preset 10 (svt default)", VideoOptions(preset=10)),
            ("h264 veryfast", VideoOptions.h264()),
        ]:
            for cams in (1, 2):
                fps = throughput(frames, opts, tmp, cams)
                log.info(
                    "encode %-28s %d cam: %6.1f frames/s = %.2fx real time (2 cams @30)", label, cams, fps, fps / need
                )
        lat = realtime_latency(frames, VideoOptions(), tmp)
        log.info(
            "add() while recording 2 cams @30 fps, default options: p50 %.3f ms, p99 %.3f ms, max %.3f ms, "
            "max backlog %d frames, finish() drain %.3f s",
            lat["p50_ms"],
            lat["p99_ms"],
            lat["max_ms"],
            lat["max_backlog"],
            lat["finish_s"],
        )
        costs = append_cost(frames, tmp, args.episodes)
        for mb, s in costs:
            log.info(
                "append_segment (%d-frame episode) to a %6.1f MB file: %.3f s (%.0f MB/s copied)",
                args.frames,
                mb,
                s,
                (mb / s) if mb else 0,
            )
        dst = Path(tmp) / "file-000.mp4"
        frag = Path(tmp) / "frag.mp4"
        t0 = time.perf_counter()
        to_fragmented(dst, frag)
        log.info(
            "fMP4 (frag per keyframe) of the same packets: %.1f MB vs %.1f MB plain (remux %.2f s)",
            frag.stat().st_size / 2**20,
            dst.stat().st_size / 2**20,
            time.perf_counter() - t0,
        )
        with VideoReader(str(dst)) as r:
            last = r.duration - 1 / FPS
        for label, p in [("plain mp4", dst), ("fragmented mp4", frag)]:
            reads, jumps, nbytes = seek_reads(p, last)
            log.info(
                "open + frames_at(last frame) on %-15s: %4d reads, %4d non-contiguous (ranged requests), %.1f MB read",
                label,
                reads,
                jumps,
                nbytes / 2**20,
            )


if __name__ == "__main__":
    main()
