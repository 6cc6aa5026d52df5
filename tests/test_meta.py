import math

import numpy as np
import pytest

from fixture_data import FIXTURES, copy_fixture, expected, fixture_path
from robostore.backends import open_store
from robostore.errors import CorruptDataset, NotFound, SchemaError
from robostore.meta import DatasetMeta
from robostore.schema import Feature
from robostore.stats import aggregate_stats


def _json_equal(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("name", FIXTURES)
def test_meta_equals_what_lerobot_read(name):
    want, _ = expected(name)
    meta = DatasetMeta.open(str(fixture_path(name)))
    assert meta.num_episodes == want["num_episodes"]
    assert meta.total_frames == want["num_frames"] == want["len"]
    assert meta.fps == want["fps"]
    assert meta.video_keys == want["video_keys"]
    assert meta.image_keys == want["image_keys"]
    assert meta.camera_keys == want["camera_keys"]
    assert {t: i for i, t in enumerate(meta.tasks)} == want["tasks"]
    assert meta.info.to_json_dict() == {**want["info"], "features": want["features"]}
    assert _json_equal(meta.stats.to_json_dict(), want["stats"])
    rows = meta.episodes.to_pylist()
    assert len(rows) == len(want["episodes"])
    for row, want_row in zip(rows, want["episodes"], strict=True):
        assert _json_equal(row, want_row)


@pytest.mark.parametrize("name", FIXTURES)
def test_opening_reads_no_stats_columns_and_resolves_files(name):
    meta = DatasetMeta.open(str(fixture_path(name)))
    assert not any(c.startswith("stats/") for c in meta.episodes.column_names)
    want, _ = expected(name)
    for row in want["episodes"]:
        ep = meta.episode(row["episode_index"])
        assert (ep.dataset_from_index, ep.dataset_to_index) == (row["dataset_from_index"], row["dataset_to_index"])
        assert ep.data_path == meta.info.data_file(row["data/chunk_index"], row["data/file_index"])
        assert (fixture_path(name) / ep.data_path).exists()
        for key, span in ep.videos.items():
            assert span.from_timestamp == row[f"videos/{key}/from_timestamp"]
            assert span.to_timestamp == row[f"videos/{key}/to_timestamp"]
            assert (fixture_path(name) / span.path).exists()


@pytest.mark.parametrize("name", FIXTURES)
def test_aggregated_episode_stats_equal_lerobot_stats(name):
    meta = DatasetMeta.open(str(fixture_path(name)))
    per_episode = []
    for row in meta.episode_stats().to_pylist():
        stats: dict = {}
        for column, value in row.items():
            if column.startswith("stats/"):
                _, feature, stat = column.split("/")
                stats.setdefault(feature, {})[stat] = value
        per_episode.append(stats)
    ours = aggregate_stats(per_episode).to_json_dict()
    theirs = meta.stats.to_json_dict()
    assert ours.keys() == theirs.keys()
    for feature, stats in theirs.items():
        for stat, value in stats.items():
            np.testing.assert_allclose(np.asarray(ours[feature][stat], float), np.asarray(value, float), rtol=1e-6)


def test_open_never_lists_data_or_videos(tmp_path, monkeypatch):
    root = copy_fixture("multi_chunk", tmp_path / "ds")
    store = open_store(str(root))
    listed = []
    original = type(store).list_info

    def spy(self, prefix=""):
        listed.append(prefix)
        return original(self, prefix)

    monkeypatch.setattr(type(store), "list_info", spy)
    DatasetMeta.open(store)
    assert listed and all(p.startswith("meta") for p in listed)


def test_unknown_episode_is_a_schema_error():
    meta = DatasetMeta.open(str(fixture_path("video_basic")))
    with pytest.raises(SchemaError, match="episode 7 does not exist"):
        meta.episode(7)


def test_missing_dataset_is_not_found(tmp_path):
    with pytest.raises(NotFound, match=r"meta/info\.json"):
        DatasetMeta.open(str(tmp_path))


def test_duplicate_episode_rows_are_corrupt(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = copy_fixture("video_basic", tmp_path / "ds")
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), path)
    with pytest.raises(CorruptDataset, match="episode 0 appears more than once"):
        DatasetMeta.open(str(root))


@pytest.mark.parametrize("url", ["local", "memory://robostore-test/create"])
def test_create_writes_an_empty_valid_dataset(tmp_path, url):
    url = str(tmp_path / "new") if url == "local" else url
    features = {
        "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
        "observation.images.front": {"dtype": "video", "shape": [48, 64, 3]},
    }
    meta = DatasetMeta.create(url, fps=15, features=features, robot_type="arm")
    again = DatasetMeta.open(url)
    assert again.info == meta.info
    assert again.num_episodes == 0 and again.tasks == []
    assert list(again.features)[:2] == ["observation.state", "observation.images.front"]
    assert {"timestamp", "frame_index", "episode_index", "index", "task_index"} <= set(again.features)
    front = again.features["observation.images.front"]
    assert front.info["video.fps"] == 15 and front.names == ["height", "width", "channels"]
    with pytest.raises(SchemaError, match="already exists"):
        DatasetMeta.create(url, fps=15, features=features)
    images = DatasetMeta.create(f"{url}-img", fps=15, features=features, use_videos=False)
    assert images.image_keys == ["observation.images.front"] and images.info.video_path is None
    with pytest.raises(SchemaError, match="not allowed"):
        DatasetMeta.create(f"{url}-bad", fps=15, features={"../escape": Feature(dtype="float32", shape=(1,))})
