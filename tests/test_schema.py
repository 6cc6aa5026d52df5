import json

import pyarrow.parquet as pq
import pytest

from fixture_data import FIXTURES, fixture_path
from robostore.errors import PathError, SchemaError
from robostore.schema import DatasetInfo, Feature, PathTemplate, check_key
from robostore.schema.arrow import data_schema


def raw_info(name: str = "video_basic") -> dict:
    return json.loads((fixture_path(name) / "meta/info.json").read_text())


@pytest.mark.parametrize("name", FIXTURES)
def test_info_round_trip_is_lossless(name):
    raw = raw_info(name)
    info = DatasetInfo.from_json(json.dumps(raw))
    again = DatasetInfo.from_json(info.to_json())
    assert again == info
    assert again.to_json_dict() == raw


def test_unknown_fields_survive_a_round_trip():
    raw = raw_info()
    raw["citation"] = {"authors": ["x"]}
    raw["features"]["action"]["unit"] = "rad"
    out = DatasetInfo.from_json(json.dumps(raw)).to_json_dict()
    assert out["citation"] == {"authors": ["x"]}
    assert out["features"]["action"]["unit"] == "rad"


@pytest.mark.parametrize("name", ["video_basic", "image_basic"])
def test_data_schema_matches_lerobot_files(name):
    info = DatasetInfo.from_json((fixture_path(name) / "meta/info.json").read_bytes())
    ours = data_schema(info.features)
    theirs = pq.read_schema(fixture_path(name) / "data/chunk-000/file-000.parquet")
    assert ours.remove_metadata().equals(theirs.remove_metadata())
    hf = json.loads(theirs.metadata[b"huggingface"])["info"]
    assert json.loads(ours.metadata[b"huggingface"])["info"] == hf


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("data/{chunk_index.__class__}/{file_index}.parquet", "attribute access"),
        ("data/{chunk_index[0]}/{file_index}.parquet", "indexing"),
        ("data/{evil}/{chunk_index}/{file_index}.parquet", "{evil}"),
        ("../data/{chunk_index}/{file_index}.parquet", "leave the dataset root"),
        ("/etc/{chunk_index}/{file_index}.parquet", "leave the dataset root"),
        ("data/{chunk_index!r}/{file_index}.parquet", "conversion"),
        ("data/{chunk_index:>99999}/{file_index}.parquet", "format spec"),
        ("data/{chunk_index}.parquet", "lacks"),
        ("data/{chunk_index", "not a valid template"),
    ],
)
def test_bad_templates_are_schema_errors(template, fragment):
    raw = raw_info()
    raw["data_path"] = template
    with pytest.raises(SchemaError, match="data_path") as err:
        DatasetInfo.from_json(json.dumps(raw), "x/meta/info.json")
    assert fragment in str(err.value)
    assert "x/meta/info.json" in str(err.value)


def test_template_format_checks_values():
    t = PathTemplate(raw_info()["video_path"], name="video_path")
    assert t.format(video_key="cam", chunk_index=1, file_index=2) == "videos/cam/chunk-001/file-002.mp4"
    with pytest.raises(PathError):
        t.format(video_key="../../etc", chunk_index=0, file_index=0)
    with pytest.raises(SchemaError):
        t.format(video_key="cam", chunk_index=-1, file_index=0)


@pytest.mark.parametrize("key", ["../x", "a/b", "", ".", "..", "a\x00b", "a\\b", "tab\there"])
def test_unsafe_feature_keys_are_rejected(key):
    with pytest.raises(PathError):
        check_key(key)
    raw = raw_info()
    raw["features"][key] = raw["features"]["action"]
    with pytest.raises(SchemaError, match="not allowed"):
        DatasetInfo.from_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"fps": "30"}, "fps"),
        ({"fps": 0}, "fps"),
        ({"total_frames": -1}, "total_frames"),
        ({"chunks_size": 0}, "chunks_size"),
        ({"data_files_size_in_mb": -5}, "data_files_size_in_mb"),
        ({"features": "none"}, "features"),
        ({"codebase_version": "v2.0"}, "neither v3.x nor v2.1"),
        ({"codebase_version": "v2.1"}, "lacks the field"),
        ({"video_path": None}, "video_path is null"),
    ],
)
def test_wrong_types_and_values_are_schema_errors(change, fragment):
    raw = raw_info()
    raw.update(change)
    with pytest.raises(SchemaError, match=fragment):
        DatasetInfo.from_json(json.dumps(raw))


def test_missing_fields_and_not_json():
    raw = raw_info()
    del raw["fps"]
    with pytest.raises(SchemaError, match="fps"):
        DatasetInfo.from_json(json.dumps(raw))
    with pytest.raises(SchemaError, match="not valid JSON"):
        DatasetInfo.from_json(b"{not json")
    with pytest.raises(SchemaError, match="JSON object"):
        DatasetInfo.from_json(b"[1, 2]")


def test_feature_validation():
    assert Feature(dtype="video", shape=[48, 64, 3]).is_camera
    with pytest.raises(ValueError, match="unknown dtype 'complex'"):
        Feature(dtype="complex", shape=[1])
    with pytest.raises(ValueError, match="shape entries must be positive integers"):
        Feature(dtype="float32", shape=[0])
    with pytest.raises(ValueError, match=r"image features have shape \[height, width, channels\]"):
        Feature(dtype="image", shape=[48, 64])
