"""Broken video files end in VideoError naming the file, never a hang or a raw av error."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from robostore.errors import CorruptDataset, VideoError
from robostore.video import VideoReader, decode_image

CAM0 = Path(__file__).parent / "data/video_basic/videos/observation.images.cam0/chunk-000/file-000.mp4"

pytestmark = pytest.mark.timeout(60)


def _bytes() -> bytes:
    return CAM0.read_bytes()


def test_truncated_file() -> None:
    data = _bytes()
    with pytest.raises(VideoError, match=r"cut\.mp4"), VideoReader(io.BytesIO(data[: len(data) // 2]), "cut.mp4") as r:
        r.frames_at([0.0, 2.9], 1e-4)


def test_truncated_file_iter() -> None:
    data = _bytes()
    with pytest.raises(VideoError, match=r"cut\.mp4"), VideoReader(io.BytesIO(data[: len(data) // 2]), "cut.mp4") as r:
        list(r.iter_frames(0.0, 3.0))


def test_truncated_head_only() -> None:
    with pytest.raises(VideoError, match=r"head\.mp4.*truncated"):
        VideoReader(io.BytesIO(_bytes()[:100]), "head.mp4")


@pytest.mark.parametrize("data", [b"", b"garbage" * 1000, bytes(range(256)) * 64])
def test_garbage(data: bytes) -> None:
    with pytest.raises(VideoError, match=r"junk\.mp4"):
        VideoReader(io.BytesIO(data), "junk.mp4")


def test_corrupt_middle_then_reusable() -> None:
    data = bytearray(_bytes())
    data[3000:8000] = bytes(range(256)) * 19 + bytes(136)
    with VideoReader(io.BytesIO(bytes(data)), "mid.mp4") as r:
        with pytest.raises(VideoError, match=r"mid\.mp4"):
            r.frames_at([0.0, 2.9], 1e-4)
        # The reader recovers: frames before and after the damage still decode.
        assert r.frames_at([0.0], 1e-4).shape == (1, 48, 64, 3)
        assert r.frames_at([2.9], 1e-4).shape == (1, 48, 64, 3)


def test_audio_only_file() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate = 16000
        f.pts = 0
        for p in [*s.encode(f), *s.encode(None)]:
            c.mux(p)
    with pytest.raises(VideoError, match=r"audio.mp4.*\['audio'\]"):
        VideoReader(io.BytesIO(buf.getvalue()), "audio.mp4")


class _FailingFile(io.BytesIO):
    """A file object whose reads fail once ``broken`` is set, like a dropped connection."""

    broken = False

    def read(self, *args: object) -> bytes:  # type: ignore[override]
        if self.broken:
            raise OSError("connection reset by peer")
        return super().read(*args)  # type: ignore[arg-type]

    def seek(self, *args: object) -> int:  # type: ignore[override]
        if self.broken:
            raise OSError("connection reset by peer")
        return super().seek(*args)  # type: ignore[arg-type]


def _noise_mp4(n: int = 30, size: int = 128) -> bytes:
    """A few MB of barely compressible h264, larger than PyAV's IO buffer."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=30, options={"qp": "0", "preset": "ultrafast"})
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (size, size, 3), np.uint8), format="rgb24")
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return buf.getvalue()


def test_file_object_raising_oserror() -> None:
    f = _FailingFile(_noise_mp4())
    r = VideoReader(f, "s3://bucket/ds/videos/cam0.mp4")
    f.broken = True
    with pytest.raises(VideoError, match=r"s3://bucket/ds/videos/cam0.mp4.*episode 2.*connection reset"):
        r.frames_at([0.9], 1e-4, episode=2)
    r.close()


def test_file_object_raising_on_open() -> None:
    f = _FailingFile(_bytes())
    f.broken = True
    with pytest.raises(VideoError, match=r"cam0\.mp4"):
        VideoReader(f, "cam0.mp4")


def test_closed_reader() -> None:
    r = VideoReader(str(CAM0), "cam0.mp4")
    r.close()
    r.close()
    with pytest.raises(VideoError, match="closed"):
        r.frames_at([0.0], 1e-4)


def test_decode_image_roundtrip() -> None:
    img = (np.arange(32 * 48 * 3) % 251).astype(np.uint8).reshape(32, 48, 3)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    np.testing.assert_array_equal(decode_image(buf.getvalue(), "x"), img)
    gray = io.BytesIO()
    Image.fromarray(img[..., 0]).save(gray, format="PNG")
    assert decode_image(gray.getvalue(), "x").shape == (32, 48, 3)


def test_decode_image_matches_fixture() -> None:
    import json

    import pyarrow.parquet as pq

    root = Path(__file__).parent / "data/image_basic"
    info = json.loads((root / "meta/info.json").read_text())
    key = next(k for k, f in info["features"].items() if f["dtype"] == "image")
    table = pq.read_table(root / "data/chunk-000/file-000.parquet", columns=[key, "index"])
    npz = np.load(Path(__file__).parent / "data/image_basic.expected.npz")
    meta = json.loads(str(npz["__meta_json__"]))
    rows = table.to_pylist()
    for idx in meta["indices"]:
        png = rows[idx][key]["bytes"]
        got = decode_image(png, key).transpose(2, 0, 1).astype(np.float32) / 255
        np.testing.assert_allclose(got, npz[f"item/{idx}/{key}"], atol=1e-6)


def test_decode_image_garbage() -> None:
    with pytest.raises(CorruptDataset, match=r"data/chunk-000/file-000\.parquet row 3"):
        decode_image(b"not a png", "data/chunk-000/file-000.parquet row 3")
    with pytest.raises(CorruptDataset):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 50, "x")
