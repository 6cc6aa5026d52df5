"""`robostore view`: the web app over HTTP, and both pages in a real headless chromium.

The dataset is recorded once per session by the Recorder (two cameras, lerobot's
default AV1 codec, state and action), then copied to each backend under test. Values
the pages show are checked against a second path: the parquet files read with pyarrow
directly, and the video frames decoded by PyAV from the dataset's own mp4.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from backends.pytest_plugin import upload_folder
from robostore.cli import app as cli_app
from robostore.meta import DatasetMeta
from robostore.view import BackgroundViewer
from robostore.view.ranges import OPEN_RANGE_LIMIT, RangeNotSatisfiableError, parse_range

CHROMIUM = "/usr/bin/chromium"
EPISODES = 3
FRAMES = 30
FPS = 30
CAMS = ("observation.images.cam0", "observation.images.cam1")


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dataset recorded by robostore's Recorder (AV1, as lerobot records)."""
    from robostore.record import Recorder
    from robostore.record.demo import SyntheticRobot, demo_features

    root = tmp_path_factory.mktemp("view") / "demo"
    robot = SyntheticRobot(96, 128)
    with Recorder.create(str(root), fps=FPS, features=demo_features(96, 128), robot_type="robostore_demo") as rec:
        for ep in range(EPISODES):
            for i in range(FRAMES):
                rec.add_frame(robot.frame(ep, i, FPS))
            rec.save_episode()
    return root


@pytest.fixture(params=["local", "s3"])
def dataset(request: pytest.FixtureRequest, recorded: Path, backend_url: Any) -> tuple[str, dict]:
    url, options = backend_url(request.param)
    upload_folder(recorded, url, options)
    return url, options


@pytest.fixture
def s3_dataset(recorded: Path, backend_url: Any) -> tuple[str, dict]:
    url, options = backend_url("s3")
    upload_folder(recorded, url, options)
    return url, options


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side ``..`` resolution)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def parquet_episode(recorded: Path, episode: int) -> dict[str, np.ndarray]:
    """An episode's rows of the data file, read with pyarrow alone, in frame order."""
    import pyarrow.compute as pc

    table = pq.read_table(recorded / "data/chunk-000/file-000.parquet")
    table = table.filter(pc.equal(table.column("episode_index"), episode)).sort_by("frame_index")
    return {
        "timestamp": table.column("timestamp").to_numpy(),
        **{k: np.stack(table.column(k).to_numpy(zero_copy_only=False)) for k in ("observation.state", "action")},
    }


# ---------------------------------------------------------------------- HTTP


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-200", 100) == (90, 100)
    assert parse_range("bytes=-10", 100) == (90, 100)
    assert parse_range("bytes=5-", 100) == (5, 100)
    assert parse_range("bytes=0-", 10 * OPEN_RANGE_LIMIT) == (0, OPEN_RANGE_LIMIT)
    for bad in ("bytes=100-", "bytes=0-1,5-6", "items=0-1", "bytes=-", "bytes=9-3"):
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(bad, 100)


def test_files_are_served_by_range_and_never_outside_the_root(dataset: tuple[str, dict]) -> None:
    url, options = dataset
    meta = DatasetMeta.open(url, options)
    mp4 = meta.video_span(1, CAMS[0]).path
    whole = meta.store.read(mp4)
    with BackgroundViewer(url, options) as viewer:
        status, headers, body = get(f"{viewer.url}/files/{mp4}", {"Range": "bytes=100-1099"})
        assert status == 206 and body == whole[100:1100]
        assert headers["Content-Range"] == f"bytes 100-1099/{len(whole)}"
        status, headers, body = get(f"{viewer.url}/files/{mp4}", {"Range": "bytes=-50"})
        assert status == 206 and body == whole[-50:]
        status, _, body = get(f"{viewer.url}/files/{mp4}", {"Range": f"bytes={len(whole)}-"})
        assert status == 416
        for path in (
            "/files/../secret",
            "/files/meta/../../secret",
            "/files/%2e%2e/%2e%2e/etc/passwd",
            "/files/meta%2f..%2f..%2fx",
        ):
            status, body = raw_get(viewer.url, path)
            assert status in (400, 404), path
            if status == 400:
                assert json.loads(body)["error"] == "PathError"
        status, body = raw_get(viewer.url, "/files/data/chunk-000/nope.parquet")
        assert status == 404 and json.loads(body)["error"] == "NotFound"


