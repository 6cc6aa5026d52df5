"""The hostile-input corpus (tests/hostile_cases.py) through every entry point.

Each case must give its typed error, with a message naming the damaged file, from:
``validate`` (as a problem), ``DatasetMeta.open`` (meta cases), ``Dataset`` (at
construction for meta cases, while reading every index for data cases; a sample also
through DataLoader workers), ``StreamingDataset`` (one epoch in the process; a sample
through two DataLoader workers), ``Recorder.resume`` (which refuses a broken dataset and
changes nothing) and ``mirror`` (which refuses a broken source before writing, so a
valid older copy at the destination stays as it was). Nothing may be written outside
the dataset root: the folder around it is compared before and after.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch.utils.data

from backends.pytest_plugin import REMOTE, backend_params, upload_folder
from fixture_data import copy_fixture
from hostile_cases import CASES, Case
from robostore import Recorder
from robostore.errors import RobostoreError
from robostore.meta import DatasetMeta
from robostore.mirror import mirror
from robostore.torch import Dataset, StreamingDataset
from robostore.validate import validate

pytestmark = pytest.mark.timeout(60)

META_CASES = [c for c in CASES if c.level == "meta"]
DATA_CASES = [c for c in CASES if c.level == "data"]
# validate (so resume and mirror) reads data files' index columns, not every PNG.
CHECKED_CASES = [c for c in CASES if c.validate]
# One per kind of damage to a data or video file, for the DataLoader-worker runs.
WORKER_CASES = [
    c
    for c in DATA_CASES
    if c.name
    in (
        "data parquet truncated",
        "data parquet missing",
        "mp4 truncated moov",
        "mp4 wrong resolution",
        "image bytes not png",
    )
]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (by content hash) and folder under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in folder.rglob("*")
    }


def expect(case: Case, call: Callable[[], object]) -> RobostoreError:
    """``call()`` raises ``case.error`` with a message naming ``case.path``."""
    with pytest.raises(RobostoreError) as err:
        call()
    assert isinstance(err.value, case.error), f"{case.name}: {type(err.value).__name__}: {err.value}"
    assert case.path in str(err.value), f"{case.name}: the message does not name {case.path}: {err.value}"
    return err.value


def read_every_index(url: str, options: dict | None = None) -> None:
    ds = Dataset(url, storage_options=options)
    for i in range(len(ds)):
        ds[i]


@pytest.fixture
def broken(request, tmp_path) -> tuple[Case, Path]:
    case: Case = request.param
    root = copy_fixture(case.fixture, tmp_path / "dataset")
    case.mutate(root)
    return case, root


def test_corpus_is_big_enough():
    assert len(CASES) >= 50
    assert len(WORKER_CASES) == 5


@pytest.mark.parametrize("broken", CHECKED_CASES, ids=lambda c: c.name, indirect=True)
def test_validate_reports_the_file(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    report = validate(str(root))
    assert not report.ok
    hits = [p for p in report.problems if p.path == case.path and case.fragment in p.message]
    assert hits, f"{case.name}: wanted {case.fragment!r} at {case.path}, got {report.problems}"
    assert hits[0].error == case.error.__name__, f"{case.name}: {hits[0]}"
    assert snapshot(tmp_path) == before, "validate must not write anything"


@pytest.mark.parametrize("broken", META_CASES, ids=lambda c: c.name, indirect=True)
def test_opening_raises_the_typed_error(broken):
    case, root = broken
    error = expect(case, lambda: DatasetMeta.open(str(root)))
    assert case.fragment in str(error)


@pytest.mark.parametrize("broken", CASES, ids=lambda c: c.name, indirect=True)
def test_dataset_raises_the_typed_error(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    expect(case, lambda: read_every_index(str(root)))
    assert snapshot(tmp_path) == before


def expect_from_workers(case, dataset):
    """``case``'s error comes out of 2 DataLoader workers as its own type: no hang (the
    loader's timeout), no dead worker."""
    batches = iter(torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=2, timeout=300))
    try:
        expect(case, lambda: list(batches))
        assert all(w.is_alive() for w in batches._workers), "a worker died instead of reporting the error"
    finally:
        # The raised error's traceback holds the iterator in a reference cycle; left to
        # the garbage collector, torch's shutdown waits 5 s per worker.
        batches._shutdown_workers()


