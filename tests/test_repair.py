"""``robostore validate --repair`` on datasets damaged the way a crashed older writer leaves them.

A dataset of 6 episodes is recorded with files rolling over (data files hold episodes
0-1, 2-3, 4-5; mp4s 0-1, 2-4, 5), then damaged: (a) episode rows whose data never got written, counted by
info.json; (b) the last data parquet without its footer; (c) both; (d) the last mp4
truncated. The repair keeps the longest intact prefix: the result validates, the kept
episodes read back exactly as before, the report lists what was dropped, and every
file that went or changed is kept under ``.robostore/repair/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from backends.pytest_plugin import REMOTE, upload_folder
from record_helpers import FPS, LOSSLESS
from robostore import Recorder
from robostore.backends import open_store
from robostore.cli import app
from robostore.meta import DatasetMeta
from robostore.repair import BACKUP_DIR, repair_dataset
from robostore.torch import Dataset
from robostore.validate import validate

pytestmark = pytest.mark.timeout(120)

LENGTHS = [6, 5, 7, 4, 6, 5]
TASKS = ["pick", "place", "pick", "place", "stack", "stack"]  # "stack" only in the last two


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "dataset"
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (6,), "names": None},
        "observation.images.front": {"dtype": "video", "shape": (32, 48, 3), "names": ["height", "width", "channels"]},
    }
    rec = Recorder.create(
        str(root),
        fps=FPS,
        features=features,
        video=LOSSLESS,
        chunks_size=2,
        data_files_size_in_mb=0.007,
        video_files_size_in_mb=0.004,
    )
    with rec:
        for ep, (length, task) in enumerate(zip(LENGTHS, TASKS, strict=True)):
            for i in range(length):
                rec.add_frame(
                    {
                        "observation.state": np.full(6, ep * 100 + i, np.float32),
                        "action": np.full(6, -i, np.float32),
                        "observation.images.front": np.full((32, 48, 3), (ep * 40 + i * 5) % 256, np.uint8),
                        "task": task,
                    }
                )
            rec.save_episode()
    assert validate(str(root)).ok
    meta = DatasetMeta.open(str(root))
    layout = [(meta.data_path(e), meta.video_span(e, "observation.images.front").path) for e in range(len(LENGTHS))]
    assert [len({d for d, _ in layout[:k]}) for k in (2, 4, 6)] == [1, 2, 3], layout
    assert [len({v for _, v in layout[:k]}) for k in (2, 5, 6)] == [1, 2, 3], layout
    return root


@pytest.fixture
def dataset(recorded, tmp_path) -> Path:
    return Path(shutil.copytree(recorded, tmp_path / "dataset"))


def rows_without_data(root: Path, extra: int = 2) -> None:
    """(a) Rows for ``extra`` more episodes whose data and video never got written; info.json counts them."""
    episodes = root / max(DatasetMeta.open(str(root)).episode_files)
    table = pq.read_table(episodes)
    last = table.slice(table.num_rows - 1).to_pylist()[0]
    rows = []
    for k in range(1, extra + 1):
        row = dict(last)
        row["episode_index"] = last["episode_index"] + k
        row["dataset_from_index"] = last["dataset_to_index"] + (k - 1) * last["length"]
        row["dataset_to_index"] = row["dataset_from_index"] + last["length"]
        row["data/file_index"] = last["data/file_index"] + 1
        row["videos/observation.images.front/file_index"] = last["videos/observation.images.front/file_index"] + 1
        rows.append(row)
    pq.write_table(pa.concat_tables([table, pa.Table.from_pylist(rows, schema=table.schema)]), episodes)
    info = json.loads((root / "meta/info.json").read_text())
    info["total_episodes"] += extra
    info["total_frames"] += extra * last["length"]
    info["splits"] = {"train": f"0:{info['total_episodes']}"}
    (root / "meta/info.json").write_text(json.dumps(info))


def last_data_file(root: Path) -> str:
    return DatasetMeta.open(str(root), check=False).data_files()[-1]


def last_mp4(root: Path) -> str:
    return DatasetMeta.open(str(root), check=False).video_files()[-1]


def cut_footer(rel: Callable[[Path], str]) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / rel(root)
        path.write_bytes(path.read_bytes()[:-40])

    return mutate


def both(root: Path) -> None:
    rel = last_data_file(root)  # before rows_without_data names a file that is not there
    rows_without_data(root)
    cut_footer(lambda _: rel)(root)


def truncate_mp4(root: Path) -> None:
    path = root / last_mp4(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def items(url: str, episodes: list[int]) -> list[dict]:
    return items_at(url, None, episodes)


def items_at(url: str, options: dict | None, episodes: list[int]) -> list[dict]:
    ds = Dataset(url, episodes=episodes, storage_options=options)
    return [ds[i] for i in range(len(ds))]


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            if isinstance(x[key], torch.Tensor):
                assert torch.equal(x[key], y[key]), key
            else:
                assert x[key] == y[key], key


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


# damage -> (its first broken episode, how many rows it adds)
DAMAGE = {
    "rows without data": (rows_without_data, 6, 2),
    "footerless data file": (cut_footer(last_data_file), 4, 0),
    "both": (both, 4, 2),
    "mp4 truncated": (truncate_mp4, 5, 0),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_repair_keeps_the_intact_prefix(name, dataset, recorded):
    damage, keep, added = DAMAGE[name]
    data, mp4 = last_data_file(dataset), last_mp4(dataset)
    damage(dataset)
    damaged = snapshot(dataset)
    assert not validate(str(dataset)).ok

    plan = repair_dataset(str(dataset), dry_run=True)
    assert snapshot(dataset) == damaged, "a dry run writes nothing"
    report = repair_dataset(str(dataset))

    assert report.dropped_episodes == list(range(keep, len(LENGTHS) + added)) == plan.dropped_episodes
    assert report.kept_episodes == keep and report.kept_frames == sum(LENGTHS[:keep])
    assert report.reason and f"episode {keep}:" in report.reason
    assert set(report.moved) == set(plan.moved) and report.rewritten == plan.rewritten
    assert report.dropped_tasks == (["stack"] if keep <= 4 else [])

    after = validate(str(dataset))
    assert after.ok, after.problems
    meta = DatasetMeta.open(str(dataset))
    assert (meta.total_episodes, meta.total_frames) == (keep, sum(LENGTHS[:keep]))
    assert_same(items(str(dataset), list(range(keep))), items(str(recorded), list(range(keep))))
    # Nothing went without a copy: every moved file and every rewritten original is backed up.
    for path, backup in {**report.moved, **report.backups}.items():
        assert backup.startswith(BACKUP_DIR)
        assert hashlib.sha256((dataset / backup).read_bytes()).hexdigest() == damaged[path]
    for path in report.moved:
        assert not (dataset / path).exists()
    # The stats describe the kept episodes: recomputed from their per-episode stats.
    state = meta.stats.features["observation.state"]
    assert state.max[0] == pytest.approx((keep - 1) * 100 + LENGTHS[keep - 1] - 1)
    assert state.count == [sum(LENGTHS[:keep])]
    if keep == 4:  # episodes 4-5 gone: their data file and episode 5's mp4 are moved out
        assert {data, mp4} <= set(report.moved)
    if name == "mp4 truncated":  # episode 5 gone: the data file of 4-5 keeps episode 4's rows
        assert data in report.rewritten and mp4 in report.moved
        assert set(pq.read_table(dataset / data).column("episode_index").to_pylist()) == {4}


def test_nothing_to_repair_on_a_valid_dataset(dataset):
    before = snapshot(dataset)
    report = repair_dataset(str(dataset))
    assert not report.changed and report.dropped_episodes == []
    assert snapshot(dataset) == before


def test_repair_refuses_when_nothing_is_intact(dataset):
    first = dataset / DatasetMeta.open(str(dataset)).data_path(0)
    first.write_bytes(first.read_bytes()[:-40])
    before = snapshot(dataset)
    with pytest.raises(Exception, match="not even episode 0"):
        repair_dataset(str(dataset))
    assert snapshot(dataset) == before


def test_cli_repair(dataset):
    runner = CliRunner()
    both(dataset)
    damaged = snapshot(dataset)
    dry = runner.invoke(app, ["validate", str(dataset), "--repair", "--dry-run", "--json"])
    assert dry.exit_code == 1, dry.output
    plan = json.loads(dry.output)
    assert plan["repair"]["dry_run"] and plan["repair"]["dropped_episodes"] and plan["after"] is None
    assert snapshot(dataset) == damaged
    done = runner.invoke(app, ["validate", str(dataset), "--repair"])
    assert done.exit_code == 0, done.output
    assert "drops episodes" in done.output and done.output.rstrip().splitlines()[-1].startswith("ok:")
    again = runner.invoke(app, ["validate", str(dataset), "--repair"])
    assert again.exit_code == 0 and again.output.startswith("ok:")
    assert runner.invoke(app, ["validate", str(dataset), "--dry-run"]).exit_code == 2


@pytest.mark.parametrize(
    "backend",
    [pytest.param("memory"), *(pytest.param(b, marks=[pytest.mark.slow, pytest.mark.remote]) for b in REMOTE)],
)
def test_repair_on_other_backends(backend, dataset, recorded, backend_url):
    both(dataset)
    url, options = backend_url(backend)
    upload_folder(dataset, url, options)
    report = repair_dataset(url, options)
    assert report.dropped_episodes == [4, 5, 6, 7]
    assert validate(url, options).ok
    assert_same(items_at(url, options, list(range(4))), items(str(recorded), list(range(4))))
    store = open_store(url, options)
    assert all(store.exists(backup) for backup in report.moved.values())
    assert not any(store.exists(path) for path in report.moved)