def test_api_pages_filters_and_episode_data(dataset: tuple[str, dict], recorded: Path) -> None:
    url, options = dataset
    with BackgroundViewer(url, options) as viewer:
        status, _, body = get(f"{viewer.url}/api/dataset")
        summary = json.loads(body)
        assert status == 200 and summary["episodes"] == EPISODES and summary["frames"] == EPISODES * FRAMES
        assert summary["video_keys"] == list(CAMS) and summary["plotted"] == ["observation.state", "action"]
        page = json.loads(get(f"{viewer.url}/api/episodes?offset=1&limit=1")[2])
        assert page["total"] == EPISODES and [e["episode_index"] for e in page["episodes"]] == [1]
        task = DatasetMeta.open(url, options).episode(2).tasks[0]
        page = json.loads(get(f"{viewer.url}/api/episodes?" + urllib.parse.urlencode({"task": task}))[2])
        assert [e["episode_index"] for e in page["episodes"]] == [2] and page["total"] == 1
        status, _, body = get(f"{viewer.url}/api/episodes?limit=0")
        assert status == 422 and json.loads(body)["error"] == "SchemaError"
        status, _, body = get(f"{viewer.url}/api/episode/{EPISODES}")
        assert status == 422 and json.loads(body)["error"] == "SchemaError"

        episode = json.loads(get(f"{viewer.url}/api/episode/1")[2])
        assert (episode["previous"], episode["next"]) == (0, 2)
        assert [v["key"] for v in episode["videos"]] == list(CAMS)
        plots = json.loads(get(f"{viewer.url}/api/episode/1/data")[2])
        rows = parquet_episode(recorded, 1)
        state = rows["observation.state"]
        plot = next(p for p in plots["plots"] if p["key"] == "observation.state")
        assert plot["labels"] == [f"joint_{i}" for i in range(6)]
        assert np.array_equal(np.asarray(plot["series"], dtype=np.float32).T, state)
        assert plots["time"] == pytest.approx((rows["timestamp"] - rows["timestamp"][0]).tolist())


def clip_frames_match(url: str, options: dict, root: Path, episode: int, key: str) -> bytes:
    """The clip of ``key`` in ``episode`` decodes to the frames PyAV decodes from the episode's
    span of the dataset's own mp4 (a local copy under ``root``); returns the clip."""
    import io

    from robostore.video import VideoReader

    meta = DatasetMeta.open(url, options)
    span = meta.video_span(episode, key)
    frames = meta.episode(episode).length
    with BackgroundViewer(url, options) as viewer:
        status, headers, clip = get(f"{viewer.url}/clip/{episode}/{key}")
        assert status == 200 and headers["Accept-Ranges"] == "bytes"
        status, _, part = get(f"{viewer.url}/clip/{episode}/{key}", {"Range": "bytes=10-19"})
        assert status == 206 and part == clip[10:20]
        status, _, body = get(f"{viewer.url}/clip/{episode}/observation.state")
        assert status == 404 and json.loads(body)["error"] == "NotFound"
    times = [i / meta.fps for i in range(frames)]
    with VideoReader(io.BytesIO(clip), "clip") as reader:
        assert reader.num_frames in (None, frames)
        from_clip = reader.frames_at(times)
    with VideoReader(str(root / span.path), span.path) as reader:
        from_file = reader.frames_at([span.from_timestamp + t for t in times])
    assert np.array_equal(from_clip, from_file)
    return clip


def test_clip_holds_the_episode_frames_only(store_url: tuple[str, dict], recorded: Path) -> None:
    """The per-episode clip of a v3.0 mp4 (three episodes in one file), on every backend."""
    url, options = store_url
    upload_folder(recorded, url, options)
    clip = clip_frames_match(url, options, recorded, 2, CAMS[1])
    path = DatasetMeta.open(url, options).video_span(2, CAMS[1]).path
    assert len(clip) < 0.6 * (recorded / path).stat().st_size  # one episode of three


def test_v21_dataset_is_viewed_through_dataset_meta() -> None:
    """A lerobot-written v2.1 dataset (one mp4 per episode) opens like any other."""
    from conftest import DATA

    root = DATA / "v21_video"
    with BackgroundViewer(str(root)) as viewer:
        summary = json.loads(get(f"{viewer.url}/api/dataset")[2])
        assert summary["codebase_version"] == "v2.1" and summary["episodes"] == 3
        page = json.loads(get(f"{viewer.url}/api/episodes")[2])
        assert [e["episode_index"] for e in page["episodes"]] == [0, 1, 2]
    for key in DatasetMeta.open(str(root)).video_keys:
        clip_frames_match(str(root), {}, root, 1, key)