@pytest.mark.parametrize("broken", WORKER_CASES, ids=lambda c: c.name, indirect=True)
def test_dataloader_workers_pass_the_typed_error_on(broken):
    """The error crosses from a worker process as its own type; no hang (DataLoader timeout), no dead worker."""
    case, root = broken
    expect_from_workers(case, Dataset(str(root)))


@pytest.mark.parametrize("broken", CASES, ids=lambda c: c.name, indirect=True)
def test_streaming_raises_the_typed_error(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    expect(case, lambda: list(StreamingDataset(str(root), shuffle_buffer=16)))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("broken", WORKER_CASES, ids=lambda c: c.name, indirect=True)
def test_streaming_workers_pass_the_typed_error_on(broken):
    case, root = broken
    expect_from_workers(case, StreamingDataset(str(root), shuffle_buffer=16))


@pytest.mark.parametrize("broken", CHECKED_CASES, ids=lambda c: c.name, indirect=True)
def test_resume_refuses_a_broken_dataset_and_changes_nothing(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    expect(case, lambda: Recorder.resume(str(root)))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("broken", CHECKED_CASES, ids=lambda c: c.name, indirect=True)
def test_mirror_refuses_a_broken_source_and_keeps_the_destination(broken, tmp_path):
    case, root = broken
    dst = copy_fixture(case.fixture, tmp_path / "older_copy")
    before = snapshot(tmp_path)
    expect(case, lambda: mirror(str(root), str(dst), progress=False, workers=2))
    assert snapshot(tmp_path) == before
    assert validate(str(dst)).ok


@pytest.mark.parametrize("broken", [c for c in DATA_CASES if c.validate], ids=lambda c: c.name, indirect=True)
def test_subset_mirror_refuses_a_broken_source(broken, tmp_path):
    case, root = broken
    before = snapshot(tmp_path)
    expect(case, lambda: mirror(str(root), str(tmp_path / "subset"), episodes=[0, 2], progress=False, workers=2))
    assert snapshot(tmp_path) == before


def test_resume_removes_only_its_own_leftovers(tmp_path):
    """Files no episode names are deleted only when named and numbered like a crashed append's."""
    root = copy_fixture("multi_chunk", tmp_path / "dataset")
    newest_data = root / "data/chunk-002/file-000.parquet"
    newest_mp4 = root / "videos/observation.images.cam0/chunk-002/file-000.mp4"
    leftovers = [
        root / "data/chunk-002/file-001.parquet",
        root / "videos/observation.images.cam0/chunk-003/file-000.mp4",
    ]
    users = [
        root / "data/extra.parquet",
        root / "data/chunk-000/file-007.parquet",  # inside the committed range: not an append's
        root / "videos/other_camera/chunk-009/file-000.mp4",  # not a video key of info.json
        root / "videos/observation.images.cam0/chunk-000/file-009.mp4",
    ]
    for path, like in [
        *zip(leftovers, (newest_data, newest_mp4), strict=True),
        *zip(users, (newest_data,) * 2 + (newest_mp4,) * 2, strict=True),
    ]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(like.read_bytes())
    Recorder.resume(str(root)).close()
    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in users)
    assert validate(str(root)).ok


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", backend_params(("memory", *REMOTE)))
@pytest.mark.parametrize("broken", CASES, ids=lambda c: c.name, indirect=True)
def test_every_entry_point_on_every_backend(broken, backend, backend_url, tmp_path):
    """The corpus uploaded to each backend: the same typed errors, naming the same files."""
    case, root = broken
    url, options = backend_url(backend)
    upload_folder(root, url, options)
    if case.validate:
        report = validate(url, options)
        assert any(p.path == case.path and p.error == case.error.__name__ for p in report.problems), report.problems
    expect(case, lambda: read_every_index(url, options))
    expect(case, lambda: list(StreamingDataset(url, storage_options=options, shuffle_buffer=16)))
    if case.validate:
        expect(case, lambda: Recorder.resume(url, options))
        dst = copy_fixture(case.fixture, tmp_path / "older_copy")
        before = snapshot(dst)
        expect(case, lambda: mirror(url, str(dst), src_options=options, progress=False, workers=2))
        assert snapshot(dst) == before
