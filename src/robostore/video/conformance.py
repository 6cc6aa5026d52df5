"""Does a video file hold what info.json says it holds? (codec, frame size)"""

from __future__ import annotations

from typing import Protocol

from robostore.errors import VideoError
from robostore.schema import Feature


class VideoFacts(Protocol):
    """What a conformance check reads of an open video (a VideoReader, or torchcodec's)."""

    @property
    def name(self) -> str: ...
    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def codec(self) -> str: ...


# Encoder/decoder names that write or read the same bitstream format.
_CODEC_FAMILY = {
    "libsvtav1": "av1",
    "libaom-av1": "av1",
    "libdav1d": "av1",
    "librav1e": "av1",
    "av1": "av1",
    "libx264": "h264",
    "libopenh264": "h264",
    "h264": "h264",
    "libx265": "hevc",
    "hevc": "hevc",
    "h265": "hevc",
}


def codec_family(name: str) -> str:
    """Canonical bitstream name of an encoder/decoder name (``libsvtav1`` → ``av1``)."""
    return _CODEC_FAMILY.get(name.lower(), name.lower())


def check_conformance(reader: VideoFacts, key: str, feature: Feature) -> None:
    """Raise :class:`VideoError` when the file's frame size or codec contradict info.json."""
    height, width, _ = feature.frame_size
    if (reader.height, reader.width) != (height, width):
        raise VideoError(
            f"{reader.name}: frames are {reader.height}x{reader.width} but info.json says {key} is "
            f"{height}x{width}; the file does not belong to this dataset or the metadata is wrong"
        )
    claimed = (feature.info or {}).get("video.codec")
    if isinstance(claimed, str) and codec_family(claimed) != codec_family(reader.codec):
        raise VideoError(
            f"{reader.name}: the video is {reader.codec} but info.json says {key} is {claimed}; "
            "the file does not belong to this dataset or the metadata is wrong"
        )