def test_image_cameras_and_scalar_plots(store_url: tuple[str, dict]) -> None:
    """A lerobot-written dataset with an ``image`` camera, a scalar reward and a bool flag, on every backend."""
    import pyarrow.compute as pc

    from conftest import DATA

    url, options = store_url
    upload_folder(DATA / "image_basic", url, options)
    table = pq.read_table(DATA / "image_basic/data/chunk-000/file-000.parquet")
    table = table.filter(pc.equal(table.column("episode_index"), 1)).sort_by("frame_index")
    with BackgroundViewer(url, options) as viewer:
        episode = json.loads(get(f"{viewer.url}/api/episode/1")[2])
        assert episode["videos"] == [] and [i["key"] for i in episode["images"]] == ["observation.images.cam0"]
        for frame in (0, table.num_rows - 1):
            status, headers, body = get(f"{viewer.url}{episode['images'][0]['url']}{frame}")
            assert status == 200 and headers["Content-Type"] == "image/png"
            assert body == table.column("observation.images.cam0")[frame]["bytes"].as_py()
        status, _, body = get(f"{viewer.url}{episode['images'][0]['url']}{table.num_rows}")
        assert status == 404 and json.loads(body)["error"] == "NotFound"
        plots = {p["key"]: p for p in json.loads(get(f"{viewer.url}/api/episode/1/data")[2])["plots"]}
        assert plots["next.reward"]["labels"] == ["next.reward"]
        assert plots["next.reward"]["series"][0] == table.column("next.reward").to_pylist()
        done = plots["next.done"]["series"][0]
        assert done == [int(v) for v in table.column("next.done").to_pylist()] and all(type(v) is int for v in done)


