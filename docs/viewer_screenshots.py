"""Remake the screenshots of docs/viewer.md: a demo dataset on the S3 test server, in Debian's chromium.

Usage: python docs/viewer_screenshots.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("SVT_LOG", "1")

import robostore  # noqa: E402
from backends.s3 import S3Server  # noqa: E402
from robostore.view import BackgroundViewer  # noqa: E402
from viewer import CHROMIUM, record  # noqa: E402


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, S3Server() as s3, sync_playwright() as pw:
        root = Path(tmp) / "pick_place"
        record(root, episodes=6, seconds=3, height=240, width=320)
        url = f"s3://{s3.new_bucket()}/pick_place"
        robostore.mirror(str(root), url, dst_options=s3.storage_options(), progress=False)
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1050})
        page.set_default_timeout(0)
        with BackgroundViewer(url, s3.storage_options()) as viewer:
            page.goto(viewer.url + "/")
            page.wait_for_function("window.viewerReady === true")
            page.wait_for_selector("#validation:has-text('validate')")
            page.screenshot(path=str(REPO / "docs/viewer-dataset.png"))
            page.goto(viewer.url + "/episode/2")
            page.wait_for_function("window.viewer && viewer.firstFrameMs !== null")
            page.evaluate("viewer.seekFrame(41)")
            page.screenshot(path=str(REPO / "docs/viewer-episode.png"))
        browser.close()


if __name__ == "__main__":
    main()
