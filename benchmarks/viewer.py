"""`robostore view` on S3: time to the first video frame of an episode page, and bytes fetched.

A synthetic dataset (the demo robot: two AV1 cameras, state, action) is recorded
locally and mirrored to the moto S3 server on 127.0.0.1, and Debian's chromium
(Playwright) opens episode pages:

* time to first frame: from the start of the navigation to the moment every camera's
  ``<video>`` has a frame to show (``readyState >= 2``, the page records it), each load
  with a fresh viewer (nothing cached) whose dataset metadata is already open — what a
  user gets when clicking an episode in the list. Target: <= 1 s on loopback.
* bytes: what the viewer fetched from S3 for the episode page (the videos played
  through to the end), counted at the S3 client (every GetObject call s3fs makes, with
  its Range), against the baseline measured in the same run: that episode's share of
  the mp4s (the sizes of its packets in each camera's file). Target: <= 1.2x for the
  mp4s; the data parquet's bytes are reported beside them.

Usage: python benchmarks/viewer.py [--episodes 10] [--seconds 5] [--size 240x320] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402

import robostore  # noqa: E402
from backends.s3 import S3Server  # noqa: E402
from robostore.meta import DatasetMeta  # noqa: E402
from robostore.view import BackgroundViewer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def record(root: Path, episodes: int, seconds: float, height: int, width: int, fps: int = 30) -> None:
    from robostore.record import Recorder
    from robostore.record.demo import SyntheticRobot, demo_features

    robot = SyntheticRobot(height, width)
    with Recorder.create(str(root), fps=fps, features=demo_features(height, width), robot_type="robostore_demo") as rec:
        for ep in range(episodes):
            for i in range(round(seconds * fps)):
                rec.add_frame(robot.frame(ep, i, fps))
            rec.save_episode()


class GetObjectBytes(logging.Handler):
    """Sums the bytes of the GetObject calls s3fs logs (``CALL: get_object - ... Range``), per kind of file."""

    def __init__(self, sizes: dict[str, int]) -> None:
        super().__init__(logging.DEBUG)
        self.sizes = sizes  # object key -> size
        self.by_kind: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if not (isinstance(record.args, tuple) and len(record.args) == 3 and record.args[0] == "get_object"):
            return
        call: dict = record.args[2]
        size = self.sizes.get(call.get("Key", ""))
        if size is None:
            return
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", call.get("Range") or "")
        start, last = (int(match.group(1)), int(match.group(2) or size - 1)) if match else (0, size - 1)
        kind = "mp4" if call["Key"].endswith(".mp4") else "other"
        self.by_kind[kind] = self.by_kind.get(kind, 0) + max(0, min(last, size - 1) - start + 1)

    def total(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)


def episode_share(root: Path, meta: DatasetMeta, episode: int) -> int:
    """Bytes of the episode's packets in every camera's mp4 (the baseline)."""
    total = 0
    half = 0.5 / meta.fps
    for key in meta.video_keys:
        span = meta.video_span(episode, key)
        end = span.from_timestamp + meta.episode(episode).length / meta.fps
        with av.open(str(root / span.path)) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.pts is not None and span.from_timestamp - half <= packet.pts * stream.time_base < end - half:
                    total += packet.size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="240x320", help="camera HEIGHTxWIDTH")
    parser.add_argument("--repeat", type=int, default=3, help="cold loads of each measured episode")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    print(f"machine: {os.cpu_count()} CPUs; {load()}")
    with tempfile.TemporaryDirectory() as tmp, S3Server() as s3, sync_playwright() as pw:
        root = Path(tmp) / "ds"
        start = time.perf_counter()
        record(root, args.episodes, args.seconds, height, width)
        url = f"s3://{s3.new_bucket()}/ds"
        robostore.mirror(str(root), url, dst_options=s3.storage_options(), progress=False)
        local = DatasetMeta.open(str(root))
        mp4_bytes = sum((root / p).stat().st_size for p in local.video_files())
        print(
            f"dataset: {args.episodes} episodes x {args.seconds:g} s, 2 AV1 cameras {width}x{height}, "
            f"{mp4_bytes / 1e6:.2f} MB of mp4 (made in {time.perf_counter() - start:.0f} s); {load()}"
        )
        key_prefix = url.removeprefix("s3://").split("/", 1)[1]  # object keys leave out the bucket
        counter = GetObjectBytes(
            {f"{key_prefix}/{p.relative_to(root).as_posix()}": p.stat().st_size for p in root.rglob("*") if p.is_file()}
        )
        s3fs_log = logging.getLogger("s3fs")
        s3fs_log.addHandler(counter)
        s3fs_log.setLevel(logging.DEBUG)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        measured = sorted({1, args.episodes // 2, args.episodes - 1})
        firsts, ratios, shares, mp4s, others = [], [], [], [], []
        for episode in measured:
            share = episode_share(root, local, episode)
            for _ in range(args.repeat):
                with BackgroundViewer(url, s3.storage_options()) as viewer:
                    # The dataset page has opened the dataset; validate's file checks
                    # (started then) are not the episode page's traffic.
                    viewer.app.state.viewer.validation.wait()
                    before = dict(counter.by_kind)
                    page = browser.new_page()
                    page.set_default_timeout(0)
                    page.goto(f"{viewer.url}/episode/{episode}")
                    page.wait_for_function("window.viewer && viewer.firstFrameMs !== null")
                    firsts.append(page.evaluate("viewer.firstFrameMs") / 1000)
                    page.evaluate("viewer.clock.play()")
                    page.wait_for_function("viewer.videos.every(v => v.ended)")
                    mp4s.append(counter.total("mp4") - before.get("mp4", 0))
                    others.append(counter.total("other") - before.get("other", 0))
                    shares.append(share)
                    ratios.append(mp4s[-1] / share)
                    page.close()
        browser.close()
    print(f"episodes measured: {measured}, {args.repeat} cold loads each; {load()}")
    print(
        f"time to first frame (all cameras): median {statistics.median(firsts):.3f} s, "
        f"max {max(firsts):.3f} s (target <= 1 s)"
    )
    print(
        f"mp4 bytes fetched from S3 per episode page: median {statistics.median(mp4s) / 1e3:.0f} kB vs the episode's "
        f"share of the mp4s {statistics.median(shares) / 1e3:.0f} kB: ratio median {statistics.median(ratios):.3f}x, "
        f"max {max(ratios):.3f}x (target <= 1.2x); plus {statistics.median(others) / 1e3:.0f} kB of data parquet"
    )

if __name__ == "__main__":
    main()
