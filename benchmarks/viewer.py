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
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("SVT_LOG", "1")

import av

import robostore
from backends.s3 import S3Server
from robostore.meta import DatasetMeta
from robostore.view import BackgroundViewer

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
        rows: dict[str, dict[str, list[float]]] = {m: {"first": [], "mp4": [], "other": [], "ratio": []} for m in MODES}
        for episode in measured:
            share = episode_share(root, local, episode)
            for _ in range(args.repeat):
                for mode in MODES:  # interleaved, each with a fresh viewer
                    with BackgroundViewer(url, s3.storage_options()) as viewer:
                        # The dataset page has opened the dataset; validate's file checks
                        # (started then) are not the episode page's traffic.
                        viewer.app.state.viewer.validation.wait()
                        before = dict(counter.by_kind)
                        first = MODES[mode](browser, viewer.url, local, episode)
                        row = rows[mode]
                        row["first"].append(first)
                        row["mp4"].append(counter.total("mp4") - before.get("mp4", 0))
                        row["other"].append(counter.total("other") - before.get("other", 0))
                        row["ratio"].append(row["mp4"][-1] / share)
        browser.close()
    print(f"episodes measured: {measured}, {args.repeat} cold loads each, medians (max); {load()}")
    print(f"{'':<28}{'first frame s':>16}{'mp4 kB':>10}{'vs share':>14}{'parquet kB':>12}")
    for mode, row in rows.items():
        med = statistics.median
        print(
            f"{mode:<28}{med(row['first']):>9.3f} ({max(row['first']):.3f}){med(row['mp4']) / 1e3:>10.0f}"
            f"{med(row['ratio']):>7.2f}x ({max(row['ratio']):.2f}x){med(row['other']) / 1e3:>9.0f}"
        )
    base, view = rows["baseline: the dataset's mp4"], rows["episode page (clips)"]
    print(
        f"episode page vs baseline: first frame {statistics.median(view['first']) / statistics.median(base['first']):.2f}x, "
        f"mp4 bytes {statistics.median(view['mp4']) / statistics.median(base['mp4']):.2f}x; "
        "targets: first frame <= 1 s, mp4 bytes <= 1.2x the episode's share"
    )


def episode_page(browser: Any, base: str, _meta: DatasetMeta, episode: int) -> float:
    """The viewer's episode page: seconds to every camera's first frame; then plays it through."""
    page = browser.new_page()
    page.set_default_timeout(0)
    page.goto(f"{base}/episode/{episode}")
    page.wait_for_function("window.viewer && viewer.firstFrameMs !== null")
    first = page.evaluate("viewer.firstFrameMs") / 1000
    page.evaluate("viewer.clock.play()")
    page.wait_for_function("viewer.videos.every(v => v.ended)")
    page.close()
    return first


def raw_mp4s(browser: Any, base: str, meta: DatasetMeta, episode: int) -> float:
    """The baseline: <video>s playing the dataset's own mp4s (``/files/...``: Range requests
    onto Store.read_range) restricted to the episode by a media fragment (``#t=from,to``),
    as a viewer without clips would. Timed from the moment the videos are created (no page
    load, no API call: in the baseline's favour); played to the episode's end."""
    sources = [
        f"/files/{span.path}#t={span.from_timestamp},{span.to_timestamp}"
        for span in (meta.video_span(episode, key) for key in meta.video_keys)
    ]
    page = browser.new_page()
    page.set_default_timeout(0)
    page.goto(f"{base}/static/viewer.css")  # any page of the viewer's origin
    page.evaluate(
        """(sources) => {
            const t0 = performance.now();
            window.first = null;
            window.vs = sources.map((src) => {
                const v = document.createElement("video");
                v.muted = true; v.preload = "auto"; v.src = src;
                document.body.append(v);
                return v;
            });
            Promise.all(vs.map((v) => new Promise((r) => v.addEventListener("loadeddata", r))))
                .then(() => { window.first = performance.now() - t0; });
        }""",
        sources,
    )
    page.wait_for_function("window.first !== null")
    first = page.evaluate("window.first") / 1000
    page.evaluate("Promise.all(vs.map((v) => v.play()))")
    page.wait_for_function("vs.every((v) => v.paused)")
    page.wait_for_timeout(1000)  # let the buffering that goes on after the pause settle
    page.close()
    return first


MODES = {"baseline: the dataset's mp4": raw_mp4s, "episode page (clips)": episode_page}


if __name__ == "__main__":
    main()
