"""robostore.Dataset on bad input: typed errors naming what and where, never a hang."""

from __future__ import annotations

import gc
import multiprocessing
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from fixture_data import copy_fixture
from robostore import Dataset
from robostore.errors import CorruptDataset, NotFound, RobostoreError, SchemaError, VideoError

pytestmark = pytest.mark.timeout(60)

MP4 = "videos/observation.images.cam0/chunk-000/file-000.mp4"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


@pytest.fixture
def video_basic(tmp_path: Path) -> Path:
    return copy_fixture("video_basic", tmp_path / "video_basic")


def test_index_out_of_range(video_basic: Path) -> None:
    ds = Dataset(video_basic)
    for bad in (90, 1000, -91):
        with pytest.raises(IndexError, match=str(bad)):
            ds[bad]
    with pytest.raises(TypeError):
        ds["3"]  # type: ignore[index]


def test_missing_episode(video_basic: Path) -> None:
    with pytest.raises(SchemaError, match=r"episodes=\[7\]"):
        Dataset(video_basic, episodes=[0, 7])


@pytest.mark.parametrize(
    ("deltas", "named"),
    [
        ({"observation.image": [0.0]}, "observation.image"),
        ({"task": [0.0]}, "'task'"),
        ({"action": [0.0, 0.05]}, "0.05"),
        ({"action": []}, "empty"),
    ],
)
def test_bad_delta_timestamps(video_basic: Path, deltas: dict, named: str) -> None:
    with pytest.raises(SchemaError, match=named):
        Dataset(video_basic, delta_timestamps=deltas)


def test_torchcodec_missing_or_unknown_backend(video_basic: Path) -> None:
    pytest.importorskip("torch")
    try:
        import torchcodec  # noqa: F401 - only whether it imports
    except ImportError:
        with pytest.raises(RobostoreError, match="pip install torchcodec"):
            Dataset(video_basic, video_backend="torchcodec")
    with pytest.raises(SchemaError, match="video_backend"):
        Dataset(video_basic, video_backend="opencv")


def test_missing_video_file(video_basic: Path) -> None:
    (video_basic / MP4).unlink()
    ds = Dataset(video_basic)
    with pytest.raises(NotFound, match=r"file-000\.mp4.*episode 1"):
        ds[40]


def test_missing_data_file(video_basic: Path) -> None:
    (video_basic / "data/chunk-000/file-000.parquet").unlink()
    ds = Dataset(video_basic)
    with pytest.raises(NotFound, match=r"data/chunk-000/file-000\.parquet"):
        ds[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_or_truncated_mp4(video_basic: Path, damage: str) -> None:
    path = video_basic / MP4
    data = path.read_bytes()
    path.write_bytes({"garbage": b"\x13\x37" * 4096, "truncated": data[: len(data) // 3], "empty": b""}[damage])
    ds = Dataset(video_basic)
    with pytest.raises(VideoError, match=r"file-000\.mp4"):  # noqa: PT012 - the first bad index raises
        for idx in (0, 45, 89):  # a truncated file may still decode its first frames
            ds[idx]


def test_corrupt_data_parquet(video_basic: Path) -> None:
    (video_basic / "data/chunk-000/file-000.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(CorruptDataset, match=r"file-000\.parquet"):
        Dataset(video_basic)[0]


def _shift_video_span(root: Path, seconds: float) -> None:
    """Move every episode's span in cam0's mp4 (from and to alike: the metadata stays consistent)."""
    table = pq.read_table(root / EPISODES)
    for end in ("from_timestamp", "to_timestamp"):
        name = f"videos/observation.images.cam0/{end}"
        shifted = pc.add(table.column(name), pa.scalar(seconds))
        table = table.set_column(table.schema.get_field_index(name), name, shifted)
    pq.write_table(table, root / EPISODES)


def test_frame_timestamps_out_of_tolerance(video_basic: Path) -> None:
    _shift_video_span(video_basic, 0.5 / 30)  # half a frame off
    ds = Dataset(video_basic)
    with pytest.raises(VideoError, match=r"file-000\.mp4.*episode 1.*tolerance_s"):
        ds[35]


def test_episode_beyond_end_of_video(video_basic: Path) -> None:
    _shift_video_span(video_basic, 10.0)
    with pytest.raises(VideoError, match=r"file-000\.mp4.*episode 2"):
        Dataset(video_basic)[60]


def test_data_file_disagrees_with_episodes_table(video_basic: Path) -> None:
    path = video_basic / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    index = table.column("index")
    moved = pc.if_else(pc.equal(table.column("episode_index"), 2), pc.add(index, 1000), index)
    pq.write_table(table.set_column(table.schema.get_field_index("index"), "index", moved), path)
    with pytest.raises(CorruptDataset, match=r"file-000\.parquet: episode 2 should hold frames 50\.\.89"):
        Dataset(video_basic)[0]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_error_in_worker_reaches_the_caller(video_basic: Path, context: str) -> None:
    path = video_basic / MP4
    path.write_bytes(path.read_bytes()[:2000])
    loader = torch.utils.data.DataLoader(
        Dataset(video_basic), batch_size=4, num_workers=2, multiprocessing_context=multiprocessing.get_context(context)
    )
    caught = None
    try:
        list(loader)
    except VideoError as exc:
        caught = str(exc)
    # Leaving the except block drops the traceback, and with it the loader's iterator,
    # which shuts its workers down now: a still-starting spawned worker must not
    # outlive this test and fail (SIGCHLD) inside the next one.
    gc.collect()
    assert caught is not None and re.search(r"file-000\.mp4", caught), caught
