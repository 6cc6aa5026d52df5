"""EpisodeEncoder + append_segment: episodes appended to one mp4 decode back exactly."""

from __future__ import annotations

import itertools
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from robostore.errors import SchemaError, VideoError
from robostore.video import EpisodeEncoder, VideoOptions, VideoReader, append_segment, file_size

pytestmark = pytest.mark.timeout(120)

FIXTURE = Path(__file__).parent / "data/video_basic/videos/observation.images.cam0/chunk-000/file-000.mp4"
H, W, FPS = 48, 64, 30
NEAR_LOSSLESS = VideoOptions.h264(crf=0, pix_fmt="yuv444p")


def _frames(n: int, seed: int) -> list[np.ndarray]:
    """Smooth moving gradients: easy for a codec, distinct per frame."""
    yy, xx = np.mgrid[0:H, 0:W]
    out = []
    for i in range(n):
        f = np.stack(
            [(xx * 4 + i * 5 + seed * 40) % 256, (yy * 5 + i * 3) % 256, np.full_like(xx, (i * 9 + seed * 70) % 256)],
            -1,
        )
        out.append(f.astype(np.uint8))
    return out


def _encode(frames: list[np.ndarray], tmp: Path, options: VideoOptions):
    enc = EpisodeEncoder(W, H, FPS, options, tmp_dir=tmp, name="cam0")
    for f in frames:
        enc.add(f)
    return enc.finish()


@pytest.mark.parametrize(
    ("options", "max_mean_err"),
    [(VideoOptions(), 12.0), (VideoOptions.h264(), 8.0), (NEAR_LOSSLESS, 1.5)],
    ids=["av1-default", "h264", "h264-lossless"],
)
def test_append_three_episodes(tmp_path: Path, options: VideoOptions, max_mean_err: float) -> None:
    dst = tmp_path / "videos/cam0/chunk-000/file-000.mp4"
    lengths = [30, 1, 17]
    episodes = [_frames(n, seed) for seed, n in enumerate(lengths)]
    spans = []
    for frames in episodes:
        seg = _encode(frames, tmp_path, options)
        spans.append(append_segment(dst, seg))
        assert not seg.path.exists()
    assert spans[0] == (0.0, 1.0)
    for (_, a_to), (b_from, _) in itertools.pairwise(spans):
        assert b_from == a_to or abs(b_from - a_to) < 1e-12
    for (f, t), n in zip(spans, lengths, strict=True):
        assert t == f + n / FPS

    with VideoReader(dst.open("rb"), "file-000.mp4", close_file=True) as r:
        assert r.num_frames == sum(lengths)
        assert r.codec == options.info_codec
        for k, ((start, end), frames) in enumerate(zip(spans, episodes, strict=True)):
            got = list(r.iter_frames(start, end))
            assert len(got) == len(frames), k
            for i, (t, img) in enumerate(got):
                assert abs(t - (start + i / FPS)) < 1e-4
                err = np.abs(img.astype(np.int16) - frames[i]).mean()
                assert err <= max_mean_err, (k, i, err)
            # Random access through the episodes table's timestamps.
            idx = list(range(len(frames)))[::-1]
            arr = r.frames_at([start + i / FPS for i in idx], 1e-4, episode=k)
            np.testing.assert_array_equal(arr, np.stack([got[i][1] for i in idx]))


def test_lossless_h264_is_close_to_exact(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    frames = _frames(5, 3)
    append_segment(dst, _encode(frames, tmp_path, NEAR_LOSSLESS))
    with VideoReader(str(dst)) as r:
        got = np.stack([img for _, img in r.iter_frames(0, 1)])
    assert np.abs(got.astype(np.int16) - np.stack(frames)).max() <= 3


def test_append_to_lerobot_file_keeps_old_frames(tmp_path: Path) -> None:
    dst = tmp_path / "file-000.mp4"
    shutil.copyfile(FIXTURE, dst)
    with VideoReader(str(FIXTURE)) as r:
        before = [img for _, img in r.iter_frames(0, 3)]
    start, end = append_segment(dst, _encode(_frames(10, 0), tmp_path, VideoOptions()))
    assert (start, end) == (3.0, 3.0 + 10 / 30)
    with VideoReader(str(dst)) as r:
        after = [img for _, img in r.iter_frames(0, 3)]
        assert len(list(r.iter_frames(start, end))) == 10
        assert r.num_frames == 100
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)  # stream copy: bit-identical decode


