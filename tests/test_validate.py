import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fixture_data import FIXTURES, copy_fixture, fixture_path
from robostore.cli import app
from robostore.validate import validate

runner = CliRunner()


@pytest.mark.parametrize("name", FIXTURES)
def test_fixtures_validate(name):
    report = validate(str(fixture_path(name)))
    assert report.ok, report.problems
    assert report.files_checked >= 1


def _edit_info(root, change):
    path = root / "meta/info.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


def _edit_episodes(root, change):
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def _set_column(table, name, values):
    import pyarrow as pa

    i = table.column_names.index(name)
    return table.set_column(i, name, pa.array(values, table.schema.field(name).type))


def _missing_mp4(root):
    (root / "videos/observation.images.cam0/chunk-001/file-000.mp4").unlink()


def _truncated_parquet(root):
    path = root / "data/chunk-001/file-001.parquet"
    path.write_bytes(path.read_bytes()[:300])


def _gap(root):
    def change(t):
        starts = t.column("dataset_from_index").to_pylist()
        ends = t.column("dataset_to_index").to_pylist()
        starts[2] += 1
        ends[2] += 1
        return _set_column(_set_column(t, "dataset_from_index", starts), "dataset_to_index", ends)

    _edit_episodes(root, change)


def _total_frames(root):
    _edit_info(root, lambda raw: raw.update(total_frames=raw["total_frames"] + 1))


def _short_video(root):
    def change(t):
        ends = t.column("videos/observation.images.cam0/to_timestamp").to_pylist()
        ends[0] += 5.0
        return _set_column(t, "videos/observation.images.cam0/to_timestamp", ends)

    _edit_episodes(root, change)


def _class_template(root):
    _edit_info(root, lambda raw: raw.update(data_path="data/{chunk_index.__class__}/{file_index}.parquet"))


def _dotdot_video_key(root):
    def change(raw):
        raw["features"]["../escape"] = raw["features"].pop("observation.images.cam0")

    _edit_info(root, change)


def _not_json(root):
    (root / "meta/info.json").write_text("{ this is not json")


def _wrong_type(root):
    _edit_info(root, lambda raw: raw.update(fps="thirty"))


def _wrong_resolution(root):
    def change(raw):
        raw["features"]["observation.images.cam0"]["shape"] = [96, 128, 3]

    _edit_info(root, change)


def _wrong_task_count(root):
    _edit_info(root, lambda raw: raw.update(total_tasks=7))


BROKEN = {
    "missing mp4": (_missing_mp4, "videos/observation.images.cam0/chunk-001/file-000.mp4", "not found"),
    "truncated parquet": (_truncated_parquet, "data/chunk-001/file-001.parquet", "not a readable parquet"),
    "gap in frame ranges": (_gap, "meta/episodes", "gap between episode 1"),
    "total_frames off by one": (_total_frames, "meta/info.json", "total_frames is 181"),
    "video shorter than to_timestamp": (_short_video, "videos/observation.images.cam0/chunk-000/file-000.mp4", "lasts"),
    "attribute access in template": (_class_template, "meta/info.json", "__class__"),
    "video key with ../": (_dotdot_video_key, "meta/info.json", "'../escape' is not allowed"),
    "info.json not JSON": (_not_json, "meta/info.json", "not valid JSON"),
    "wrong type in a field": (_wrong_type, "meta/info.json", "fps"),
    "wrong resolution": (_wrong_resolution, "videos/observation.images.cam0/chunk-000/file-000.mp4", "48x64"),
    "wrong task count": (_wrong_task_count, "meta/info.json", "total_tasks is 7"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validate_names_the_problem(tmp_path, case):
    breaker, path, fragment = BROKEN[case]
    root = copy_fixture("multi_chunk", tmp_path / "ds")
    breaker(root)
    report = validate(str(root))
    assert not report.ok
    matching = [p for p in report.problems if p.path == path and fragment in p.message]
    assert matching, report.problems
    result = runner.invoke(app, ["validate", str(root)])
    assert result.exit_code == 1
    assert fragment in result.output


def test_validate_json_output(tmp_path):
    root = copy_fixture("multi_chunk", tmp_path / "ds")
    _total_frames(root)
    result = runner.invoke(app, ["validate", str(root), "--json"])
    assert result.exit_code == 1
    doc = json.loads(result.output)
    assert doc["ok"] is False
    assert any("total_frames" in p["message"] for p in doc["problems"])


def test_uncommitted_rows_with_a_new_task_are_not_a_problem(tmp_path):
    """A writer killed before info.json leaves rows of its episode, with a task not yet
    in the committed tasks, at the end of a data file that committed episodes use:
    readers ignore them (resume removes them), so validate must not report them."""
    import numpy as np

    from robostore import Recorder

    url = str(tmp_path / "ds")
    features = {"x": {"dtype": "float32", "shape": (1,), "names": None}}
    with Recorder.create(url, fps=30, features=features) as rec:
        for ep, task in enumerate(["a", "a", "b"]):
            for i in range(3):
                rec.add_frame({"x": np.float32(ep + i), "task": task})
            rec.save_episode()
    info_path = tmp_path / "ds/meta/info.json"
    info = json.loads(info_path.read_text())
    info.update(total_episodes=2, total_frames=6, total_tasks=1, splits={"train": "0:2"})
    info_path.write_text(json.dumps(info))  # the state just before the last commit
    report = validate(url)
    assert report.ok, report.problems
    assert report.episodes == 2
