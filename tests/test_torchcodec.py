"""video_backend="torchcodec" against PyAV (the default) on every video fixture.

torchcodec 0.13 (the CPU build that loads with torch 2.13) needs FFmpeg's shared libraries;
.ci/run installs Debian's FFmpeg 5.1 runtime packages. Depth maps are decoded with PyAV
whatever the backend, as lerobot does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixture_data import DATA
from robostore import Dataset

try:
    from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg's libraries)
except (ImportError, RuntimeError, OSError) as exc:  # pragma: no cover - CI installs both
    pytest.skip(
        f"torchcodec cannot load here ({type(exc).__name__}); .ci/run installs it and FFmpeg 5.1",
        allow_module_level=True,
    )

VIDEO_FIXTURES = sorted(
    p.name for p in DATA.iterdir() if p.is_dir() and (p / "meta/info.json").exists() and (p / "videos").is_dir()
)
FRAME_ATOL = 1 / 255 + 1e-6


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_torchcodec_equals_pyav(name: str) -> None:
    pyav = Dataset(str(DATA / name), video_backend="pyav")
    torchcodec = Dataset(str(DATA / name), video_backend="torchcodec")
    assert torchcodec.video_backend == "torchcodec"
    for idx in reversed(range(len(pyav))):  # backwards: a seek for every sample
        a, b = pyav[idx], torchcodec[idx]
        for key in pyav.meta.video_keys:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, (idx, key)
            np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")


def test_torchcodec_with_deltas() -> None:
    deltas = json.loads((DATA / "delta_video.json").read_text())
    pyav = Dataset(str(DATA / "video_basic"), video_backend="pyav", delta_timestamps=deltas)
    torchcodec = Dataset(str(DATA / "video_basic"), video_backend="torchcodec", delta_timestamps=deltas)
    for idx in (0, 1, 29, 30, 31, 89):
        a, b = pyav[idx], torchcodec[idx]
        for key in pyav.meta.video_keys:
            np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")
