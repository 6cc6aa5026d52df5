"""Subset mirrors: the chosen episodes as a valid, renumbered, smaller dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

import robostore
from robostore.backends import open_store
from robostore.errors import SchemaError, VideoError
from robostore.meta import DatasetMeta
from robostore.mirror.remux import Span, cut
from robostore.selection import parse_episodes
from robostore.stats import aggregate_stats
from robostore.validate import validate

DATA = Path(__file__).parent / "data"
CASES = [("video_basic", [1, 2]), ("video_basic", [0, 2]), ("image_basic", [1]), ("multi_chunk", [1, 2, 4])]
RENUMBERED = {"index", "episode_index", "task_index"}


def test_parse_episodes() -> None:
    assert parse_episodes("0-3,7, 5") == [0, 1, 2, 3, 5, 7]
    assert parse_episodes([4, 2, 2]) == [2, 4]
    for bad in ("", "a", "3-1", "1,,2", "0-99999999999"):
        with pytest.raises(SchemaError):
            parse_episodes(bad)
    with pytest.raises(SchemaError):
        parse_episodes([-1])


def data_rows(root: Path) -> list[dict]:
    meta = DatasetMeta.open(str(root))
    rows: list[dict] = []
    for path in meta.data_files():
        rows.extend(pq.read_table(root / path).to_pylist())
    return rows


def stats_of(table, row: int) -> dict[str, dict[str, np.ndarray]]:
    """One row of the ``stats/<feature>/<stat>`` columns as feature -> stat -> array."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for column in table.column_names:
        if column.startswith("stats/"):
            feature, stat = column[len("stats/") :].rsplit("/", 1)
            out.setdefault(feature, {})[stat] = np.asarray(table.column(column)[row].as_py())
    return out


def frames(path: Path, start: float, end: float) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            t = float(frame.pts * frame.time_base)
            if start - 1e-4 <= t < end - 1e-4:
                out.append((t - start, frame.to_ndarray(format="rgb24")))
        return out


@pytest.mark.parametrize(("name", "chosen"), CASES)
def test_subset_is_valid_and_matches_the_source(name: str, chosen: list[int], tmp_path: Path) -> None:
    src_root, dst_root = DATA / name, tmp_path / "subset"
    report = robostore.mirror(str(src_root), str(dst_root), episodes=chosen, progress=False)
    assert report.ok and report.subset == chosen
    check = validate(str(dst_root))
    assert check.ok, check.problems
    src, dst = DatasetMeta.open(str(src_root)), DatasetMeta.open(str(dst_root))
    assert dst.total_episodes == len(chosen) and list(dst.episode_indices) == list(range(len(chosen)))
    assert dst.total_frames == sum(src.episode(e).length for e in chosen)
    assert json.loads((dst_root / "meta/info.json").read_text())["splits"] == {"train": f"0:{len(chosen)}"}

    src_rows, dst_rows = data_rows(src_root), data_rows(dst_root)
    kept = [r for r in src_rows if r["episode_index"] in chosen]
    assert len(dst_rows) == len(kept)
    assert [r["index"] for r in dst_rows] == list(range(len(kept)))
    for new, old in zip(dst_rows, kept, strict=True):
        assert new["episode_index"] == chosen.index(old["episode_index"])
        assert dst.task(new["task_index"]) == src.task(old["task_index"])
        assert {k: v for k, v in new.items() if k not in RENUMBERED} == {
            k: v for k, v in old.items() if k not in RENUMBERED
        }

    for new_ep, old_ep in enumerate(chosen):
        assert dst.episode(new_ep).tasks == src.episode(old_ep).tasks
        for key in src.video_keys:
            a, b = src.video_span(old_ep, key), dst.video_span(new_ep, key)
            assert b.to_timestamp - b.from_timestamp == pytest.approx(a.to_timestamp - a.from_timestamp)
            old_frames = frames(src_root / a.path, a.from_timestamp, a.to_timestamp)
            new_frames = frames(dst_root / b.path, b.from_timestamp, b.to_timestamp)
            assert len(new_frames) == len(old_frames) == src.episode(old_ep).length
            for (t_old, f_old), (t_new, f_new) in zip(old_frames, new_frames, strict=True):
                assert t_new == pytest.approx(t_old, abs=1e-4)
                assert np.array_equal(f_old, f_new)

    # Dataset stats: the aggregate of the kept episodes' own stats.
    per_episode = src.episode_stats()
    positions = per_episode.column("episode_index").to_pylist()
    expected = aggregate_stats([stats_of(per_episode, positions.index(e)) for e in chosen]).to_json_dict()
    got = json.loads((dst_root / "meta/stats.json").read_text())
    assert set(got) == set(expected)
    for feature in set(got) - RENUMBERED:
        for stat, value in expected[feature].items():
            np.testing.assert_allclose(got[feature][stat], value, rtol=1e-12, atol=1e-12)
    assert got["index"]["min"] == [0] and got["index"]["max"] == [dst.total_frames - 1]
    assert got["episode_index"]["max"] == [len(chosen) - 1]


