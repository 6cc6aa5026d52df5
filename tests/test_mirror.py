"""mirror() between local disk and memory: plan, copy, order, verify, incremental, delete."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

import robostore
from robostore.backends import open_store
from robostore.backends.memory import MemoryStore
from robostore.errors import NotFound, SchemaError
from robostore.meta import DatasetMeta
from robostore.mirror import MANIFEST_PATH
from robostore.mirror.copy import ByteBudget
from robostore.mirror.manifest import Entry, Manifest, ManifestModel
from robostore.mirror.report import MirrorReport
from robostore.store import Store

DATA = Path(__file__).parent / "data"
FIXTURES = ["video_basic", "image_basic", "multi_chunk"]


def tree_hashes(store: Store) -> dict[str, str]:
    return {p: hashlib.sha256(store.read(p)).hexdigest() for p in store.list() if p != MANIFEST_PATH}


@pytest.fixture
def local_copy(tmp_path: Path):
    def make(name: str) -> Path:
        dst = tmp_path / f"src-{name}"
        shutil.copytree(DATA / name, dst)
        return dst

    return make


@pytest.fixture
def memory_url():
    urls: list[str] = []

    def make(name: str = "ds") -> str:
        url = f"memory://mirror-{uuid.uuid4().hex[:8]}/{name}"
        urls.append(url)
        return url

    yield make
    for url in urls:
        store = open_store(url)
        store.fs.rm(store.root, recursive=True)


@pytest.mark.parametrize("name", FIXTURES)
def test_local_to_local_copies_everything(name: str, tmp_path: Path) -> None:
    report = robostore.mirror(str(DATA / name), str(tmp_path / "dst"), progress=False)
    src, dst = open_store(str(DATA / name)), open_store(str(tmp_path / "dst"))
    assert report.ok and not report.skipped
    assert sorted(report.copied) == src.list()
    assert report.bytes_copied == sum(f.size for f in src.list_info())
    assert tree_hashes(dst) == tree_hashes(src)
    meta = DatasetMeta.open(str(tmp_path / "dst"))
    assert meta.total_episodes == DatasetMeta.open(str(DATA / name)).total_episodes
    manifest = json.loads(dst.read(MANIFEST_PATH))
    assert set(manifest["files"]) == set(src.list())
    entry = manifest["files"]["meta/info.json"]
    assert entry["sha256"] == hashlib.sha256(src.read("meta/info.json")).hexdigest()
    assert entry["dest_token"] == dst.info("meta/info.json").token


@pytest.mark.parametrize("name", FIXTURES)
def test_memory_round_trip(name: str, tmp_path: Path, memory_url) -> None:
    mem = memory_url(name)
    first = robostore.mirror(str(DATA / name), mem, progress=False)
    second = robostore.mirror(mem, str(tmp_path / "back"), progress=False)
    assert first.ok and second.ok
    assert tree_hashes(open_store(str(tmp_path / "back"))) == tree_hashes(open_store(str(DATA / name)))


def test_noop_remirror_only_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dst = str(tmp_path / "dst")
    robostore.mirror(str(DATA / "multi_chunk"), dst, progress=False)

    read = Store.read

    def manifest_only(self, path):
        assert path == MANIFEST_PATH, f"a no-op mirror read {path}"
        return read(self, path)

    def forbidden(_self, *args, **_kwargs):
        raise AssertionError(f"a no-op mirror touched file contents: {args}")

    monkeypatch.setattr(Store, "read", manifest_only)
    for name in ("read_range", "read_many", "open", "write"):
        monkeypatch.setattr(Store, name, forbidden)
    report = robostore.mirror(str(DATA / "multi_chunk"), dst, progress=False)
    assert report.copied == [] and len(report.skipped) == len(open_store(dst).list()) - 1


def test_incremental_copies_only_the_changed_file(local_copy, tmp_path: Path) -> None:
    src = local_copy("multi_chunk")
    dst = str(tmp_path / "dst")
    robostore.mirror(str(src), dst, progress=False)
    changed = src / "videos/observation.images.cam0/chunk-001/file-000.mp4"
    changed.write_bytes(changed.read_bytes() + b"\0" * 10)
    report = robostore.mirror(str(src), dst, progress=False)
    assert report.copied == ["videos/observation.images.cam0/chunk-001/file-000.mp4"]
    assert (Path(dst) / "videos/observation.images.cam0/chunk-001/file-000.mp4").read_bytes() == changed.read_bytes()


def test_same_size_change_is_found_by_checksum(local_copy, tmp_path: Path) -> None:
    src = local_copy("video_basic")
    dst = str(tmp_path / "dst")
    robostore.mirror(str(src), dst, progress=False)
    stats = src / "meta/stats.json"
    stats.write_bytes(stats.read_bytes().replace(b"    ", b"\t   ", 1))
    touched = src / "meta/tasks.parquet"
    touched.write_bytes(touched.read_bytes())  # new token, same bytes
    report = robostore.mirror(str(src), dst, progress=False)
    assert report.copied == ["meta/stats.json"]
    assert "meta/tasks.parquet" in report.skipped
    assert (Path(dst) / "meta/stats.json").read_bytes() == stats.read_bytes()
    # The checksum comparison refreshed the manifest: the next run only lists.
    assert robostore.mirror(str(src), dst, progress=False).copied == []


def test_existing_identical_destination_is_adopted_without_copying(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    shutil.copytree(DATA / "video_basic", dst)
    report = robostore.mirror(str(DATA / "video_basic"), str(dst), progress=False)
    assert report.copied == [] and len(report.skipped) == 7
    assert (dst / MANIFEST_PATH).exists()


def test_changed_destination_file_is_repaired(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    robostore.mirror(str(DATA / "video_basic"), str(dst), progress=False)
    (dst / "data/chunk-000/file-000.parquet").write_bytes(b"garbage")
    report = robostore.mirror(str(DATA / "video_basic"), str(dst), progress=False)
    assert report.copied == ["data/chunk-000/file-000.parquet"]
    assert tree_hashes(open_store(str(dst))) == tree_hashes(open_store(str(DATA / "video_basic")))


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "extra.txt").write_text("keep me")
    report = robostore.mirror(str(DATA / "video_basic"), str(dst), dry_run=True, delete=True, progress=False)
    assert report.dry_run and len(report.planned) == 7 and report.copied == []
    assert report.bytes_planned == sum(f.size for f in open_store(str(DATA / "video_basic")).list_info())
    assert report.extra == ["extra.txt"] and report.deleted == []
    assert [p.name for p in dst.rglob("*")] == ["extra.txt"]


def test_delete_removes_extra_files_only_when_asked(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    robostore.mirror(str(DATA / "multi_chunk"), str(dst), progress=False)
    (dst / "data/chunk-009").mkdir()
    (dst / "data/chunk-009/file-000.parquet").write_bytes(b"stale")
    (dst / "meta/episodes/chunk-000/file-001.parquet").write_bytes(b"stale")
    kept = robostore.mirror(str(DATA / "multi_chunk"), str(dst), progress=False)
    assert kept.extra == ["data/chunk-009/file-000.parquet", "meta/episodes/chunk-000/file-001.parquet"]
    assert (dst / "data/chunk-009/file-000.parquet").exists()
    report = robostore.mirror(str(DATA / "multi_chunk"), str(dst), delete=True, progress=False)
    # Stale metadata goes before the payload files it might point at.
    assert report.deleted == ["meta/episodes/chunk-000/file-001.parquet", "data/chunk-009/file-000.parquet"]
    assert tree_hashes(open_store(str(dst))) == tree_hashes(open_store(str(DATA / "multi_chunk")))


class RecordingStore(MemoryStore):
    """A memory store that logs write order and can fail or corrupt chosen writes."""

    log: ClassVar[list[str]] = []
    fail: ClassVar[set[str]] = set()
    corrupt_once: ClassVar[set[str]] = set()

    def write(self, path, data):
        if path in self.fail:
            raise robostore.StoreError(f"{self.describe(path)}: injected failure")
        if path in self.corrupt_once:
            self.corrupt_once.discard(path)
            data = b"X" + bytes(data)[1:]
        self.log.append(path)
        super().write(path, data)


@pytest.fixture
def recording(memory_url):
    RecordingStore.log = []
    RecordingStore.fail = set()
    RecordingStore.corrupt_once = set()
    return RecordingStore.from_url(memory_url())


def test_metadata_is_written_after_payload_and_info_last(recording: RecordingStore) -> None:
    robostore.mirror(str(DATA / "multi_chunk"), recording, progress=False, workers=4)
    files = [p for p in recording.log if p != MANIFEST_PATH]
    assert files[-1] == "meta/info.json"
    first_meta = min(i for i, p in enumerate(files) if p.startswith("meta/"))
    assert all(not p.startswith("meta/") for p in files[:first_meta])
    assert all(p.startswith("meta/") for p in files[first_meta:])


def test_failed_payload_leaves_metadata_unwritten(recording: RecordingStore) -> None:
    bad = "videos/observation.images.cam0/chunk-001/file-000.mp4"
    RecordingStore.fail = {bad}
    report = robostore.mirror(str(DATA / "multi_chunk"), recording, progress=False)
    assert not report.ok and "injected failure" in report.failed[bad]
    assert "not written" in report.failed["meta/info.json"]
    assert not any(p.startswith("meta/") for p in recording.log)
    # The rerun copies only what is left, metadata last.
    RecordingStore.fail = set()
    RecordingStore.log = []
    again = robostore.mirror(str(DATA / "multi_chunk"), recording, progress=False)
    assert again.ok and min(again.copied) == "meta/episodes/chunk-000/file-000.parquet"
    assert [p for p in again.copied if not p.startswith("meta/")] == [bad]


def test_verify_rewrites_a_corrupted_copy(recording: RecordingStore) -> None:
    RecordingStore.corrupt_once = {"data/chunk-000/file-000.parquet"}
    report = robostore.mirror(str(DATA / "video_basic"), recording, progress=False)
    assert report.ok and report.recopied_after_verify == ["data/chunk-000/file-000.parquet"]
    assert tree_hashes(recording) == tree_hashes(open_store(str(DATA / "video_basic")))


def test_source_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/readme.txt").write_text("hello")
    with pytest.raises(NotFound, match=r"meta/info\.json"):
        robostore.mirror(str(tmp_path / "src"), str(tmp_path / "dst"), progress=False)
    assert not (tmp_path / "dst").exists()


def test_broken_info_json_is_a_schema_error_and_writes_nothing(local_copy, tmp_path: Path) -> None:
    src = local_copy("video_basic")
    (src / "meta/info.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"info\.json"):
        robostore.mirror(str(src), str(tmp_path / "dst"), progress=False)
    assert not (tmp_path / "dst").exists()


def test_report_json_round_trip(tmp_path: Path) -> None:
    report = robostore.mirror(str(DATA / "image_basic"), str(tmp_path / "dst"), progress=False)
    data = json.loads(report.to_json())
    assert data["ok"] is True and data["bytes_copied"] == report.bytes_copied
    assert data["throughput_mb_s"] >= 0
    assert MirrorReport.model_validate({k: v for k, v in data.items() if k not in ("ok", "throughput_mb_s")}) == report


def test_same_source_and_destination_is_refused() -> None:
    with pytest.raises(robostore.RobostoreError, match="same dataset"):
        robostore.mirror(str(DATA / "video_basic"), str(DATA / "video_basic"), progress=False)


def test_cli_mirror_json_and_dry_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robostore.cli import app

    runner = CliRunner()
    dst = str(tmp_path / "dst")
    dry = runner.invoke(app, ["mirror", str(DATA / "video_basic"), dst, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would copy  meta/info.json" in dry.output and not (tmp_path / "dst").exists()
    result = runner.invoke(
        app,
        [
            "mirror",
            str(DATA / "video_basic"),
            dst,
            "--episodes",
            "0-1",
            "--json",
            "--workers",
            "4",
            "--memory-limit-mb",
            "8",
            "--whole-file-max-mb",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] and data["subset"] == [0, 1] and "meta/info.json" in data["copied"]
    bad = runner.invoke(app, ["mirror", str(tmp_path), str(tmp_path / "x")])
    assert bad.exit_code == 2 and "meta/info.json" in bad.output


def test_cli_mirror_passes_its_transfer_limits_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from robostore.cli import app
    from robostore.mirror.copy import MEMORY_LIMIT, WHOLE_FILE_MAX

    package = importlib.import_module("robostore.mirror")  # robostore.mirror is also the function
    seen: list[dict] = []
    real = package.mirror
    monkeypatch.setattr(package, "mirror", lambda *a, **kw: (seen.append(kw), real(*a, **kw))[1])
    runner = CliRunner()
    src = str(DATA / "video_basic")
    assert runner.invoke(app, ["mirror", src, str(tmp_path / "a"), "--json"]).exit_code == 0
    result = runner.invoke(
        app, ["mirror", src, str(tmp_path / "b"), "--json", "--memory-limit-mb", "8", "--whole-file-max-mb", "1"]
    )
    assert result.exit_code == 0, result.output
    assert [(kw["memory_limit"], kw["whole_file_max"]) for kw in seen] == [
        (MEMORY_LIMIT, WHOLE_FILE_MAX),
        (8 << 20, 1 << 20),
    ]


class SlowStore(MemoryStore):
    """A memory store that holds each write of an ``extras/`` file until ``expected`` of them
    have been inside at once (or a long time has passed), then a while longer (room for one
    too many to get in), counting how many overlap. Waiting for the others, not only
    sleeping, makes reaching ``expected`` independent of how fast a loaded machine gets
    the workers there."""

    active = 0
    most = 0
    expected = 1
    lock = threading.Condition()

    def write(self, path, data):
        slow = path.startswith("extras/")
        if slow:
            with self.lock:
                SlowStore.active += 1
                SlowStore.most = max(SlowStore.most, SlowStore.active)
                self.lock.notify_all()
                self.lock.wait_for(lambda: SlowStore.most >= SlowStore.expected, timeout=60)
            time.sleep(0.1)
        try:
            super().write(path, data)
        finally:
            if slow:
                with self.lock:
                    SlowStore.active -= 1


@pytest.mark.parametrize(("memory_limit", "most"), [(int(2.5 * 2**20), 2), (256 * 2**20, 8)])
def test_memory_limit_bounds_whole_file_transfers(memory_limit: int, most: int, local_copy, memory_url) -> None:
    src = local_copy("video_basic")
    (src / "extras").mkdir()
    for i in range(8):
        (src / "extras" / f"blob-{i}.bin").write_bytes(os.urandom(2**20))
    SlowStore.active = SlowStore.most = 0
    SlowStore.expected = most
    dst = SlowStore.from_url(memory_url())
    report = robostore.mirror(str(src), dst, workers=8, memory_limit=memory_limit, progress=False)
    assert report.ok
    # Each 1 MiB file holds its size from the budget from its read to the end of its write.
    assert SlowStore.most == most
    assert tree_hashes(dst) == tree_hashes(open_store(str(src)))


def test_budget_larger_than_itself_is_clipped_not_deadlocked() -> None:
    budget = ByteBudget(10)
    got = threading.Event()

    def small() -> None:
        with budget.hold(1):
            got.set()

    with budget.hold(100):  # a file over the whole budget waits for all of it, then moves alone
        waiting = threading.Thread(target=small)
        waiting.start()
        assert not got.wait(0.2)
    assert got.wait(60)
    waiting.join(60)


def test_manifest_maybe_flush_does_not_wait_for_a_flush_in_progress(memory_url) -> None:
    entered, release = threading.Event(), threading.Event()

    class BlockingStore(MemoryStore):
        def write(self, path, data):
            entered.set()
            release.wait(60)  # set below; the bound only ends a broken run
            super().write(path, data)

    manifest = Manifest(BlockingStore.from_url(memory_url()), ManifestModel(), interval=0)
    manifest.record("a", Entry(size=1, source_token="t", sha256="s"))
    flushing = threading.Thread(target=manifest.flush)
    flushing.start()
    assert entered.wait(60)
    manifest.record("b", Entry(size=1, source_token="t", sha256="s"))
    # A transfer thread: must not queue behind the write in progress. The signal is not a
    # duration (which a loaded CPU stretches) but that it returns while that write is held.
    manifest.maybe_flush()
    assert flushing.is_alive()
    release.set()
    flushing.join(60)
    manifest.flush()  # the final flush does wait, and writes what the skipped one did not
    assert set(ManifestModel.model_validate_json(manifest.store.read(MANIFEST_PATH)).files) == {"a", "b"}
