"""VideoReader against the frames lerobot itself returned for the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from robostore.errors import VideoError
from robostore.video import VideoReader

DATA = Path(__file__).parent / "data"


def _episodes(root: Path) -> list[dict]:
    rows: list[dict] = []
    for f in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return sorted(rows, key=lambda r: r["episode_index"])


def _cases(name: str, delta: bool) -> list[tuple]:
    """(video_path, key, timestamps, episode, expected float [T,C,H,W]) per item/camera."""
    root = DATA / name
    info = json.loads((root / "meta" / "info.json").read_text())
    eps = _episodes(root)
    fps = info["fps"]
    npz = np.load(DATA / f"{name}{'.delta' if delta else ''}.expected.npz")
    meta = json.loads(str(npz["__meta_json__"]))
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    deltas = meta["delta_indices"] or {}
    out = []
    for idx in meta["indices"]:
        ep = eps[int(npz[f"item/{idx}/episode_index"])]
        fi = int(npz[f"item/{idx}/frame_index"])
        for key in video_keys:
            rel = path = info["video_path"].format(
                video_key=key,
                chunk_index=ep[f"videos/{key}/chunk_index"],
                file_index=ep[f"videos/{key}/file_index"],
            )
            path = root / rel
            start = ep[f"videos/{key}/from_timestamp"]
            offsets = deltas.get(key, [0])
            frames = [min(max(fi + d, 0), ep["length"] - 1) for d in offsets]
            ts = [start + f / fps for f in frames]
            exp = npz[f"item/{idx}/{key}"]
            if exp.ndim == 3:
                exp = exp[None]
            out.append((path, key, ts, ep["episode_index"], exp, idx))
    return out


@pytest.mark.parametrize("name", ["video_basic", "multi_chunk"])
@pytest.mark.parametrize("delta", [False, True])
@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_matches_lerobot_frames(name: str, delta: bool, order: str) -> None:
    cases = _cases(name, delta)
    assert cases
    if order == "reverse":
        cases = cases[::-1]
    readers: dict[Path, VideoReader] = {}
    try:
        for path, key, ts, ep, exp, idx in cases:
            r = readers.get(path)
            if r is None:
                r = readers[path] = VideoReader(path.open("rb"), str(path), close_file=True)
            got = r.frames_at(ts, 1e-4, episode=ep)
            assert got.dtype == np.uint8 and got.shape == (len(ts), r.height, r.width, 3)
            got_f = got.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            assert got_f.shape == exp.shape, (idx, key)
            np.testing.assert_allclose(got_f, exp, atol=1.0 / 255 + 1e-6, err_msg=f"{name} item {idx} {key}")
    finally:
        for r in readers.values():
            r.close()


def _cam0() -> Path:
    return DATA / "video_basic/videos/observation.images.cam0/chunk-000/file-000.mp4"


def test_properties() -> None:
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        assert (r.width, r.height) == (64, 48)
        assert r.fps == pytest.approx(30.0)
        assert r.duration == pytest.approx(3.0)
        assert r.codec == "av1"
        assert r.num_frames == 90


def test_sequential_access_decodes_each_frame_once() -> None:
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        for i in range(90):
            r.frames_at([i / 30], 1e-4)
        assert r.seeks == 1
        assert r.decoded == 90
    # Sliding delta window [-1, 0] also needs no re-decode.
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        for i in range(1, 90):
            r.frames_at([(i - 1) / 30, i / 30], 1e-4)
        assert r.seeks == 1
        assert r.decoded == 90


def test_random_access_matches_sequential() -> None:
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        seq = np.concatenate([a[None] for _, a in r.iter_frames(0.0, 3.0)])
    assert seq.shape[0] == 90
    rng = np.random.default_rng(0)
    with VideoReader(str(_cam0()), "cam0.mp4", thread_type="NONE") as r:
        for i in rng.permutation(90):
            np.testing.assert_array_equal(r.frames_at([i / 30], 1e-4)[0], seq[i])


def test_decoded_frames_outlive_their_reader() -> None:
    """The streaming shuffle buffer holds frames still decoded after the episode's reader
    closed (packed copies for 4:2:0, FFmpeg's reference-counted frames otherwise)."""
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        want = r.frames_at([i / 30 for i in range(90)], 1e-4, channels_first=True)
    reader = VideoReader(str(_cam0()), "cam0.mp4")
    held = [reader.decoded_at([i / 30, i / 30], 1e-4) for i in range(90)]
    reader.close()
    del reader
    junk = [np.full(64 * 48 * 3, 255, np.uint8) for _ in range(2000)]  # noqa: F841  (reuses freed memory)
    for i, frames in enumerate(held):
        assert frames.shape == (2, 3, 48, 64)
        got = frames.to_array()
        np.testing.assert_array_equal(got[0], want[i])
        np.testing.assert_array_equal(got[1], want[i])
        single = frames.first()
        assert single.shape == (3, 48, 64)
        np.testing.assert_array_equal(single.to_array(), want[i])


def test_iter_frames_episode_bounds() -> None:
    eps = _episodes(DATA / "video_basic")
    key = "observation.images.cam0"
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        for ep in eps:
            got = list(r.iter_frames(ep[f"videos/{key}/from_timestamp"], ep[f"videos/{key}/to_timestamp"]))
            assert len(got) == ep["length"]
            assert got[0][0] == pytest.approx(ep[f"videos/{key}/from_timestamp"], abs=1e-9)
            steps = np.diff([t for t, _ in got])
            np.testing.assert_allclose(steps, 1 / 30, atol=1e-9)


def test_beyond_end_raises_video_error() -> None:
    with VideoReader(str(_cam0()), "videos/cam0/file-000.mp4") as r:
        with pytest.raises(VideoError, match=r"file-000\.mp4.*t=3\.5.*episode 7"):
            r.frames_at([3.5], 1e-4, episode=7)
        with pytest.raises(VideoError, match=r"file-000\.mp4"):
            r.frames_at([1000.0], 1e-4)
        # Still usable afterwards.
        assert r.frames_at([0.0], 1e-4).shape == (1, 48, 64, 3)


def test_off_grid_timestamp_raises() -> None:
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        with pytest.raises(VideoError, match=r"closest decoded frame is at t=0\.033333"):
            r.frames_at([0.04], 1e-4, episode=0)
        # A generous tolerance accepts it, as lerobot would.
        assert r.frames_at([0.04], 0.02).shape[0] == 1


def test_empty_query() -> None:
    with VideoReader(str(_cam0()), "cam0.mp4") as r:
        assert r.frames_at([], 1e-4).shape == (0, 48, 64, 3)
        assert r.decoded_at([], 1e-4).to_array().shape == (0, 3, 48, 64)


def _write_video(path: Path, codec: str, pix_fmt: str, width: int, height: int, frames: int = 6) -> None:
    import av

    rng = np.random.default_rng(width * height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for _ in range(frames):
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "width"),
    [
        ("libsvtav1", "yuv420p", 320),  # planar conversion
        ("libsvtav1", "yuv420p", 328),  # width not a multiple of 16: through rgb24
        ("mpeg4", "yuv420p", 96),
        ("mpeg4", "yuv420p", 104),
        ("libx264", "yuvj420p", 160),
        ("libx264", "yuv444p", 160),
        ("libx264", "yuv422p", 160),
        ("libx264", "yuv444p", 168),
    ],
)
def test_channels_first_equals_transposed_rgb(tmp_path: Path, codec: str, pix_fmt: str, width: int) -> None:
    """[3, H, W] frames hold exactly the values of the [H, W, 3] ones, whatever the
    conversion path (planar gbrp or rgb24 + transpose)."""
    path = tmp_path / "v.mp4"
    _write_video(path, codec, pix_fmt, width, 64)
    with VideoReader(str(path)) as reader:
        ts = [i / 30 for i in range(6)]
        hwc = reader.frames_at(ts)
    with VideoReader(str(path)) as reader:
        chw = reader.frames_at([ts[2], ts[0], ts[2]], channels_first=True)
        streamed = np.stack([f for _, f in reader.iter_frames(0, 1, channels_first=True)])
    with VideoReader(str(path)) as reader:  # held decoded (4:2:0 as packed copies), converted later
        held = [reader.decoded_at([t]) for t in ts]
    assert chw.shape == (3, 3, 64, width) and chw.flags.c_contiguous
    np.testing.assert_array_equal(chw, hwc[[2, 0, 2]].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(streamed, hwc.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(np.concatenate([h.to_array() for h in held]), hwc.transpose(0, 3, 1, 2))