def test_subset_remirror_is_a_noop_and_follows_source_changes(tmp_path: Path) -> None:
    src_root = tmp_path / "src"
    shutil.copytree(DATA / "multi_chunk", src_root)
    dst = str(tmp_path / "subset")
    first = robostore.mirror(str(src_root), dst, episodes="1-2", progress=False)
    assert len(first.copied) == 8  # 2 data + 2 mp4 + 4 meta
    again = robostore.mirror(str(src_root), dst, episodes="1-2", progress=False)
    assert again.copied == [] and len(again.skipped) == 8
    # A source file that no chosen episode uses changes: nothing derived from it is redone.
    unused = src_root / "videos/observation.images.cam0/chunk-002/file-000.mp4"
    unused.write_bytes(unused.read_bytes())
    assert robostore.mirror(str(src_root), dst, episodes="1-2", progress=False).copied == []
    # A used one changes: its output and the metadata are regenerated.
    used = src_root / "data/chunk-001/file-000.parquet"
    used.write_bytes(used.read_bytes())
    redo = robostore.mirror(str(src_root), dst, episodes="1-2", progress=False)
    assert sorted(redo.copied) == sorted(
        [
            "data/chunk-000/file-001.parquet",
            "meta/episodes/chunk-000/file-000.parquet",
            "meta/info.json",
            "meta/stats.json",
            "meta/tasks.parquet",
        ]
    )
    assert validate(dst).ok


def test_a_different_subset_replaces_the_previous_one(tmp_path: Path) -> None:
    dst = tmp_path / "subset"
    robostore.mirror(str(DATA / "multi_chunk"), str(dst), episodes=[0, 1, 2], progress=False)
    report = robostore.mirror(str(DATA / "multi_chunk"), str(dst), episodes=[3], delete=True, progress=False)
    assert report.ok and "data/chunk-000/file-001.parquet" in report.deleted
    assert validate(str(dst)).ok and DatasetMeta.open(str(dst)).total_episodes == 1


def test_unknown_episode_is_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"episodes \[7\] do not exist"):
        robostore.mirror(str(DATA / "video_basic"), str(tmp_path / "dst"), episodes=[1, 7], progress=False)
    assert not (tmp_path / "dst").exists()


def test_cut_refuses_a_span_that_does_not_start_on_a_keyframe(tmp_path: Path) -> None:
    store = open_store(str(DATA / "video_basic"))
    path = "videos/observation.images.cam0/chunk-000/file-000.mp4"
    with pytest.raises(VideoError, match="keyframe"):
        cut(store, path, [Span(1 / 30, 1.0, 0.0)], str(tmp_path / "out.mp4"))


def test_fixture_episodes_start_on_keyframes() -> None:
    """lerobot encodes episodes separately, so each one starts on a keyframe (stream copy works)."""
    for name in ("video_basic", "multi_chunk"):
        meta = DatasetMeta.open(str(DATA / name))
        for key in meta.video_keys:
            for e in meta.episode_indices.tolist():
                span = meta.video_span(int(e), key)
                with av.open(str(DATA / name / span.path)) as c:
                    stream = c.streams.video[0]
                    start = round(span.from_timestamp / stream.time_base)
                    first = next(p for p in c.demux(stream) if p.pts is not None and p.pts >= start)
                    assert first.pts == start and first.is_keyframe
