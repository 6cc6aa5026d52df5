"""kill -9 of a recording subprocess at random points, on local disk and S3 (moto).

Each point is drawn from a seeded generator (``ROBOSTORE_CRASH_SEED`` overrides the
base seed; every failure message names the point's seed): random episode lengths
(1-frame episodes included), random file/chunk limits (rollover), random flush
cadence, and one of three ways to die:

* ``frames``: the recording loop kills itself after a random number of ``add_frame``
  calls, whatever the background encoder, writer and publisher threads are doing;
* ``time``: the test kills it a random time after it started recording;
* ``step``: at the n-th pass of one of the recorder's named crash points.

The subprocess prints ``saved e`` after each ``save_episode`` and ``flushed e`` after
each ``flush()`` returns. After the kill: the dataset validates; it holds every
flushed episode (and nothing past the saved ones), each with the values recorded;
``Recorder.resume`` publishes every episode ``save_episode`` returned for (from the
local staging journal, for remote destinations too), continues at the next index,
records more, and the whole dataset validates and reads back value for value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recording import LOSSLESS, Episode, Recording, record_episode
from robostore import Recorder
from robostore.backends import open_store
from robostore.meta import DatasetMeta
from robostore.torch import Dataset
from robostore.validate import validate
from roundtrip import check_dataset

pytest.importorskip("av")
pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).parent
BASE_SEED = int(os.environ.get("ROBOSTORE_CRASH_SEED", "7321"))
#: Named crash points of the recorder (robostore/record/_crash.py) and how often each is reached.
STEPS = (
    "publish_file",
    "publish_tier0",
    "publish_tier1",
    "publish_before_info",
    "publish_committed",
    "episode_staged",
    "journal_write",
    "episode_journaled",
)

FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [4], "names": None},
    "action": {"dtype": "float64", "shape": [2], "names": None},
    "gripper": {"dtype": "bool", "shape": [1], "names": None},
    "observation.images.front": {"dtype": "video", "shape": [16, 24, 3], "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "image", "shape": [8, 8, 3], "names": ["height", "width", "channels"]},
}

CHILD = """
import json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from recording import Recording, frame_values
from robostore import Recorder

plan = json.loads(sys.argv[2])
rec = Recording.from_json(plan["recording"])
recorder = Recorder.create(plan["url"], storage_options=plan["options"], staging_dir=plan["staging"], **rec.create_kwargs())
print("ready", flush=True)
frames = 0
for e, episode in enumerate(rec.episodes):
    for i in range(episode.length):
        recorder.add_frame(frame_values(rec.features, episode, i))
        frames += 1
        if frames == plan["kill_after_frames"]:
            os.kill(os.getpid(), signal.SIGKILL)
    recorder.save_episode()
    print("saved", e, flush=True)
    if (e + 1) % plan["flush_every"] == 0 or e == len(rec.episodes) - 1:
        recorder.flush()
        print("flushed", e, flush=True)
recorder.close()
print("closed", flush=True)
"""


@dataclasses.dataclass
class Point:
    """One crash: what is recorded and how the recording dies."""

    seed: int
    recording: Recording
    how: str  # "frames", "time" or "step"
    kill_after_frames: int | None
    kill_after_s: float | None
    step: str | None
    flush_every: int

    def __str__(self) -> str:
        lengths = [e.length for e in self.recording.episodes]
        if self.how == "frames":
            at = f"after frame {self.kill_after_frames}"
        elif self.how == "time":
            at = f"{self.kill_after_s:.2f} s after start"
        else:
            at = f"at {self.step}"
        return (
            f"crash point seed={self.seed} (ROBOSTORE_CRASH_SEED={BASE_SEED}): kill -9 {at}, lengths {lengths}, "
            f"flush every {self.flush_every}, chunks_size {self.recording.chunks_size}, "
            f"data/video MB {self.recording.data_files_size_in_mb}/{self.recording.video_files_size_in_mb}"
        )


def draw_point(seed: int) -> Point:
    """The crash point of ``seed`` (reproducible)."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.choice([1, 2, 3, 5, 8], size=int(rng.integers(3, 7)))]
    recording = Recording(
        features=FEATURES,
        episodes=[
            Episode(n, ["pick", "place", "wipe"][int(rng.integers(3))], int(rng.integers(2**31))) for n in lengths
        ],
        chunks_size=int(rng.choice([1, 2, 1000])),
        data_files_size_in_mb=float(rng.choice([0.003, 0.01, 100.0])),
        video_files_size_in_mb=float(rng.choice([0.003, 0.01, 100.0])),
    )
    how = str(rng.choice(["frames", "time", "step"], p=[0.45, 0.35, 0.2]))
    total = sum(lengths)
    return Point(
        seed=seed,
        recording=recording,
        how=how,
        kill_after_frames=int(rng.integers(1, total + 1)) if how == "frames" else None,
        kill_after_s=float(rng.uniform(0.0, 0.08 * len(lengths))) if how == "time" else None,
        step=f"{rng.choice(STEPS)}:{int(rng.integers(1, len(lengths) + 1))}" if how == "step" else None,
        flush_every=int(rng.integers(1, 3)),
    )


@dataclasses.dataclass
class Outcome:
    saved: int  # episodes save_episode returned for
    flushed: int  # episodes flush() returned for
    killed: bool


