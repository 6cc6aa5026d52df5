"""LeRobot v3 variants lerobot reads: robostore returns the values lerobot 0.4.4 returned.

Each variant is made by tests/variants.py from a lerobot-written fixture (or shipped
whole, for re-encoded video); its oracle is what lerobot's ``LeRobotDataset`` returned
on the same files (tests/data/variants/<name>.expected.npz, see make_variant_oracles.py).
Benign inconsistencies must give a :class:`DatasetWarning` and the same values; the
others must give no warning at all.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from backends.pytest_plugin import backend_params, new_root, upload_folder
from fixture_data import expected
from robostore import Dataset, DatasetMeta, StreamingDataset, validate
from robostore.cli import app
from robostore.errors import CorruptDataset, DatasetWarning, SchemaError
from test_dataset import FRAME_ATOL
from variants import EPISODES, VARIANTS, Variant

#: PyAV 15's FFmpeg (lerobot 0.4.4's) and PyAV 18's (robostore's) convert 10-bit video
#: to 8-bit RGB differently (up to 49/255 apart on a pixel, 2.7/255 on average), so for
#: these the oracle identifies *which* frame lerobot returned, and robostore's frame must
#: equal that frame as this PyAV decodes the file sequentially.
CONVERSION_DIFFERS = {"yuv420p10le"}
#: Variants whose reading must warn, and what the warning says.
WARNS = {"to_timestamp_last_frame": "last frame", "misfiled_episodes": "#2401", "no_stats": "stats is None"}
WITH_ORACLE = [name for name, v in VARIANTS.items() if v.indices]


def oracle(variant: Variant) -> tuple[dict[str, Any], Any]:
    if variant.oracle_from_base:
        return expected(variant.base)
    npz = np.load(variant.oracle)
    return json.loads(str(npz["__meta_json__"])), npz


def want_value(meta: dict[str, Any], npz: Any, idx: int, key: str) -> np.ndarray:
    value = npz[f"item/{idx}/{key}"]
    if meta.get("frames_uint8") and key in meta["camera_keys"]:
        return value.astype(np.float32) / 255
    return value


def sequential_frames(root: Path, key: str) -> np.ndarray:
    """Every frame of ``key``'s (single) mp4, decoded in order: float32 [N, C, H, W]."""
    (path,) = sorted((root / "videos" / key).rglob("*.mp4"))
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24").transpose(2, 0, 1) for f in container.decode(video=0)]
    return np.stack(frames).astype(np.float32) / 255


def assert_same_frame(got: np.ndarray, want: np.ndarray, frames: np.ndarray, where: str) -> None:
    distance = np.abs(frames - want).mean(axis=(1, 2, 3))
    best, second = np.argsort(distance)[:2]
    assert distance[best] < distance[second] / 2, f"{where}: lerobot's frame matches no single frame"
    np.testing.assert_allclose(got, frames[best], atol=FRAME_ATOL, rtol=0, err_msg=where)


