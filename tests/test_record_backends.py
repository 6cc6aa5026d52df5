"""Recording on every backend (local, memory, s3, gcs, hf), crashes on s3 and the Hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from record_helpers import FEATURES, FPS, LOSSLESS, check_values, record_episode
from robostore import Recorder
from robostore.backends import open_store
from robostore.meta import DatasetMeta
from robostore.record.lease import LEASE_PATH
from robostore.validate import validate

pytestmark = pytest.mark.timeout(900)  # a hang guard: the recording subprocess is slow on a loaded machine
HERE = Path(__file__).parent


def test_record_resume_on_every_backend(store_url, tmp_path):
    url, options = store_url
    lengths, tasks = {0: 6, 1: 4, 2: 5}, {0: "pick", 1: "place", 2: "pick"}
    with Recorder.create(
        url,
        fps=FPS,
        features=FEATURES,
        storage_options=options,
        video=LOSSLESS,
        staging_dir=tmp_path / "staging",
        data_files_size_in_mb=0.004,
        video_files_size_in_mb=0.02,
        publish_every=2,
    ) as rec:
        for ep in (0, 1):
            record_episode(rec, ep, lengths[ep], tasks[ep])
    with Recorder.resume(url, options, video=LOSSLESS, staging_dir=tmp_path / "staging") as rec:
        record_episode(rec, 2, lengths[2], tasks[2])
    report = validate(url, options)
    assert report.ok, report.problems
    assert DatasetMeta.open(url, options).total_episodes == 3
    check_values(url, lengths, tasks, options=options)
    assert not open_store(url, options).exists(LEASE_PATH)
    assert not any((tmp_path / "staging").rglob("*.mp4"))


def test_hub_publishes_in_batched_commits(backend_url, tmp_path):
    pytest.importorskip("huggingface_hub")
    url, options = backend_url("hf")
    with Recorder.create(
        url,
        fps=FPS,
        features=FEATURES,
        storage_options=options,
        video=LOSSLESS,
        staging_dir=tmp_path / "staging",
        publish_every=3,
        publish_interval_s=3600,
    ) as rec:
        for ep in range(7):
            record_episode(rec, ep, 3)
        store = rec.store
        commits_while_recording = len(store.api.list_repo_commits(store.repo_id, repo_type=store.repo_type))
    titles = [c.title for c in store.api.list_repo_commits(store.repo_id, repo_type=store.repo_type)]
    # 7 episodes in 3 publishes (3, 3, and the last one at close), never a commit per file.
    assert sum("record episodes" in t for t in titles) == 3, titles
    assert commits_while_recording <= len(titles) - 1
    assert len(titles) <= 8, titles
    assert validate(url, options).ok


SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests!r})
    from record_helpers import FEATURES, FPS, LOSSLESS, record_episode
    from robostore import Recorder

    rec = Recorder.create({url!r}, fps=FPS, features=FEATURES, video=LOSSLESS, storage_options=json.loads({options!r}),
                          staging_dir={staging!r}, publish_every=1, data_files_size_in_mb=0.004, video_files_size_in_mb=0.02)
    for ep in range(4):
        record_episode(rec, ep, 5 + ep, "task %d" % (ep % 2))
        rec.flush()
        print("flushed", ep, flush=True)
    rec.close()
    """
)


@pytest.mark.parametrize("backend", ["s3", pytest.param("hf", marks=pytest.mark.slow)])
@pytest.mark.parametrize("crash", ["publish_tier1:3", "publish_before_info:2"])
def test_kill9_on_remote_then_resume(backend_url, tmp_path, backend, crash):
    url, options = backend_url(backend)
    env = {**os.environ, "ROBOSTORE_RECORD_CRASH_AT": crash, "PYTHONPATH": str(HERE.parent / "src")}
    code = SCRIPT.format(tests=str(HERE), url=url, options=json.dumps(options), staging=str(tmp_path / "staging"))
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, check=False, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    flushed = proc.stdout.count("flushed")
    report = validate(url, options)
    assert report.ok, report.problems
    committed = DatasetMeta.open(url, options).total_episodes
    assert flushed <= committed <= flushed + 1
    assert any((tmp_path / "staging").iterdir())  # left by the crash
    saved = flushed + 1  # killed while publishing an episode save_episode returned for
    with Recorder.resume(url, options, video=LOSSLESS, staging_dir=tmp_path / "staging") as rec:
        assert rec.recovered == list(range(committed, saved))
        assert rec.episode_index == saved
        record_episode(rec, saved, 4, "after crash")
    report = validate(url, options)
    assert report.ok, report.problems
    lengths = {e: 5 + e for e in range(saved)} | {saved: 4}
    tasks = {e: f"task {e % 2}" for e in range(saved)} | {saved: "after crash"}
    check_values(url, lengths, tasks, options=options)
    assert not any((tmp_path / "staging").rglob("*.parquet"))