def run_child(point: Point, url: str, options: dict[str, Any], staging: Path) -> Outcome:
    """Record ``point``'s episodes in a subprocess and kill it as the point says."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("ROBOSTORE_RECORD_CRASH_AT", None)
    if point.step:
        env["ROBOSTORE_RECORD_CRASH_AT"] = point.step
    plan = {
        "recording": point.recording.to_json(),
        "url": url,
        "options": options,
        "staging": str(staging),
        "kill_after_frames": point.kill_after_frames,
        "flush_every": point.flush_every,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(HERE), json.dumps(plan)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 600  # a hang guard: a loaded machine may take minutes
    kill_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            assert now < deadline, f"{point}: the recording subprocess did not finish in 600 s"
            wait = 0.5 if kill_at is None else max(0.0, kill_at - now)
            ready, _, _ = select.select([child.stdout], [], [], wait)
            if ready:
                line = child.stdout.readline()
                if not line:
                    break
                lines.append(line.strip())
                if line.startswith("ready") and point.kill_after_s is not None:
                    kill_at = time.monotonic() + point.kill_after_s
            if kill_at is not None and time.monotonic() >= kill_at:
                child.send_signal(signal.SIGKILL)
                kill_at = None
    finally:
        if child.poll() is None:
            child.kill()
        code = child.wait()
        stderr = child.stderr.read() if child.stderr else ""
    assert code in (0, -signal.SIGKILL), f"{point}: the recording subprocess failed ({code}):\n{stderr[-3000:]}"
    assert "ready" in lines, f"{point}: died before recording:\n{stderr[-3000:]}"
    saved = sum(1 for line in lines if line.startswith("saved"))
    flushed = max((int(line.split()[1]) + 1 for line in lines if line.startswith("flushed")), default=0)
    return Outcome(saved, flushed, code == -signal.SIGKILL)


def check_point(point: Point, url: str, options: dict[str, Any], staging: Path) -> None:
    outcome = run_child(point, url, options, staging)
    if point.how in ("frames", "step"):
        assert outcome.killed, f"{point}: the kill point was not reached ({outcome})"
    rec = point.recording

    if not open_store(url, options).exists("meta/info.json"):
        # Killed before Recorder.create wrote info.json: nothing was promised yet.
        assert outcome.flushed == 0, f"{point}: {outcome} but no info.json"
        return
    report = validate(url, options)
    assert report.ok, f"{point}: after the kill: {report.problems}"
    committed = DatasetMeta.open(url, options).total_episodes
    assert outcome.flushed <= committed <= min(outcome.saved + 1, len(rec.episodes)), (
        f"{point}: {outcome}, committed {committed}"
    )
    if committed:
        check_dataset(
            Dataset(url, storage_options=options, return_uint8=True),
            dataclasses.replace(rec, episodes=rec.episodes[:committed]),
        )

    more = [Episode(length, "after resume", point.seed * 10 + i) for i, length in enumerate((1, 4))]
    with Recorder.resume(url, options, video=LOSSLESS, staging_dir=staging) as recorder:
        # Every episode save_episode returned for survives (and the one being saved
        # may too, if the kill came after it was on disk).
        kept_count = recorder.episode_index
        assert max(outcome.saved, committed) <= kept_count <= min(outcome.saved + 1, len(rec.episodes)), (
            f"{point}: {outcome}, committed {committed}, resume continues at {kept_count}"
        )
        assert recorder.recovered == list(range(committed, kept_count)), f"{point}: recovered {recorder.recovered}"
        for episode in more:
            record_episode(recorder, rec.features, episode)
    kept = dataclasses.replace(rec, episodes=rec.episodes[:kept_count])
    report = validate(url, options)
    assert report.ok, f"{point}: after resume: {report.problems}"
    final = dataclasses.replace(rec, episodes=[*kept.episodes, *more])
    check_dataset(Dataset(url, storage_options=options, return_uint8=True), final)
    assert not any(p.is_file() for p in staging.rglob("*")), f"{point}: staging left behind"


def local_root(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    return str(tmp_path / "ds"), {}


@pytest.mark.parametrize("n", range(4))
def test_kill9_local(n: int, tmp_path: Path) -> None:
    url, options = local_root(tmp_path)
    check_point(draw_point(BASE_SEED + n), url, options, tmp_path / "staging")


@pytest.mark.remote
@pytest.mark.parametrize("n", range(2))
def test_kill9_s3(n: int, tmp_path: Path, backend_url) -> None:
    url, options = backend_url("s3")
    check_point(draw_point(BASE_SEED + 1000 + n), url, options, tmp_path / "staging")


@pytest.mark.slow
@pytest.mark.parametrize("n", range(4, 24))
def test_kill9_local_matrix(n: int, tmp_path: Path) -> None:
    url, options = local_root(tmp_path)
    check_point(draw_point(BASE_SEED + n), url, options, tmp_path / "staging")


@pytest.mark.slow
@pytest.mark.remote
@pytest.mark.parametrize("n", range(2, 22))
def test_kill9_s3_matrix(n: int, tmp_path: Path, backend_url) -> None:
    url, options = backend_url("s3")
    check_point(draw_point(BASE_SEED + 1000 + n), url, options, tmp_path / "staging")
