"""LeRobot v2.1 datasets read in place, against what lerobot 0.3.3 returned, on every backend.

The fixtures tests/data/v21_* were written by lerobot 0.3.3 (tests/peer033/make_dataset.py)
and the expected values dumped by lerobot 0.3.3 itself (tests/peer033/dump_dataset.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from backends.pytest_plugin import backend_params, new_root, upload_folder
from fixture_data import DATA, expected
from robostore import (
    CorruptDataset,
    Dataset,
    DatasetMeta,
    NotFound,
    SchemaError,
    StreamingDataset,
    validate,
)
from robostore.cli import app
from test_dataset import assert_item

V21 = ("v21_video", "v21_image")
DELTAS = {"v21_video": "delta_video.json", "v21_image": "delta_image.json"}
FRAME_ATOL = 1 / 255 + 1e-6

Opened = Callable[[str], tuple[str, dict]]


@pytest.fixture(scope="module", params=backend_params())
def v21_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Opened:
    """``v21_url(name) -> (url, storage_options)`` of fixture ``name`` on the parametrised backend."""
    made: dict[str, tuple[str, dict]] = {}

    def at(name: str) -> tuple[str, dict]:
        if name not in made:
            if request.param == "local":
                made[name] = (str(DATA / name), {})
            else:
                url, options = new_root(request.param, request, tmp_path_factory.mktemp(name))
                upload_folder(DATA / name, url, options)
                made[name] = (url, options)
        return made[name]

    return at


def _deltas(name: str) -> dict[str, list[float]]:
    return json.loads((DATA / DELTAS[name]).read_text())


@pytest.mark.parametrize("name", V21)
@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
def test_dataset_matches_lerobot033(v21_url: Opened, name: str, delta: bool) -> None:
    meta, npz = expected(name, delta)
    url, options = v21_url(name)
    ds = Dataset(url, storage_options=options, delta_timestamps=_deltas(name) if delta else None)
    assert len(ds) == meta["len"]
    assert ds.num_episodes == meta["num_episodes"]
    assert ds.delta_indices == meta["delta_indices"]
    for idx in meta["indices"]:
        assert_item(ds[idx], npz, meta["item_keys"][str(idx)], idx, meta["camera_keys"])


@pytest.mark.parametrize("name", V21)
def test_meta_matches_lerobot033(v21_url: Opened, name: str) -> None:
    want, _ = expected(name)
    url, options = v21_url(name)
    meta = DatasetMeta.open(url, options)
    assert meta.info.codebase_version == "v2.1"
    assert meta.tasks == sorted(want["tasks"], key=want["tasks"].get)
    assert [meta.episode(e["episode_index"]).tasks for e in want["episodes"]] == [e["tasks"] for e in want["episodes"]]
    assert meta.columns["length"].tolist() == [e["length"] for e in want["episodes"]]
    # lerobot 0.3 aggregates episodes_stats.jsonl on load; robostore sums in another order.
    assert meta.stats is not None
    assert sorted(meta.stats.features) == sorted(want["stats"])
    for key, stats in want["stats"].items():
        ours = meta.stats.features[key]
        for stat, value in stats.items():
            np.testing.assert_allclose(
                np.asarray(getattr(ours, stat), float), np.asarray(value, float), rtol=1e-9, err_msg=f"{key}/{stat}"
            )


@pytest.mark.parametrize("name", V21)
def test_streaming_matches_lerobot033(v21_url: Opened, name: str) -> None:
    meta, npz = expected(name)
    url, options = v21_url(name)
    seen = {}
    for item in StreamingDataset(url, storage_options=options):
        if int(item["index"]) in meta["indices"]:
            seen[int(item["index"])] = item
    assert sorted(seen) == sorted(meta["indices"])
    for idx, item in seen.items():
        assert_item(item, npz, meta["item_keys"][str(idx)], idx, meta["camera_keys"])


def test_episode_files_and_spans() -> None:
    meta = DatasetMeta.open(str(DATA / "v21_video"))
    assert meta.info.chunks_size == 2
    episode = meta.episode(2)
    assert episode.data_path == "data/chunk-001/episode_000002.parquet"
    span = episode.videos["observation.images.cam1"]
    assert span.path == "videos/chunk-001/observation.images.cam1/episode_000002.mp4"
    assert (span.from_timestamp, span.to_timestamp) == (0.0, 40 / 30)
    assert meta.frame_range(2) == (50, 90)
    # per-episode stats as v3.0 columns (the converter writes them into the episodes table)
    table = meta.episode_stats()
    assert table.column("stats/observation.state/count").to_pylist() == [[30], [20], [40]]


@pytest.mark.parametrize("name", V21)
def test_cli_info_ls_validate(name: str) -> None:
    runner = CliRunner()
    root = str(DATA / name)
    info = json.loads(runner.invoke(app, ["info", root, "--json"]).stdout)
    want, _ = expected(name)
    assert (info["codebase_version"], info["episodes"], info["frames"]) == ("v2.1", want["num_episodes"], want["len"])
    listed = runner.invoke(app, ["ls", root, "--json"])
    assert "meta/episodes.jsonl" in {f["path"] for f in json.loads(listed.stdout)}
    result = runner.invoke(app, ["validate", root, "--json"])
    assert result.exit_code == 0, result.stdout
    features = want["info"]["features"]
    videos = len(features) - len([k for k, f in features.items() if f["dtype"] != "video"])
    assert json.loads(result.stdout)["files_checked"] >= want["num_episodes"] * (1 + videos)


# ---------------------------------------------------------------------- broken input


def _broken(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(DATA / "v21_video", root)
    return root


def test_missing_jsonl_is_not_found(tmp_path: Path) -> None:
    root = _broken(tmp_path)
    (root / "meta/episodes.jsonl").unlink()
    with pytest.raises(NotFound, match=r"meta/episodes\.jsonl"):
        DatasetMeta.open(str(root))


def test_damaged_jsonl_names_the_line(tmp_path: Path) -> None:
    root = _broken(tmp_path)
    path = root / "meta/tasks.jsonl"
    path.write_text(path.read_text() + '{"task_index": 9, "task": \n')
    with pytest.raises(CorruptDataset, match=r"tasks.jsonl line \d+"):
        DatasetMeta.open(str(root))
    path.write_text('{"task_index": "0", "task": "x"}\n')
    with pytest.raises(CorruptDataset, match="task_index must be a non-negative integer"):
        DatasetMeta.open(str(root))


def test_total_episodes_beyond_the_table_is_refused(tmp_path: Path) -> None:
    root = _broken(tmp_path)
    lines = (root / "meta/episodes.jsonl").read_text().splitlines()
    (root / "meta/episodes.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(CorruptDataset, match="total_episodes is 3 but the episodes table has 2 rows"):
        DatasetMeta.open(str(root))


def test_validate_finds_missing_and_wrong_files(tmp_path: Path) -> None:
    root = _broken(tmp_path)
    (root / "data/chunk-000/episode_000001.parquet").unlink()
    short = root / "videos/chunk-001/observation.images.cam0/episode_000002.mp4"
    shutil.copyfile(root / "videos/chunk-000/observation.images.cam0/episode_000001.mp4", short)
    report = validate(str(root))
    problems = {p.path: p for p in report.problems}
    assert problems["data/chunk-000/episode_000001.parquet"].error == "NotFound"
    assert "to_timestamp" in problems[short.relative_to(root).as_posix()].message
    with pytest.raises(NotFound, match=r"episode_000001\.parquet"):
        Dataset(str(root))[30]


def test_rows_of_another_episode_are_found(tmp_path: Path) -> None:
    root = _broken(tmp_path)
    shutil.copyfile(root / "data/chunk-000/episode_000000.parquet", root / "data/chunk-000/episode_000001.parquet")
    report = validate(str(root))
    assert any("episode 1: expected rows with index 30..49" in p.message for p in report.problems)


def test_writers_refuse_v21(tmp_path: Path) -> None:
    from robostore import Recorder, mirror

    root = _broken(tmp_path)
    with pytest.raises(SchemaError, match="robostore convert"):
        Recorder.resume(str(root))
    with pytest.raises(SchemaError, match="robostore convert"):
        mirror(str(root), str(tmp_path / "subset"), episodes="0", progress=False)
    # a plain mirror copies it as it is, and the copy reads the same
    mirror(str(root), str(tmp_path / "copy"), progress=False)
    _, npz = expected("v21_video")
    np.testing.assert_allclose(
        Dataset(str(tmp_path / "copy"))[70]["observation.images.cam0"].numpy(),
        npz["item/70/observation.images.cam0"],
        atol=FRAME_ATOL,
    )
    np.testing.assert_array_equal(Dataset(str(tmp_path / "copy"))[70]["action"].numpy(), npz["item/70/action"])


def test_missing_episode_stats_warn_and_aggregate_the_rest(tmp_path: Path) -> None:
    from robostore.errors import DatasetWarning

    root = _broken(tmp_path)
    lines = (root / "meta/episodes_stats.jsonl").read_text().splitlines()
    (root / "meta/episodes_stats.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with pytest.warns(DatasetWarning, match="1 episodes have no statistics"):
        meta = DatasetMeta.open(str(root))
    assert meta.stats is not None
    assert meta.stats.features["observation.state"].count == [30 + 20]