def test_abort_leaves_file_untouched(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    append_segment(dst, _encode(_frames(4, 0), tmp_path, VideoOptions()))
    before = dst.read_bytes()
    enc = EpisodeEncoder(W, H, FPS, tmp_dir=tmp_path, name="cam0 episode 1")
    for f in _frames(6, 1):
        enc.add(f)
    seg_path = enc.path
    enc.abort()
    enc.abort()
    assert not seg_path.exists()
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.mp4"]
    with pytest.raises(VideoError, match="already finished or aborted"):
        enc.add(_frames(1, 0)[0])


def test_context_manager_aborts_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="robot fell over"), EpisodeEncoder(W, H, FPS, tmp_dir=tmp_path) as enc:  # noqa: PT012 - the manager under test wraps the raise
        enc.add(_frames(1, 0)[0])
        raise RuntimeError("robot fell over")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_empty_episode(tmp_path: Path) -> None:
    enc = EpisodeEncoder(W, H, FPS, tmp_dir=tmp_path, name="observation.images.cam0")
    with pytest.raises(VideoError, match=r"observation.images.cam0.*uint8 of shape \(48, 64, 3\), got float32"):
        enc.add(np.zeros((H, W, 3), np.float32))
    with pytest.raises(VideoError, match=r"got uint8 \(64, 48, 3\)"):
        enc.add(np.zeros((W, H, 3), np.uint8))
    with pytest.raises(VideoError, match="no frames"):
        enc.finish()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(VideoError, match="even"):
        EpisodeEncoder(63, 48, FPS)


def test_mismatched_segment_rejected(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    append_segment(dst, _encode(_frames(3, 0), tmp_path, VideoOptions()))
    before = dst.read_bytes()
    enc = EpisodeEncoder(32, 48, FPS, tmp_dir=tmp_path)
    enc.add(np.zeros((48, 32, 3), np.uint8))
    with pytest.raises(VideoError, match=r"f.mp4.*64x48.*32x48.*new video file"):
        append_segment(dst, enc.finish(), name="f.mp4")
    assert dst.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("robostore-seg")) == ["f.mp4"]


def test_corrupt_destination_is_video_error(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    dst.write_bytes(b"garbage" * 100)
    with pytest.raises(VideoError, match=r"videos/cam0/f\.mp4"):
        append_segment(dst, _encode(_frames(2, 0), tmp_path, VideoOptions()), name="videos/cam0/f.mp4")
    assert dst.read_bytes() == b"garbage" * 100


def test_file_size(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    assert file_size(dst) == 0
    seg = _encode(_frames(3, 0), tmp_path, VideoOptions())
    n = seg.size_bytes
    append_segment(dst, seg)
    assert file_size(dst) == n


def test_backlog_and_add_latency(tmp_path: Path) -> None:
    """add() queues the frame and returns; encoding happens on the encoder's thread.

    The encoder thread is held after it takes its first frame (where it hands the frame's
    buffer back for reuse), so every add() must return without any frame encoded: a
    signal no CPU load can blur, where a timed bound could."""
    enc = EpisodeEncoder(W, H, FPS, tmp_dir=tmp_path)
    held = threading.Event()

    class HeldBuffers(queue.SimpleQueue[np.ndarray]):
        def put(self, item: np.ndarray, block: bool = True, timeout: float | None = None) -> None:
            held.wait(120)  # set below; the bound only ends a broken run
            super().put(item)

    enc._free = HeldBuffers()
    for f in _frames(20, 0):
        enc.add(f)
    assert enc.backlog == 20
    held.set()
    seg = enc.finish()
    assert seg.n_frames == 20 and enc.backlog == 0
    seg.path.unlink()


def test_options_validation() -> None:
    assert VideoOptions().ffmpeg_options() == {"g": "2", "crf": "30", "preset": "12"}
    assert VideoOptions.h264().ffmpeg_options()["bf"] == "0"
    for bad in [
        {"codec": "libvpx"},
        {"crf": 64},
        {"crf": -1},
        {"gop": 0},
        {"pix_fmt": "rgb24"},
        {"preset": 14},
        {"preset": "fast"},
        {"threads": -2},
    ]:
        with pytest.raises(SchemaError):
            VideoOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        VideoOptions.h264(crf=52)
    with pytest.raises(SchemaError):
        VideoOptions.h264(preset="ludicrous")
    assert VideoOptions().with_(crf=20).crf == 20


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from robostore.video import EpisodeEncoder, VideoOptions, append_segment
    dst, tmp = sys.argv[1], sys.argv[2]
    k = 0
    while True:
        enc = EpisodeEncoder(64, 48, 30, VideoOptions.h264(), tmp_dir=tmp)
        for i in range(10):
            enc.add(np.full((48, 64, 3), (k * 10 + i) % 256, np.uint8))
        append_segment(dst, enc.finish())
        k += 1
        print(k, flush=True)
    """
)


def test_kill_9_leaves_a_valid_file(tmp_path: Path) -> None:
    dst = tmp_path / "f.mp4"
    src_dir = Path(__file__).parents[1] / "src"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(dst), str(tmp_path)],
        stdout=subprocess.PIPE,
        env={"PYTHONPATH": str(src_dir), "PATH": "/usr/bin:/bin"},
    )
    assert proc.stdout is not None
    # Let it append a few episodes, then kill it mid-work.
    for _ in range(5):
        assert proc.stdout.readline()
    proc.kill()
    proc.wait()
    with VideoReader(str(dst)) as r:
        frames = list(r.iter_frames(0, 1e9))
    assert len(frames) >= 50 and len(frames) % 10 == 0
    for i, (t, _) in enumerate(frames):
        assert abs(t - i / 30) < 1e-4
