"""Recorder: round trips on local and memory, structure equal to lerobot's, errors."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from fixture_data import fixture_path
from record_helpers import FEATURES, FPS, LOSSLESS, H, W, check_values, frame, image, record_episode
from robostore import LeaseError, Recorder, SchemaError, VideoOptions
from robostore.meta import DatasetMeta
from robostore.record.lease import LEASE_PATH
from robostore.validate import validate

pytestmark = pytest.mark.timeout(120)


def _create(url: str, **kw):
    kw.setdefault("video", LOSSLESS)
    return Recorder.create(url, fps=FPS, features=FEATURES, robot_type="test_bot", **kw)


@pytest.fixture(params=["local", "memory"])
def url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "ds")
    return f"memory://robostore-test-{uuid.uuid4().hex}/ds"


def test_round_trip_values_and_validate(url, tmp_path):
    lengths, tasks = {0: 12, 1: 5, 2: 9}, {0: "pick", 1: "place", 2: "pick"}
    with _create(url, staging_dir=tmp_path / "staging") as rec:
        for ep, n in lengths.items():
            assert record_episode(rec, ep, n, tasks[ep]) == ep
    report = validate(url)
    assert report.ok, report.problems
    meta = DatasetMeta.open(url)
    assert (meta.total_episodes, meta.total_frames, meta.tasks) == (3, 26, ["pick", "place"])
    assert meta.episode(2).tasks == ["pick"]
    check_values(url, lengths, tasks)
    assert not meta.store.exists(LEASE_PATH)
    assert not (tmp_path / "staging").exists() or not any((tmp_path / "staging").rglob("*.mp4"))


def test_files_are_shaped_like_lerobots(tmp_path):
    url = str(tmp_path / "ds")
    with Recorder.create(url, fps=FPS, features=FEATURES, video=VideoOptions()) as rec:
        record_episode(rec, 0, 6)
        record_episode(rec, 1, 4, "place")
    ours = DatasetMeta.open(url)
    video_fx, image_fx = fixture_path("video_basic"), fixture_path("image_basic")

    info = json.loads((tmp_path / "ds/meta/info.json").read_text())
    want_info = json.loads((video_fx / "meta/info.json").read_text())
    assert info.keys() == want_info.keys()
    assert (
        info["features"]["observation.images.front"]["info"].keys()
        == want_info["features"]["observation.images.cam0"]["info"].keys()
    )
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "av1"
    assert info["features"]["observation.images.wrist"]["dtype"] == "image"
    assert info["splits"] == {"train": "0:2"}

    data = pq.read_schema(tmp_path / "ds" / ours.data_files()[0])
    fx = pq.read_schema(image_fx / "data/chunk-000/file-000.parquet")
    for name in ("observation.state", "next.done", "timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert data.field(name).type == fx.field(name).type, name
    assert data.field("observation.images.wrist").type == fx.field("observation.images.cam0").type
    hf = json.loads(data.metadata[b"huggingface"])["info"]["features"]
    hf_fx = json.loads(fx.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.images.wrist"] == hf_fx["observation.images.cam0"]
    assert hf["observation.state"] == hf_fx["observation.state"] and hf["next.done"] == hf_fx["next.done"]
    assert "observation.images.front" not in hf
    assert pq.ParquetFile(tmp_path / "ds" / ours.data_files()[0]).num_row_groups == 2  # one per episode

    episodes = pq.read_table(tmp_path / "ds/meta/episodes/chunk-000/file-000.parquet")
    fx_eps = pq.read_table(video_fx / "meta/episodes/chunk-000/file-000.parquet")
    rename = {"observation.images.cam0": "observation.images.front"}

    def canon(name: str) -> str:
        for a, b in rename.items():
            name = name.replace(a, b)
        return name

    fx_types = {canon(n): t for n, t in zip(fx_eps.column_names, fx_eps.schema.types, strict=True) if "cam1" not in n}
    ours_types = dict(zip(episodes.column_names, episodes.schema.types, strict=True))
    for name, typ in fx_types.items():
        assert ours_types.get(name) == typ, name
    fx_img_eps = pq.read_table(image_fx / "meta/episodes/chunk-000/file-000.parquet")
    assert ours_types["stats/next.done/min"] == fx_img_eps.schema.field("stats/next.done/min").type
    assert (
        ours_types["stats/observation.images.wrist/mean"]
        == fx_img_eps.schema.field("stats/observation.images.cam0/mean").type
    )
    assert episodes.column("stats/observation.images.front/mean")[0].as_py()[0][0][0] > 0

    tasks, fx_tasks = pq.read_table(tmp_path / "ds/meta/tasks.parquet"), pq.read_table(image_fx / "meta/tasks.parquet")
    assert tasks.schema.types == fx_tasks.schema.types and tasks.column_names == fx_tasks.column_names
    assert tasks.schema.metadata.keys() == fx_tasks.schema.metadata.keys()
    stats = json.loads((tmp_path / "ds/meta/stats.json").read_text())
    assert stats.keys() == set(info["features"])
    assert np.array(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["index"]["count"] == [10] and stats["index"]["max"] == [9]


def test_rollover_across_files_and_chunks(tmp_path):
    url = str(tmp_path / "ds")
    lengths = {e: 8 + e for e in range(5)}
    tasks = {e: f"task {e % 2}" for e in lengths}
    with _create(url, chunks_size=2, data_files_size_in_mb=0.004, video_files_size_in_mb=0.02) as rec:
        for ep, n in lengths.items():
            record_episode(rec, ep, n, tasks[ep])
    report = validate(url)
    assert report.ok, report.problems
    meta = DatasetMeta.open(url)
    assert len(meta.data_files()) >= 3 and len(meta.video_files()) >= 3
    assert any("chunk-001" in p for p in meta.data_files()) and any("chunk-001" in p for p in meta.video_files())
    for path in meta.data_files() + meta.video_files():
        assert int(path.rsplit("file-", 1)[1][:3]) < 2
    check_values(url, lengths, tasks)


def test_inputs_numpy_torch_pil_python_scalars(tmp_path):
    url = str(tmp_path / "ds")
    with _create(url) as rec:
        for i in range(4):
            f = frame(0, i, "t")
            if i == 1:
                f["observation.state"] = torch.from_numpy(f["observation.state"])
                f["observation.images.front"] = torch.from_numpy(f["observation.images.front"]).permute(2, 0, 1)
                f["next.done"] = False
            if i == 2:
                f["observation.images.wrist"] = Image.fromarray(f["observation.images.wrist"])
                f["observation.images.front"] = f["observation.images.front"].transpose(2, 0, 1).copy()
                f["next.done"] = np.bool_(False)
            if i == 3:
                f["observation.images.wrist"] = f["observation.images.wrist"].astype(np.float32) / 255
                f["next.done"] = np.array([True])
            rec.add_frame(f)
        rec.save_episode()
    check_values(url, {0: 4}, {0: "t"})


BAD = {
    "missing feature": (lambda f: f.pop("action"), "missing features ['action']"),
    "missing task": (lambda f: f.pop("task"), "'task'"),
    "unknown key": (lambda f: f.update(gripper=np.zeros(1)), "unknown keys ['gripper']"),
    "default feature given": (lambda f: f.update(timestamp=0.0), "filled in by the recorder"),
    "wrong dtype": (lambda f: f.update(action=np.zeros(6)), "dtype float64 is not float32"),
    "wrong shape": (lambda f: f.update(action=np.zeros(5, np.float32)), "expected float32 of shape [6]"),
    "list instead of array": (lambda f: f.update(action=[0.0] * 6), "action"),
    "float for bool": (lambda f: f.update(**{"next.done": 1.0}), "next.done"),
    "NaN": (lambda f: f.update(action=np.full(6, np.nan, np.float32)), "NaN or inf"),
    "wrong image size": (
        lambda f: f.update(**{"observation.images.front": np.zeros((H, W + 2, 3), np.uint8)}),
        f"{H}x{W}",
    ),
    "grey image": (
        lambda f: f.update(**{"observation.images.wrist": np.zeros((H, W), np.uint8)}),
        "observation.images.wrist",
    ),
    "float image out of range": (lambda f: f.update(**{"observation.images.front": np.full((H, W, 3), 2.0)}), "[0, 1]"),
    "int16 image": (
        lambda f: f.update(**{"observation.images.front": np.zeros((H, W, 3), np.int16)}),
        "uint8 or float",
    ),
    "PIL not RGB": (lambda f: f.update(**{"observation.images.wrist": Image.new("L", (W, H))}), "convert"),
    "empty task": (lambda f: f.update(task=""), "task"),
    "not a dict": (None, "a frame is a dict"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_frames_are_rejected_and_leave_the_episode_intact(tmp_path, case):
    change, message = BAD[case]
    with _create(str(tmp_path / "ds")) as rec:
        rec.add_frame(frame(0, 0, "t", 2))
        bad = frame(0, 1, "t", 2)
        if change is None:
            bad = [bad]
        else:
            change(bad)
        with pytest.raises(SchemaError, match=None) as err:
            rec.add_frame(bad)
        assert message in str(err.value)
        assert "episode 0, frame 1" in str(err.value)
        assert rec.frames_in_episode == 1
        rec.add_frame(frame(0, 1, "t", 2))
        rec.save_episode()
    check_values(str(tmp_path / "ds"), {0: 2}, {0: "t"})


def test_bad_schemas_and_existing_dataset(tmp_path):
    url = str(tmp_path / "ds")
    odd = {"cam": {"dtype": "video", "shape": (31, 48, 3), "names": None}}
    with pytest.raises(SchemaError, match="even height and width"):
        Recorder.create(url, fps=FPS, features=odd)
    with pytest.raises(SchemaError, match="'task'"):
        Recorder.create(url, fps=FPS, features={"task": {"dtype": "string", "shape": (1,)}})
    _create(url).close()
    with pytest.raises(SchemaError, match=r"Recorder\.resume"):
        _create(url)
    with pytest.raises(SchemaError, match="no frames"), Recorder.resume(url) as rec:
        rec.save_episode()


def test_discard_and_context_manager_on_error(tmp_path):
    url = str(tmp_path / "ds")
    with pytest.raises(RuntimeError, match="robot fell over"), _create(url) as rec:  # noqa: PT012 - the manager under test wraps the raise
        record_episode(rec, 0, 4)
        for i in range(3):
            rec.add_frame(frame(1, i, "junk"))
        rec.discard_episode()
        assert rec.episode_index == 1
        assert record_episode(rec, 1, 5, "place") == 1
        rec.add_frame(frame(2, 0, "never saved"))
        raise RuntimeError("robot fell over")
    meta = DatasetMeta.open(url)
    assert meta.total_episodes == 2 and meta.tasks == ["pick", "place"]
    assert validate(url).ok
    check_values(url, {0: 4, 1: 5}, {0: "pick", 1: "place"})
    assert not meta.store.exists(LEASE_PATH)


def test_lease_refuses_a_second_recorder_until_forced_or_closed(url):
    first = _create(url)
    try:
        record_episode(first, 0, 3)
        first.flush()  # else the forced recorder and this live one would both publish it
        with pytest.raises(LeaseError, match="another Recorder"):
            Recorder.resume(url)
        second = Recorder.resume(url, force=True)
        second.close()
    finally:
        first.discard_episode()
    with Recorder.resume(url) as rec:
        assert rec.episode_index == 1
    first._closed = True  # its lease was taken over; nothing left to release


def test_resume_continues_indices_in_new_files(url):
    with _create(url) as rec:
        record_episode(rec, 0, 6)
        record_episode(rec, 1, 4, "place")
    with Recorder.resume(url) as rec:
        assert rec.video.codec == "libx264"
        assert rec.episode_index == 2
        assert record_episode(rec, 2, 5, "new task") == 2
    meta = DatasetMeta.open(url)
    assert meta.tasks == ["pick", "place", "new task"]
    assert meta.episode(2).data_file_index == 1 and meta.video_span(2, "observation.images.front").file_index == 1
    assert meta.frame_range(2) == (10, 15)
    report = validate(url)
    assert report.ok, report.problems
    # Resumed with the dataset's codec (h264) at its default quality.
    check_values(url, {0: 6, 1: 4, 2: 5}, {0: "pick", 1: "place", 2: "new task"}, max_err=8.0)


def test_flush_publishes_while_recording(tmp_path):
    url = str(tmp_path / "ds")
    with _create(url) as rec:
        record_episode(rec, 0, 5)
        rec.flush()
        assert rec.published_episodes == 1
        assert DatasetMeta.open(url).total_episodes == 1 and validate(url).ok
        rec.add_frame(frame(1, 0, "pick"))
        assert DatasetMeta.open(url).total_episodes == 1


def test_default_av1_decodes_close_to_the_input(tmp_path):
    url = str(tmp_path / "ds")
    with Recorder.create(url, fps=FPS, features=FEATURES) as rec:
        record_episode(rec, 0, 10)
    check_values(url, {0: 10}, {0: "pick"}, max_err=12.0)
    assert image(0, 0).shape == (H, W, 3)


def test_demo_command_records_and_prints_info(tmp_path):
    from typer.testing import CliRunner

    from robostore.cli import app

    url = str(tmp_path / "demo")
    result = CliRunner().invoke(
        app, ["demo", url, "--episodes", "2", "--seconds", "0.5", "--size", "32x48", "--codec", "libx264"]
    )
    assert result.exit_code == 0, result.output
    assert "episodes  2" in result.output and "pick up the red cube" in result.output
    assert validate(url).ok
    again = CliRunner().invoke(app, ["demo", url])
    assert again.exit_code == 2 and "already exists" in again.output
