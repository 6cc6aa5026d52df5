"""robostore.lerobot without lerobot (the default test venv has none): the errors a user
gets. Its behaviour beside the real lerobot is tested in test_lerobot_peers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import robostore.lerobot as dropin
from fixture_data import DATA
from robostore.errors import SchemaError


@pytest.fixture
def installed_lerobot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a package named lerobot of a given version on sys.path (a real dist-info)."""

    def install(version: str) -> None:
        (tmp_path / "lerobot").mkdir()
        (tmp_path / "lerobot/__init__.py").write_text(f"__version__ = {version!r}\n")
        info = tmp_path / f"lerobot-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lerobot\nVersion: {version}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "lerobot", raising=False)

    return install


def test_missing_lerobot_names_the_extra() -> None:
    if "lerobot" in sys.modules or any((Path(p) / "lerobot").is_dir() for p in sys.path if p):
        pytest.skip("lerobot is installed here")
    with pytest.raises(ImportError, match=r"robostore\[lerobot\]"):
        dropin.LeRobotDataset("local/x", root=str(DATA / "video_basic"))
    with pytest.raises(ImportError, match=r"robostore\[lerobot\]"):
        dropin.LeRobotDatasetMetadata("local/x", root=str(DATA / "video_basic"))


def test_untested_lerobot_version_warns(installed_lerobot) -> None:
    installed_lerobot("9.9.9")
    with pytest.warns(
        UserWarning, match=r"lerobot 9\.9\.9 is not a version robostore.lerobot is tested with \(0\.4\.4, 0\.6\.1\)"
    ):
        ds = dropin.LeRobotDataset("local/x", root=str(DATA / "video_basic"))
    assert len(ds) == ds.num_frames == 90 and ds.meta.total_frames == 90
    assert ds.meta.features["observation.images.cam0"]["shape"] == (48, 64, 3)


def test_tested_version_is_quiet(installed_lerobot, recwarn: pytest.WarningsRecorder) -> None:
    installed_lerobot("0.6.1")
    meta = dropin.LeRobotDatasetMetadata("local/x", root=str(DATA / "depth_061"))
    assert not [w for w in recwarn if "tested with" in str(w.message)]
    assert meta.depth_keys == ["observation.images.depth"] and meta.stats["observation.images.depth"]["min"].shape == (
        1,
        1,
        1,
    )


def test_repo_id_alone_means_the_hub() -> None:
    assert dropin.dataset_url("user/pick", None) == "hf://datasets/user/pick"
    assert dropin.dataset_url("user/pick", "s3://bucket/pick") == "s3://bucket/pick"
    with pytest.raises(SchemaError, match="owner"):
        dropin.dataset_url("pick", None)


def test_write_side_arguments_are_refused(installed_lerobot) -> None:
    installed_lerobot("0.6.1")
    with pytest.raises(SchemaError, match="millimetres"):
        dropin.LeRobotDataset("local/x", root=str(DATA / "depth_061"), depth_output_unit="m")
    with pytest.raises(SchemaError, match="recording argument"):
        dropin.LeRobotDataset("local/x", root=str(DATA / "video_basic"), batch_encoding_size=2)
