"""`robostore view` on S3: time to the first video frame of an episode page, and bytes fetched.

A synthetic dataset (the demo robot: two AV1 cameras, state, action) is recorded
locally and mirrored to the moto S3 server on 127.0.0.1. The viewer reads it through a
byte-counting TCP proxy (``tests/faultproxy.py``, no faults injected), and Debian's
chromium (Playwright) opens episode pages:

* time to first frame: from the start of the navigation to the moment every camera's
  ``<video>`` has a frame to show (``readyState >= 2``, the page records it), each load
  with a fresh viewer (nothing cached) whose dataset metadata is already open — what a
  user gets when clicking an episode in the list. Target: <= 1 s on loopback.
* bytes: everything the viewer fetched from S3 for the episode page (both directions of
  the proxy, HTTP headers included; the videos played through to the end), against the
  baseline measured in the same run: that episode's share of the mp4s (the sizes of its
  packets in each camera's file). Target: <= 1.2x.

Usage: python benchmarks/viewer.py [--episodes 10] [--seconds 5] [--size 240x320] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("SVT_LOG", "1")

import av  # noqa: E402

import robostore  # noqa: E402
from backends.s3 import S3Server  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
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
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        measured = sorted({1, args.episodes // 2, args.episodes - 1})
        firsts, ratios, shares, fetched = [], [], [], []
        with FaultProxy.for_url(s3.storage_options()["endpoint_url"]) as proxy:
            options = {**s3.storage_options(), "endpoint_url": proxy.url}
            for episode in measured:
                share = episode_share(root, local, episode)
                for _ in range(args.repeat):
                    with BackgroundViewer(url, options) as viewer:
                        state = viewer.app.state.viewer
                        state.meta  # noqa: B018 - the dataset page has opened it
                        assert state.validation is not None
                        state.validation.wait()  # its file checks are not the episode page's traffic
                        before = proxy.bytes_forwarded
                        page = browser.new_page()
                        page.set_default_timeout(0)
                        page.goto(f"{viewer.url}/episode/{episode}")
                        page.wait_for_function("window.viewer && viewer.firstFrameMs !== null")
                        firsts.append(page.evaluate("viewer.firstFrameMs") / 1000)
                        page.evaluate("viewer.clock.play()")
                        page.wait_for_function("viewer.videos.every(v => v.ended)")
                        fetched.append(proxy.bytes_forwarded - before)
                        shares.append(share)
                        ratios.append(fetched[-1] / share)
                        page.close()
        browser.close()
    print(f"episodes measured: {measured}, {args.repeat} cold loads each; {load()}")
    print(
        f"time to first frame (all cameras): median {statistics.median(firsts):.3f} s, "
        f"max {max(firsts):.3f} s (target <= 1 s)"
    )
    print(
        f"bytes fetched from S3 per episode page: median {statistics.median(fetched) / 1e3:.0f} kB vs the episode's "
        f"share of the mp4s {statistics.median(shares) / 1e3:.0f} kB: ratio median {statistics.median(ratios):.2f}x, "
        f"max {max(ratios):.2f}x (target <= 1.2x)"
    )


if __name__ == "__main__":
    main()
