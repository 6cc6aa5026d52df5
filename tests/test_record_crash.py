"""kill -9 at every step of a recording: the dataset stays valid and resumable.

A subprocess records episodes (flushing after each) and is killed with SIGKILL at a
named step (``ROBOSTORE_RECORD_CRASH_AT``). Then: the dataset opens and validates and
holds at least every flushed episode; ``Recorder.resume`` cleans up, publishes every
saved episode, records more, and the dataset validates again with every value as recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from record_helpers import check_values, record_episode
from robostore import Recorder
from robostore.meta import DatasetMeta
from robostore.validate import validate

pytestmark = pytest.mark.timeout(900)  # hang guards: the recording subprocesses are slow on a loaded machine

HERE = Path(__file__).parent
LENGTHS = [7, 5, 6, 4]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from record_helpers import FEATURES, FPS, LOSSLESS, record_episode
    from robostore import Recorder

    rec = Recorder.create({url!r}, fps=FPS, features=FEATURES, video=LOSSLESS,
                          chunks_size=2, data_files_size_in_mb=0.004, video_files_size_in_mb=0.02)
    for ep, n in enumerate({lengths!r}):
        record_episode(rec, ep, n, "task %d" % (ep % 3))
        rec.flush()
        print("flushed", ep, flush=True)
    rec.close()
    """
)

# (step, nth time reached, episodes past the flushed ones that survive): between files,
# after the data/video tier, after the episodes table, just before info.json, after the
# commit, and while staging -- all after save_episode returned for the episode being
# flushed, which resume publishes; while journaling the episode (save_episode had not
# returned: it is dropped) and just after (it is on disk: resume publishes it).
STEPS = [
    ("publish_file", 1, 1),
    ("publish_file", 4, 1),
    ("publish_tier0", 3, 1),
    ("publish_tier1", 1, 1),  # the first publish: resume's repair removes the only episodes file
    ("publish_tier1", 2, 1),
    ("publish_before_info", 3, 1),
    ("publish_committed", 2, 1),
    ("episode_staged", 2, 1),
    ("journal_write", 3, 0),
    ("episode_journaled", 2, 1),
]


def _run(url: str, crash: str | None) -> tuple[int, int]:
    """Run the recording script; returns (return code, episodes flushed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("ROBOSTORE_RECORD_CRASH_AT", None)
    if crash:
        env["ROBOSTORE_RECORD_CRASH_AT"] = crash
    code = SCRIPT.format(tests=str(HERE), url=url, lengths=LENGTHS)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True, timeout=600
    )
    flushed = sum(1 for line in proc.stdout.splitlines() if line.startswith("flushed"))
    return proc.returncode, flushed


def _check_after_crash(url: str, flushed: int) -> int:
    report = validate(url)
    assert report.ok, report.problems
    meta = DatasetMeta.open(url)
    assert flushed <= meta.total_episodes <= flushed + 1
    return meta.total_episodes


def _resume_and_finish(url: str, committed: int, saved: int) -> None:
    """Resume: it publishes the ``saved`` episodes first (those past ``committed`` from the journal)."""
    with Recorder.resume(url) as rec:
        assert rec.recovered == list(range(committed, saved))
        assert rec.episode_index == saved
        for ep in range(saved, len(LENGTHS) + 1):
            record_episode(rec, ep, 3 + ep, f"task {ep % 3}")
    report = validate(url)
    assert report.ok, report.problems
    lengths = {ep: LENGTHS[ep] for ep in range(saved)} | {ep: 3 + ep for ep in range(saved, len(LENGTHS) + 1)}
    tasks = {ep: f"task {ep % 3}" for ep in lengths}
    # Episodes recorded after the resume use the dataset's codec at default quality.
    check_values(url, {e: n for e, n in lengths.items() if e < saved}, tasks)
    check_values(url, {e: n for e, n in lengths.items() if e >= saved}, tasks, max_err=8.0)


@pytest.mark.parametrize(("step", "nth", "unflushed"), STEPS, ids=[f"{s}-{n}" for s, n, _ in STEPS])
def test_kill9_then_validate_resume_record_validate(tmp_path, step, nth, unflushed):
    url = str(tmp_path / "ds")
    code, flushed = _run(url, f"{step}:{nth}")
    assert code == -signal.SIGKILL, "the crash point was not reached"
    committed = _check_after_crash(url, flushed)
    # The crashed writer's lease is stale (its pid is gone): resume needs no force.
    _resume_and_finish(url, committed, flushed + unflushed)
    staging = tmp_path / ".ds.robostore-staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_crash_during_repair_is_repaired_by_the_next_resume(tmp_path):
    url = str(tmp_path / "ds")
    code, flushed = _run(url, "publish_before_info:3")
    assert code == -signal.SIGKILL
    leftovers = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    env = {**os.environ, "ROBOSTORE_RECORD_CRASH_AT": "repair_step:1", "PYTHONPATH": str(HERE.parent / "src")}
    resume = f"from robostore import Recorder\nRecorder.resume({url!r}).close()"
    proc = subprocess.run(
        [sys.executable, "-c", resume], env=env, check=False, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL
    assert len([p for p in (tmp_path / "ds").rglob("*") if p.is_file()]) < len(leftovers)
    committed = _check_after_crash(url, flushed)
    _resume_and_finish(url, committed, flushed + 1)


def test_uncommitted_rows_are_invisible_and_removed(tmp_path):
    url = str(tmp_path / "ds")
    code, flushed = _run(url, "publish_before_info:3")
    assert code == -signal.SIGKILL
    raw_rows = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "ds/meta/episodes").rglob("*.parquet"))
    meta = DatasetMeta.open(url)
    assert raw_rows == meta.total_episodes + 1 == flushed + 1
    with Recorder.resume(url) as rec:
        assert rec.recovered == [flushed]
    meta = DatasetMeta.open(url)
    rows = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "ds/meta/episodes").rglob("*.parquet"))
    assert rows == meta.total_episodes
    data_rows = sum(pq.read_metadata(p).num_rows for p in (tmp_path / "ds/data").rglob("*.parquet"))
    assert data_rows == meta.total_frames


def test_a_staged_episode_that_does_not_check_out_is_dropped_with_a_warning(tmp_path, caplog):
    url = str(tmp_path / "ds")
    code, flushed = _run(url, "publish_before_info:3")
    assert code == -signal.SIGKILL
    committed = _check_after_crash(url, flushed)
    [journaled] = (tmp_path / ".ds.robostore-staging").rglob(f"journal/{committed:012d}.episode")
    raw = bytearray(journaled.read_bytes())
    raw[-100] ^= 0xFF
    journaled.write_bytes(bytes(raw))
    with caplog.at_level("WARNING"), Recorder.resume(url) as rec:
        assert rec.recovered == []
        assert rec.episode_index == committed
    assert f"staged episode {committed}: unreadable: its content does not match its checksum" in caplog.text
    assert not any(p.is_file() for p in (tmp_path / ".ds.robostore-staging").rglob("*"))
    assert DatasetMeta.open(url).total_episodes == committed
