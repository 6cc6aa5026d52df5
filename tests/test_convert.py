"""robostore.convert (v2.1 -> v3.0) against lerobot 0.4.4's own converter, between backends.

tests/data/v21_video.lerobot_converted.json is what lerobot's
``convert_dataset_v21_to_v30`` wrote for tests/data/v21_video with the same size limits
(tests/peer033/convert_with_lerobot.py): info.json, stats.json, tasks and every episodes
row. The samples of the converted dataset are compared with lerobot 0.3.3's values for
the v2.1 source (the tests/data/v21_*.expected.npz oracles).
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from backends.pytest_plugin import backend_params, upload_folder
from fixture_data import DATA, expected
from robostore import (
    CorruptDataset,
    Dataset,
    DatasetMeta,
    NotFound,
    SchemaError,
    VideoError,
    convert,
    validate,
)
from robostore.backends import open_store
from robostore.cli import app
from robostore.convert.rollover import roll
from robostore.convert.source import ConvertSource
from robostore.layout import episodes_file
from robostore.parquet import read_parquet
from test_dataset import assert_item

#: The size limits the lerobot-converted fixture was made with: several data files and mp4s.
DATA_MB, VIDEO_MB = 0.004, 0.015


def lerobot_converted() -> dict:
    return json.loads((DATA / "v21_video.lerobot_converted.json").read_text())


def _convert(src: str, dst: str, dst_options: dict | None = None, **kwargs: object):
    return convert(src, dst, data_mb=DATA_MB, video_mb=VIDEO_MB, dst_options=dst_options, progress=False, **kwargs)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("converted") / "v30"
    report = _convert(str(DATA / "v21_video"), str(dst))
    assert report.ok, report.failed
    return dst


def test_rollover_rule() -> None:
    assert roll([1, 1, 1, 1], 2.5) == [[0, 1], [2, 3]]
    assert roll([1, 1.5, 0.5], 2.5) == [[0], [1, 2]]  # reaching the limit starts a new file
    assert roll([5, 1], 2) == [[0], [1]]  # an episode above the limit gets a file of its own
    assert roll([], 2) == []


@pytest.mark.parametrize("backend", backend_params())
def test_converted_samples_equal_lerobot033(backend: str, backend_url, tmp_path: Path) -> None:
    if backend == "local":
        url, options = str(tmp_path / "out"), {}
    else:
        url, options = backend_url(backend)
    src_url, src_options = backend_url("memory")
    upload_folder(DATA / "v21_video", src_url, src_options)
    report = convert(
        src_url, url, data_mb=DATA_MB, video_mb=VIDEO_MB, src_options=src_options, dst_options=options, progress=False
    )
    assert report.ok, report.failed
    assert validate(url, options).ok
    for delta in (False, True):
        meta, npz = expected("v21_video", delta)
        deltas = json.loads((DATA / "delta_video.json").read_text()) if delta else None
        ds = Dataset(url, storage_options=options, delta_timestamps=deltas)
        assert len(ds) == meta["len"]
        for idx in meta["indices"]:
            assert_item(ds[idx], npz, meta["item_keys"][str(idx)], idx, meta["camera_keys"])


def test_image_dataset_converts(tmp_path: Path) -> None:
    report = convert(str(DATA / "v21_image"), str(tmp_path / "out"), progress=False)
    assert report.ok
    meta, npz = expected("v21_image")
    ds = Dataset(str(tmp_path / "out"))
    assert DatasetMeta.open(str(tmp_path / "out")).info.video_path is None
    for idx in meta["indices"]:
        assert_item(ds[idx], npz, meta["item_keys"][str(idx)], idx, meta["camera_keys"])


def _numbered(row: dict, chunks_size: int) -> dict:
    """``row`` with each (chunk_index, file_index) pair as one position in its series.

    lerobot's converter numbers output files with its default of 1000 files per chunk
    whatever info.json's chunks_size says (2 in this fixture); robostore numbers them with
    the chunks_size it writes into info.json. The k-th file is the same file either way.
    """
    out = dict(row)
    for name in [n for n in row if n.endswith("/chunk_index") and not n.startswith("meta/")]:
        prefix = name[: -len("chunk_index")]
        out[prefix + "position"] = out.pop(name) * chunks_size + out.pop(prefix + "file_index")
    return out


def test_metadata_equals_lerobot_converter(converted: Path) -> None:
    want = lerobot_converted()
    ours = pq.read_table(converted / episodes_file(0, 0))
    theirs = want["episodes"]
    assert ours.column_names == list(theirs[0])
    rows = ours.to_pylist()
    chunks_size = json.loads((converted / "meta/info.json").read_text())["chunks_size"]
    misfiled = []
    for mine, lerobot in zip(rows, theirs, strict=True):
        mine, lerobot = _numbered(mine, chunks_size), _numbered(lerobot, 1000)
        for name, value in lerobot.items():
            if name.startswith("stats/"):
                np.testing.assert_allclose(
                    np.asarray(mine[name], float), np.asarray(value, float), rtol=0, err_msg=name
                )
            elif name == "data/position" and mine[name] != value:
                misfiled.append(mine["episode_index"])
            else:
                assert mine[name] == value, (mine["episode_index"], name)

    # lerobot's converter files the first episode of each new data file under the previous
    # file (upstream issue #2401); robostore names the file that holds it.
    def file_of(row: dict) -> tuple:
        return row["data/chunk_index"], row["data/file_index"]

    firsts = [b["episode_index"] for a, b in itertools.pairwise(rows) if file_of(a) != file_of(b)]
    assert misfiled == firsts == [1, 2]
    store = open_store(str(converted))
    for row in rows:
        path = f"data/chunk-{row['data/chunk_index']:03d}/file-{row['data/file_index']:03d}.parquet"
        assert set(read_parquet(store, path, columns=["episode_index"]).column(0).to_pylist()) == {row["episode_index"]}

    info = json.loads((converted / "meta/info.json").read_text())
    theirs_info = want["info"]
    for key, value in theirs_info.items():
        if key != "features":
            assert info[key] == value, key
    # lerobot's converter adds "fps" to every non-video feature: a quirk robostore reads but does not write
    assert info["features"] == {
        k: {n: v for n, v in f.items() if n != "fps"} for k, f in theirs_info["features"].items()
    }
    stats = json.loads((converted / "meta/stats.json").read_text())
    assert stats.keys() == want["stats"].keys()
    for key, values in want["stats"].items():
        for stat, value in values.items():
            np.testing.assert_allclose(
                np.asarray(stats[key][stat], float), np.asarray(value, float), rtol=1e-9, err_msg=f"{key}/{stat}"
            )
    meta = DatasetMeta.open(str(converted))
    assert {t: i for i, t in enumerate(meta.tasks)} == want["tasks"]
    files = sorted(
        p.relative_to(converted).as_posix() for p in converted.rglob("*") if p.is_file() and ".robostore" not in p.parts
    )
    assert len(files) == len(want["files"])


def test_videos_are_stream_copied(converted: Path) -> None:
    """Every packet of every v2.1 mp4 is in the output, byte for byte, in order."""

    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as container:
            return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]

    meta = DatasetMeta.open(str(converted))
    for key in meta.video_keys:
        joined = [p for f in sorted((converted / "videos" / key).rglob("*.mp4")) for p in packets(f)]
        originals = [p for f in sorted((DATA / "v21_video/videos").rglob(f"{key}/*.mp4")) for p in packets(f)]
        assert joined == originals


def test_second_run_writes_nothing_and_resumes(tmp_path: Path) -> None:
    dst = tmp_path / "out"
    first = _convert(str(DATA / "v21_video"), str(dst))
    again = _convert(str(DATA / "v21_video"), str(dst))
    assert again.copied == [] and sorted(again.skipped) == sorted(first.copied)
    # as if killed after part of the payload: a data file, an mp4 and info.json are gone
    lost = [
        "data/chunk-000/file-001.parquet",
        "videos/observation.images.cam0/chunk-000/file-000.mp4",
        "meta/info.json",
    ]
    for path in lost:
        (dst / path).unlink()
    resumed = _convert(str(DATA / "v21_video"), str(dst))
    assert sorted(resumed.copied) == sorted(lost)
    assert validate(str(dst)).ok


def test_failed_payload_writes_no_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ConvertSource.write

    def flaky(self, target, dst, on_bytes):
        if target.path.endswith("file-001.mp4"):
            raise VideoError("injected")
        return real(self, target, dst, on_bytes)

    monkeypatch.setattr(ConvertSource, "write", flaky)
    report = _convert(str(DATA / "v21_video"), str(tmp_path / "out"))
    assert not report.ok and not (tmp_path / "out/meta/info.json").exists()
    monkeypatch.setattr(ConvertSource, "write", real)
    report = _convert(str(DATA / "v21_video"), str(tmp_path / "out"))
    assert report.ok and all(p.endswith("file-001.mp4") or p.startswith("meta/") for p in report.copied)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(DATA / "v21_video", root)
    return root


def test_broken_sources_get_typed_errors(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "videos/chunk-000/observation.images.cam1/episode_000001.mp4").unlink()
    with pytest.raises(NotFound, match=r"episode_000001\.mp4"):
        _convert(str(root), str(tmp_path / "a"))
    shutil.copyfile(
        DATA / "v21_video/videos/chunk-000/observation.images.cam1/episode_000001.mp4",
        root / "videos/chunk-000/observation.images.cam1/episode_000001.mp4",
    )
    # frames past the end of a video: episode 2 (40 frames) given episode 1's mp4 (20 frames)
    shutil.copyfile(
        root / "videos/chunk-000/observation.images.cam1/episode_000001.mp4",
        root / "videos/chunk-001/observation.images.cam1/episode_000002.mp4",
    )
    with pytest.raises(VideoError, match=r"episode_000002\.mp4"):
        _convert(str(root), str(tmp_path / "b"))
    with pytest.raises(VideoError, match=r"episode_000002\.mp4"):
        _convert(str(root), str(tmp_path / "c"), check=False)
    assert not (tmp_path / "c/meta/info.json").exists()


def test_rows_that_exist_nowhere(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    lines = (root / "meta/episodes.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["length"] += 5
    lines[1] = json.dumps(row)
    (root / "meta/episodes.jsonl").write_text("\n".join(lines) + "\n")
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] += 5
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(CorruptDataset, match=r"episode_000001\.parquet"):
        _convert(str(root), str(tmp_path / "out"), check=False)


def test_v3_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="robostore mirror"):
        convert(str(DATA / "video_basic"), str(tmp_path / "out"), progress=False)


def test_cli_convert_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["convert", str(DATA / "v21_image"), str(tmp_path / "out"), "--data-mb", "0.01", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and "meta/info.json" in report["copied"]
    assert json.loads((tmp_path / "out/meta/info.json").read_text())["data_files_size_in_mb"] == 0.01


def _packets(path: Path) -> list[tuple[float, bytes, bool]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(p.pts * stream.time_base), bytes(p), p.is_keyframe) for p in container.demux(stream) if p.size]


def test_byte_join_equals_packet_join(tmp_path: Path) -> None:
    """The fast path (mdat bytes + merged sample tables) against the packet-by-packet join."""
    from robostore.mirror import remux
    from robostore.mirror.mp4join import join_bytes

    store = open_store(str(DATA / "v21_video"))
    paths = [f"videos/chunk-00{e // 2}/observation.images.cam0/episode_{e:06d}.mp4" for e in range(3)]
    with av.open(str(DATA / "v21_video" / paths[0])) as c, av.open(str(DATA / "v21_video" / paths[1])) as d:
        first = float(c.streams.video[0].duration * c.streams.video[0].time_base)
        second = float(d.streams.video[0].duration * d.streams.video[0].time_base)
    pieces = [(store, p, dest) for p, dest in zip(paths, (0.0, first, first + second), strict=True)]
    join_bytes(pieces, str(tmp_path / "bytes.mp4"))
    with av.open(str(tmp_path / "packets.mp4"), "w", format="mp4") as out:
        ostream = None
        for store_, path, dest in pieces:
            with store_.open(path) as fh, av.open(fh) as src:
                istream = src.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(istream, opaque=True)
                    ostream.time_base = istream.time_base
                remux._copy_packets(src, istream, ostream, out, remux.Piece(store_, path, dest=dest), path)
    assert _packets(tmp_path / "bytes.mp4") == _packets(tmp_path / "packets.mp4")
    with av.open(str(tmp_path / "bytes.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 90


def test_b_frames_fall_back_to_packets(tmp_path: Path) -> None:
    """h264 with B-frames (composition offsets) is joined packet by packet, frames intact."""
    from robostore.mirror.mp4join import NotJoinable, join_bytes
    from robostore.mirror.remux import Piece, join

    for name in ("a", "b"):
        with av.open(str(tmp_path / f"{name}.mp4"), "w") as out:
            stream = out.add_stream("libx264", rate=30, options={"bf": "2", "g": "10"})
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for t in range(20):
                frame = np.full((48, 64, 3), (t * 12) % 256, np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode())
    store = open_store(str(tmp_path))
    with pytest.raises(NotJoinable):
        join_bytes([(store, "a.mp4", 0.0), (store, "b.mp4", 20 / 30)], str(tmp_path / "x.mp4"))
    join([Piece(store, "a.mp4", dest=0.0), Piece(store, "b.mp4", dest=20 / 30)], str(tmp_path / "joined.mp4"))
    with av.open(str(tmp_path / "joined.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24")[0, 0, 0] for f in c.decode(video=0)]
    assert len(frames) == 40
