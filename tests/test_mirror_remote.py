"""mirror() between real backends on loopback (moto S3, fake-gcs-server, the Hub emulator),
through a fault proxy, and across a kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import robostore
from backends.pytest_plugin import upload_folder
from faultproxy import FaultProxy
from robostore.backends import open_store
from robostore.meta import DatasetMeta
from robostore.mirror import MANIFEST_PATH
from robostore.mirror.copy import WHOLE_FILE_MAX
from robostore.validate import validate

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
PART = 8 * 2**20
pytestmark = pytest.mark.remote

PAIRS = [
    ("local", "s3"),
    ("s3", "local"),
    ("s3", "gcs"),
    ("local", "hf"),
    ("hf", "s3"),
    ("gcs", "hf"),
    ("memory", "gcs"),
]


def hashes(url: str, options: dict) -> dict[str, str]:
    with open_store(url, options) as store:
        return {
            p: hashlib.sha256(b).hexdigest() for p, b in store.read_many(store.list()).items() if p != MANIFEST_PATH
        }


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_pair(src_kind: str, dst_kind: str, backend_url) -> None:
    src, src_opts = backend_url(src_kind)
    dst, dst_opts = backend_url(dst_kind)
    upload_folder(DATA / "multi_chunk", src, src_opts)
    report = robostore.mirror(src, dst, src_options=src_opts, dst_options=dst_opts, progress=False)
    assert report.ok, report.failed
    assert hashes(dst, dst_opts) == hashes(src, src_opts) == hashes(str(DATA / "multi_chunk"), {})
    check = validate(dst, dst_opts)
    assert check.ok, check.problems
    again = robostore.mirror(src, dst, src_options=src_opts, dst_options=dst_opts, progress=False)
    assert again.copied == [] and len(again.skipped) == len(report.copied)


@pytest.mark.parametrize(("src_kind", "dst_kind"), [("s3", "hf"), ("hf", "gcs"), ("local", "s3")])
def test_subset_pair(src_kind: str, dst_kind: str, backend_url) -> None:
    src, src_opts = backend_url(src_kind)
    dst, dst_opts = backend_url(dst_kind)
    upload_folder(DATA / "video_basic", src, src_opts)
    report = robostore.mirror(src, dst, episodes="0,2", src_options=src_opts, dst_options=dst_opts, progress=False)
    assert report.ok, report.failed
    check = validate(dst, dst_opts)
    assert check.ok, check.problems
    meta = DatasetMeta.open(dst, dst_opts)
    assert meta.total_episodes == 2 and meta.total_frames == 70
    assert (
        robostore.mirror(src, dst, episodes="0,2", src_options=src_opts, dst_options=dst_opts, progress=False).copied
        == []
    )


@pytest.mark.usefixtures("hf_server")
def test_hub_destination_gets_batched_commits(backend_url) -> None:
    dst, dst_opts = backend_url("hf", commit_every_files=4)
    report = robostore.mirror(str(DATA / "multi_chunk"), dst, dst_options=dst_opts, progress=False)
    assert report.ok
    from huggingface_hub import HfApi

    repo = dst.removeprefix("hf://datasets/")
    commits = HfApi(endpoint=dst_opts["endpoint"]).list_repo_commits(repo, repo_type="dataset")
    # 15 files: a few commits of at most 4 files, payload before metadata; never one per file.
    assert 3 <= len(commits) < len(report.copied)


def write_blobs(root: Path, count: int, size: int) -> None:
    """A valid dataset plus ``count`` incompressible extra files of ``size`` bytes."""
    import shutil

    shutil.copytree(DATA / "multi_chunk", root)
    (root / "extras").mkdir()
    for i in range(count):
        (root / "extras" / f"blob-{i:03d}.bin").write_bytes(os.urandom(size))


def part_upload_s(backend_url) -> float:
    """Seconds moto takes now to store one PART, straight (no proxy), in a fresh root."""
    url, opts = backend_url("s3")
    with open_store(url, opts) as store:
        start = time.monotonic()
        store.write("probe.bin", bytes(PART))
        return time.monotonic() - start


@pytest.mark.usefixtures("s3_server")
def test_resets_every_few_megabytes(tmp_path: Path, backend_url) -> None:
    local = tmp_path / "src"
    write_blobs(local, 3, 24 * 2**20)
    # Files over whole_file_max stream: S3 multipart uploads of 8 MiB parts, reads in 8 MiB ranges.
    src, _ = backend_url("memory")
    upload_folder(local, src)
    dst, opts = backend_url("s3")
    # Tuned client: botocore retries each part up to 5 times (robostore's default is 2). A
    # reset can leave a request waiting in silence, which only the client's timeouts end;
    # they scale with how long moto takes right now to take one part (a loaded machine
    # starves it), so a slow answer is not mistaken for a dead connection.
    silence = max(15.0, 10 * part_upload_s(backend_url))
    patient = {"connect_timeout": silence, "read_timeout": silence}
    tuned = {**opts, "config_kwargs": {**patient, "retries": {"max_attempts": 5, "mode": "standard"}}}
    with FaultProxy.for_url(opts["endpoint_url"]) as proxy:
        proxy.reset_every = 32 * 2**20
        report = robostore.mirror(
            src, dst, dst_options={**tuned, "endpoint_url": proxy.url}, workers=4, whole_file_max=PART, progress=False
        )
        assert proxy.resets >= 2
    assert report.ok, report.failed
    assert hashes(dst, opts) == hashes(str(local), {})
    assert validate(dst, opts).ok
    # And back out of S3 through resets on the read side (s3fs retries reads by itself).
    back = tmp_path / "back"
    with FaultProxy.for_url(opts["endpoint_url"]) as proxy:
        proxy.reset_every = 32 * 2**20
        back_opts = {**tuned, "endpoint_url": proxy.url}
        report = robostore.mirror(dst, str(back), src_options=back_opts, workers=4, whole_file_max=PART, progress=False)
        assert proxy.resets >= 2
    assert report.ok and hashes(str(back), {}) == hashes(str(local), {})


@pytest.mark.usefixtures("s3_server")
def test_resume_after_kill_9(tmp_path: Path, backend_url) -> None:
    src = tmp_path / "src"
    write_blobs(src, 16, 256 * 1024)
    dst, opts = backend_url("s3")
    with FaultProxy.for_url(opts["endpoint_url"]) as proxy:
        proxy.bandwidth = 1 * 2**20  # ~4 s for the whole dataset
        # The child's uploads freeze once ~10 of the 16 files have gone through: where it
        # stops is set in bytes, not by how soon this test looks (a loaded CPU delays that).
        proxy.stall_after = 10 * 256 * 1024
        slow = {**opts, "endpoint_url": proxy.url}
        code = (
            "import json, sys, robostore; "
            "robostore.mirror(sys.argv[1], sys.argv[2], dst_options=json.loads(sys.argv[3]), workers=2, progress=False)"
        )
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        child = subprocess.Popen([sys.executable, "-c", code, str(src), dst, json.dumps(slow)], env=env)
        store = open_store(dst, opts)
        try:
            while child.poll() is None and not proxy.stall:
                time.sleep(0.1)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    before = set(store.list())
    assert 5 <= len([p for p in before if p.startswith("extras/")]) < 16
    assert "meta/info.json" not in before  # metadata only after every payload file
    report = robostore.mirror(str(src), dst, dst_options=opts, progress=False)
    assert report.ok
    assert not set(report.copied) & before, "files finished before the kill were copied again"
    assert hashes(dst, opts) == hashes(str(src), {})
    assert validate(dst, opts).ok


CHECKSUM_CASES = [
    ("local", "s3", False),
    ("memory", "s3", False),
    ("memory", "s3", True),
    ("memory", "gcs", False),
    ("memory", "gcs", True),
]


@pytest.mark.parametrize(
    ("src_kind", "dst_kind", "streamed"),
    CHECKSUM_CASES,
    ids=[f"{a}-{b}-{'parts' if p else 'whole'}" for a, b, p in CHECKSUM_CASES],
)
def test_object_store_checksums_verify_without_reading_back(
    src_kind: str, dst_kind: str, streamed: bool, tmp_path: Path, backend_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 ETags (single PUT and multipart) and GCS md5Hash confirm the bytes: no read-back.

    20 MiB files move whole (one PUT) under the default ``whole_file_max``; with it at
    8 MiB (``streamed``) they go in 8 MiB parts: three S3 parts (ETag ``…-3``), or a GCS
    resumable upload.
    """
    from robostore.mirror import core

    local = tmp_path / "src"
    write_blobs(local, 2, 20 * 2**20)
    src, src_opts = backend_url(src_kind)
    upload_folder(local, src, src_opts)
    dst, dst_opts = backend_url(dst_kind)
    read_back: list[str] = []
    real = core.sha256_of
    monkeypatch.setattr(core, "sha256_of", lambda store, path, **kw: read_back.append(path) or real(store, path, **kw))
    whole_max = PART if streamed else WHOLE_FILE_MAX
    report = robostore.mirror(
        src, dst, src_options=src_opts, dst_options=dst_opts, whole_file_max=whole_max, progress=False
    )
    assert report.ok and read_back == []
    assert hashes(dst, dst_opts) == hashes(str(local), {})
    if dst_kind == "s3":
        etags = {f.token for f in open_store(dst, dst_opts).list_info("extras")}
        assert all(t and t.endswith("-3") == streamed for t in etags), etags