def assert_matches(
    ds: Dataset, meta: dict[str, Any], npz: Any, indices: Any = None, frames: dict[str, np.ndarray] | None = None
) -> None:
    assert len(ds) == meta["len"]
    assert ds.num_episodes == meta["num_episodes"]
    for idx in indices if indices is not None else meta["indices"]:
        got = ds[idx]
        keys = meta["item_keys"][str(idx)]
        assert sorted(got) == sorted(keys), idx
        for key in keys:
            want = want_value(meta, npz, idx, key)
            if key == "task":
                assert got[key] == str(want), (idx, key)
                continue
            value = got[key]
            assert isinstance(value, torch.Tensor) and value.dtype == torch.from_numpy(want).dtype, (idx, key)
            assert tuple(value.shape) == want.shape, (idx, key, value.shape, want.shape)
            if key in meta["camera_keys"] and frames is not None:
                assert_same_frame(value.numpy(), want, frames[key], f"{idx} {key}")
            elif key in meta["camera_keys"]:
                np.testing.assert_allclose(value.numpy(), want, atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")
            else:
                np.testing.assert_array_equal(value.numpy(), want, err_msg=f"{idx} {key}")


def open_checked(name: str, url: str, **kwargs: Any) -> Dataset:
    """Open and read all of variant ``name``: it warns iff the variant is in WARNS."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        ds = Dataset(url, **kwargs)
        ds.load()
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    if name in WARNS:
        assert messages and all(WARNS[name] in m for m in messages), messages
    else:
        assert not messages
    return ds


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_variant_matches_lerobot(name: str, tmp_path: Path) -> None:
    variant = VARIANTS[name]
    root = variant.build(tmp_path / name)
    meta, npz = oracle(variant)
    frames = {k: sequential_frames(root, k) for k in meta["camera_keys"]} if name in CONVERSION_DIFFERS else None
    assert_matches(open_checked(name, str(root)), meta, npz, frames=frames)


@pytest.mark.parametrize("name", WITH_ORACLE)
def test_variant_validates(name: str, tmp_path: Path) -> None:
    root = VARIANTS[name].build(tmp_path / name)
    report = validate(str(root))
    assert report.ok, report.problems
    assert bool(report.warnings) == (name in WARNS), report.warnings
    assert all(WARNS[name] in w.message for w in report.warnings)


@pytest.mark.parametrize("name", sorted(WARNS))
def test_validate_cli_lists_warnings(name: str, tmp_path: Path) -> None:
    root = str(VARIANTS[name].build(tmp_path / name))
    runner = CliRunner()
    plain = runner.invoke(app, ["validate", root])
    assert plain.exit_code == 0, plain.output
    assert "warnings (" in plain.output and WARNS[name] in plain.output
    strict = runner.invoke(app, ["validate", root, "--strict"])
    assert strict.exit_code == 1, strict.output
    report = json.loads(runner.invoke(app, ["validate", root, "--json"]).output)
    assert report["ok"] and report["problems"] == []
    assert report["warnings"] and all(w["level"] == "warning" for w in report["warnings"])


def test_channel_first_frames_come_out_channel_first(tmp_path: Path) -> None:
    """The declared layout does not change the frames: [C, H, W] as lerobot returns."""
    root = VARIANTS["channel_first"].build(tmp_path / "cf")
    meta = DatasetMeta.open(str(root))
    feature = meta.features["observation.images.cam0"]
    assert feature.channels_first and feature.frame_size == (48, 64, 3)
    assert Dataset(str(root), return_uint8=True)[0]["observation.images.cam0"].shape == (3, 48, 64)
    assert not DatasetMeta.open("tests/data/video_basic").features["observation.images.cam0"].channels_first


@pytest.fixture(scope="module", params=backend_params())
def misfiled_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    local = VARIANTS["misfiled_episodes"].build(tmp_path_factory.mktemp("misfiled") / "ds")
    if request.param == "local":
        return str(local), {}
    url, options = new_root(request.param, request, tmp_path_factory.mktemp("misfiled_remote"))
    upload_folder(local, url, options)
    return url, options


def test_misfiled_episodes_on_every_backend(misfiled_url: tuple[str, dict]) -> None:
    url, options = misfiled_url
    variant = VARIANTS["misfiled_episodes"]
    meta, npz = oracle(variant)
    ds = Dataset(url, storage_options=options)
    with pytest.warns(DatasetWarning, match="#2401"):
        ds.load()
    assert_matches(ds, meta, npz)
    subset = Dataset(url, storage_options=options, episodes=[2])
    got = subset[0]
    np.testing.assert_array_equal(got["observation.state"].numpy(), want_value(meta, npz, 65, "observation.state"))
    stream = StreamingDataset(url, storage_options=options)
    streamed = {int(s["index"]): s for s in stream}
    assert sorted(streamed) == list(range(meta["len"]))
    for idx in meta["indices"]:
        np.testing.assert_array_equal(streamed[idx]["action"].numpy(), want_value(meta, npz, idx, "action"))


def test_misfiled_episodes_open_meta_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Misfiled episodes are found when a data file is read, not by scanning at open."""
    from robostore.store import Store

    root = VARIANTS["misfiled_episodes"].build(tmp_path / "ds")
    seen: list[str] = []
    for name in ("read", "open", "read_range", "read_many", "list"):
        original = getattr(Store, name)

        def spy(self, path, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.extend([path] if isinstance(path, str) else list(path))
            return _original(self, path, *args, **kwargs)

        monkeypatch.setattr(Store, name, spy)
    Dataset(str(root))
    assert seen and all(p.startswith("meta") for p in seen), seen


def test_rows_that_exist_nowhere_stay_an_error(tmp_path: Path) -> None:
    root = VARIANTS["misfiled_episodes"].build(tmp_path / "ds")
    table = pq.read_table(root / EPISODES)
    ep4 = table.to_pylist()[4]  # filed under the previous file; its own file goes missing
    true_file = root / "data/chunk-002/file-000.parquet"
    assert (ep4["data/chunk_index"], ep4["data/file_index"]) == (1, 1) and true_file.exists()
    true_file.unlink()
    with pytest.raises(CorruptDataset, match="neither this file nor its neighbours"), pytest.warns(DatasetWarning):
        Dataset(str(root))[179]
    report = validate(str(root))
    assert not report.ok and any("episode 4" in p.message for p in report.problems)


def test_zero_episode_dataset(tmp_path: Path) -> None:
    root = VARIANTS["zero_episodes"].build(tmp_path / "empty")
    ds = Dataset(str(root))
    assert len(ds) == 0 and ds.num_episodes == 0
    assert list(StreamingDataset(str(root))) == []
    report = validate(str(root))
    assert report.ok and not report.warnings


def test_timestamp_delta_key_is_refused_with_videos() -> None:
    with pytest.raises(SchemaError, match="'timestamp'"):
        Dataset("tests/data/video_basic", delta_timestamps={"timestamp": [0.0]})
    # Without video features lerobot reads it, and so does robostore.
    _, npz = expected("image_basic")
    got = Dataset("tests/data/image_basic", delta_timestamps={"timestamp": [-1 / 30, 0.0]})[1]
    want = float(npz["item/1/timestamp"])
    np.testing.assert_allclose(got["timestamp"].numpy(), [want - 1 / 30, want], rtol=0, atol=1e-6)


def test_return_uint8_on_image_cameras() -> None:
    """robostore returns uint8 for `image` cameras too (lerobot 0.6.1 returns float32
    there); the values are lerobot's float frames times 255."""
    meta, npz = expected("image_basic")
    ds = Dataset("tests/data/image_basic", return_uint8=True)
    for idx in meta["indices"]:
        got = ds[idx]["observation.images.cam0"]
        assert got.dtype == torch.uint8
        want = npz[f"item/{idx}/observation.images.cam0"]
        np.testing.assert_array_equal(got.numpy(), np.round(want * 255).astype(np.uint8))


def test_variant_generators_are_deterministic(tmp_path: Path) -> None:
    """The oracles were dumped from the generators' output: it must not drift."""
    for name in ("list_columns", "misfiled_episodes", "shifted_start"):
        a = VARIANTS[name].build(tmp_path / f"{name}_a")
        b = VARIANTS[name].build(tmp_path / f"{name}_b")
        for path in sorted(a.rglob("*")):
            if path.is_file():
                assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_shipped_variants_are_small() -> None:
    for name, variant in VARIANTS.items():
        if variant.make is None:
            size = sum(p.stat().st_size for p in (variant.oracle.parent / name).rglob("*") if p.is_file())
            assert size < 200_000, (name, size)
        if variant.oracle.exists():
            assert variant.oracle.stat().st_size < 200_000, name


def test_writers_refuse_misfiled_episodes(tmp_path: Path) -> None:
    """Appending to, cutting or subsetting a misfiled dataset would lose or mix rows."""
    import robostore
    from robostore.repair import repair_dataset

    root = VARIANTS["misfiled_episodes"].build(tmp_path / "ds")
    before = sorted((p.relative_to(root), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    with pytest.raises(CorruptDataset, match=r"Recorder\.resume"):
        robostore.Recorder.resume(str(root))
    with pytest.raises(CorruptDataset, match="repair"):
        repair_dataset(str(root))
    with pytest.raises(CorruptDataset, match="mirror --episodes"):
        robostore.mirror(str(root), str(tmp_path / "subset"), episodes=[1, 2])
    unchecked = robostore.mirror(str(root), str(tmp_path / "subset2"), episodes=[1, 2], check=False)
    assert any("holds 0 of episode 1's 25 rows" in why for why in unchecked.failed.values()), unchecked.failed
    assert not (tmp_path / "subset2/meta/info.json").exists()  # no silent loss: nothing committed
    after = sorted((p.relative_to(root), p.read_bytes()) for p in root.rglob("*") if p.is_file())
    assert before == after
    # A whole copy keeps every file: it reads the same.
    robostore.mirror(str(root), str(tmp_path / "copy"))
    meta, npz = oracle(VARIANTS["misfiled_episodes"])
    with pytest.warns(DatasetWarning):
        assert_matches(Dataset(str(tmp_path / "copy")), meta, npz)


def test_resume_rebuilds_missing_stats(tmp_path: Path) -> None:
    """Recording on must not aggregate new episodes alone: stats.json is rebuilt first,
    equal to what lerobot wrote from the same episodes."""
    import robostore

    root = VARIANTS["no_stats"].build(tmp_path / "ds")
    with pytest.warns(DatasetWarning, match="stats is None"):
        robostore.Recorder.resume(str(root)).close()
    rebuilt = json.loads((root / "meta/stats.json").read_text())
    lerobot = json.loads((Path("tests/data") / VARIANTS["no_stats"].base / "meta/stats.json").read_text())
    assert rebuilt.keys() == lerobot.keys()
    for key, stats in lerobot.items():
        for name, value in stats.items():
            np.testing.assert_allclose(rebuilt[key][name], value, rtol=1e-6, atol=1e-6, err_msg=f"{key}/{name}")


STREAMED = ["to_timestamp_last_frame", "shifted_start", "h264_bframes", "hevc", "mpeg4", "audio", "channel_first"]


@pytest.mark.parametrize("name", STREAMED)
def test_streaming_variant_matches_lerobot(name: str, tmp_path: Path) -> None:
    """StreamingDataset fetches each episode's byte stretch from the episodes table's
    timestamps: late starts, short to_timestamps and B-frames must not cut frames off."""
    variant = VARIANTS[name]
    root = variant.build(tmp_path / name)
    meta, npz = oracle(variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        streamed = {int(s["index"]): s for s in StreamingDataset(str(root))}
    assert sorted(streamed) == list(range(meta["len"]))
    for idx in meta["indices"]:
        for key in meta["camera_keys"]:
            np.testing.assert_allclose(
                streamed[idx][key].numpy(),
                want_value(meta, npz, idx, key),
                atol=FRAME_ATOL,
                rtol=0,
                err_msg=f"{idx} {key}",
            )


def test_resume_refuses_channel_first_cameras(tmp_path: Path) -> None:
    import robostore

    root = VARIANTS["channel_first"].build(tmp_path / "ds")
    for _ in range(2):  # the second try gets the same error, not a LeaseError: the lease was given back
        with pytest.raises(SchemaError, match=r"\[channels, height, width\]"):
            robostore.Recorder.resume(str(root))
    robostore.Recorder.resume(str(VARIANTS["to_timestamp_last_frame"].build(tmp_path / "other"))).close()