def test_validate_problems_become_episode_badges(recorded: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    shutil.copytree(recorded, root)
    meta = DatasetMeta.open(str(root))
    missing = meta.video_span(0, CAMS[1]).path
    (root / missing).unlink()
    with BackgroundViewer(str(root)) as viewer:
        viewer.app.state.viewer.validation.wait()  # no deadline: a loaded machine may be slow
        status = json.loads(get(f"{viewer.url}/api/problems")[2])
    assert status["state"] == "done"
    assert sorted(int(e) for e in status["episodes"]) == list(range(EPISODES))  # all share the mp4
    assert all(any("NotFound" in m and missing in m for m in msgs) for msgs in status["episodes"].values())


def hostile(recorded: Path, tmp_path: Path) -> Path:
    root = tmp_path / "hostile"
    shutil.copytree(recorded, root)
    info = json.loads((root / "meta/info.json").read_text())
    info["data_path"] = "../../outside/{episode_index}.parquet"
    (root / "meta/info.json").write_text(json.dumps(info))
    return root


def test_hostile_dataset_answers_the_cli_error(recorded: Path, tmp_path: Path) -> None:
    root = hostile(recorded, tmp_path)
    cli = CliRunner().invoke(cli_app, ["info", str(root)])
    assert cli.exit_code == 2
    with BackgroundViewer(str(root)) as viewer:
        status, _, body = get(f"{viewer.url}/api/dataset")
    error = json.loads(body)
    assert status == 422 and error["error"] == "SchemaError"
    assert " ".join(cli.output.split()) == " ".join(f"error: {error['message']}".split())


def test_cli_serves_on_loopback_until_interrupted(recorded: Path) -> None:
    import signal
    import subprocess

    command = [sys.executable, "-m", "robostore", "view", str(recorded), "--no-browser"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        address = line.split(" at ")[1].split()[0]
        assert address.startswith("http://127.0.0.1:")
        status, _, body = get(f"{address}/api/dataset")
        assert status == 200 and json.loads(body)["episodes"] == EPISODES
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode is not None


# ---------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium (installed by .ci/run), driven by Playwright; no browser is downloaded."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(0)  # no deadlines: the machine may be loaded; pytest-timeout bounds the test
    yield page
    context.close()


def test_dataset_page_lists_episodes_from_s3(s3_dataset: tuple[str, dict], page: Any) -> None:
    url, options = s3_dataset
    with BackgroundViewer(url, options) as viewer:
        page.goto(viewer.url + "/")
        page.wait_for_function("window.viewerReady === true")
        assert page.locator("#error").is_hidden()
        rows = page.locator("#episodes tbody tr")
        assert rows.count() == EPISODES
        assert [rows.nth(i).get_attribute("data-episode") for i in range(EPISODES)] == ["0", "1", "2"]
        assert "validate: no problems" in page.wait_for_selector("#validation:has-text('validate')").inner_text()
        page.select_option("#task-filter", index=2)
        page.wait_for_function("document.querySelectorAll('#episodes tbody tr').length === 1")
        assert page.locator("#episodes tbody tr").first.get_attribute("data-episode") == "1"


def canvas_grab(page: Any, camera: int) -> np.ndarray:
    pixels = page.evaluate(
        """(i) => {
            const v = viewer.videos[i];
            const c = document.createElement("canvas");
            c.width = v.videoWidth; c.height = v.videoHeight;
            const ctx = c.getContext("2d");
            ctx.drawImage(v, 0, 0);
            return [c.width, c.height, Array.from(ctx.getImageData(0, 0, c.width, c.height).data)];
        }""",
        camera,
    )
    width, height, data = pixels
    return np.asarray(data, dtype=np.uint8).reshape(height, width, 4)[..., :3]


def test_episode_page_plays_seeks_and_plots(dataset: tuple[str, dict], recorded: Path, page: Any) -> None:
    from robostore.video import VideoReader

    url, options = dataset
    meta = DatasetMeta.open(url, options)
    with BackgroundViewer(url, options) as viewer:
        page.goto(viewer.url + "/episode/1")
        page.wait_for_function("window.viewer && window.viewer.ready")
        assert page.locator("#error").is_hidden()
        page.wait_for_function("viewer.videos.length === 2 && viewer.videos.every(v => v.readyState >= 2)")

        # plays: every camera's currentTime advances
        page.evaluate("viewer.clock.play()")
        page.wait_for_function("viewer.videos.every(v => v.currentTime > 0.2)")
        page.evaluate("viewer.clock.pause()")

        # seeking to frame k shows frame k of the episode, as PyAV decodes it from the dataset's mp4
        k = 17
        assert page.evaluate(f"viewer.seekFrame({k})") == k
        assert page.evaluate("viewer.frame") == k
        for cam, key in enumerate(CAMS):
            span = meta.video_span(1, key)
            with VideoReader(str(recorded / span.path), span.path) as reader:
                decoded = reader.frames_at([span.from_timestamp + (k + d) / FPS for d in (-2, -1, 0, 1, 2)]).astype(
                    np.int16
                )
            shown = canvas_grab(page, cam).astype(np.int16)
            errors = [float(np.abs(shown - frame).mean()) for frame in decoded]
            assert errors[2] < 8, errors  # codec and colour-conversion tolerance
            assert errors[2] == min(errors), errors  # and it is that frame, not a neighbour

        # keyboard: right arrow steps one frame, down arrow opens the next episode
        page.keyboard.press("ArrowRight")
        page.wait_for_function(f"viewer.frame === {k + 1}")
        page.wait_for_function("viewer.videos.every(v => !v.seeking)")

        # the plot's data are the parquet values
        rows = parquet_episode(recorded, 1)
        for key in ("observation.state", "action"):
            data = page.evaluate(f"viewer.plots[{json.dumps(key)}].data")
            assert np.array_equal(np.asarray(data[1:], dtype=np.float32).T, rows[key])
            labels = page.evaluate(f"viewer.plots[{json.dumps(key)}].series.slice(1).map(s => s.label)")
            assert labels == [f"joint_{i}" for i in range(6)]

        page.keyboard.press("ArrowDown")
        page.wait_for_url("**/episode/2")
        page.wait_for_function("window.viewer && window.viewer.ready")
        assert page.evaluate("viewer.episode.episode_index") == 2


def test_hostile_dataset_shows_the_typed_error_on_the_page(recorded: Path, tmp_path: Path, page: Any) -> None:
    root = hostile(recorded, tmp_path)
    cli = CliRunner().invoke(cli_app, ["info", str(root)])
    with BackgroundViewer(str(root)) as viewer:
        for path in ("/", "/episode/0"):
            page.goto(viewer.url + path)
            page.wait_for_function("window.viewerError !== undefined")
            shown = page.locator("#error").inner_text()
            assert shown.startswith("SchemaError: ")
            assert " ".join(cli.output.split()) == " ".join(("error: " + shown.removeprefix("SchemaError: ")).split())
