import json

import pytest
from typer.testing import CliRunner

from fixture_data import FIXTURES, expected, fixture_path
from robostore.cli import app, parse_storage_options

runner = CliRunner()


@pytest.mark.parametrize("name", FIXTURES)
def test_info_json_matches_the_fixture(name):
    want, _ = expected(name)
    result = runner.invoke(app, ["info", str(fixture_path(name)), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["episodes"] == want["num_episodes"]
    assert doc["frames"] == want["num_frames"]
    assert doc["fps"] == want["fps"]
    assert doc["duration_s"] == round(want["num_frames"] / want["fps"], 3)
    assert list(doc["features"]) == list(want["features"])
    assert doc["tasks"] == sorted(want["tasks"], key=want["tasks"].get)
    on_disk = [p for p in fixture_path(name).rglob("*") if p.is_file()]
    assert doc["files"] == len(on_disk)
    assert doc["bytes"] == sum(p.stat().st_size for p in on_disk)


def test_info_text_and_ls():
    result = runner.invoke(app, ["info", str(fixture_path("video_basic"))])
    assert result.exit_code == 0
    assert "observation.images.cam0" in result.output and "pick up the red cube" in result.output
    assert "90  (3.0 s)" in result.output
    result = runner.invoke(app, ["ls", str(fixture_path("multi_chunk")), "--prefix", "videos", "--json"])
    files = json.loads(result.output)
    assert [f["path"] for f in files] == sorted(
        str(p.relative_to(fixture_path("multi_chunk"))) for p in (fixture_path("multi_chunk") / "videos").rglob("*.mp4")
    )


def test_errors_exit_2_with_a_message(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2
    assert "meta/info.json" in result.output


def test_storage_options_parse_json_values():
    opts = parse_storage_options(["endpoint_url=http://127.0.0.1:9000", "anon=true", 'config_kwargs={"a": 1}'])
    assert opts == {"endpoint_url": "http://127.0.0.1:9000", "anon": True, "config_kwargs": {"a": 1}}
    result = runner.invoke(app, ["info", str(fixture_path("video_basic")), "-o", "auto_mkdir=false"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["info", str(fixture_path("video_basic")), "-o", "broken"])
    assert result.exit_code != 0


@pytest.mark.parametrize("command", ["info", "mirror", "convert"])
def test_every_command_reports_a_missing_dataset_as_an_error(command, tmp_path):
    """Exit 2 and one ``error:`` line (the path of cli_common.fail), never a traceback."""
    args = [command, str(tmp_path / "nothing-here")] + (
        [str(tmp_path / "dst")] if command in ("mirror", "convert") else []
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "error:" in result.output and "nothing-here" in result.output
