"""Encoder settings for camera features (:class:`VideoOptions`).

Defaults follow lerobot (AV1 via libsvtav1, crf 30, GOP 2, yuv420p, no B-frames) with
one deliberate difference: SVT-AV1 ``preset`` 12 instead of the encoder's default
(10). Measured on the 2-core dev machine, 480x640, textured moving scene:
preset 10 encodes ~49 frames/s, preset 12 ~93 frames/s for ~14 % larger files.
Two cameras at 30 fps need 60 frames/s, so only preset >= 12 keeps real time there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from robostore.errors import SchemaError

Codec = Literal["libsvtav1", "libx264", "libx265"]

_X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
_PIX_FMTS = {"libsvtav1": ("yuv420p", "yuv420p10le"), "libx264": ("yuv420p", "yuv444p"), "libx265": ("gray12le",)}
_CRF_MAX = {"libsvtav1": 63, "libx264": 51, "libx265": 51}
# Codec name as info.json's ``video.codec`` holds it (what FFmpeg's decoder reports).
_INFO_NAME = {"libsvtav1": "av1", "libx264": "h264", "libx265": "hevc"}


@dataclass(frozen=True)
class VideoOptions:
    """How camera frames are encoded. Immutable; validated on construction.

    Attributes:
        codec: ``"libsvtav1"`` (AV1, lerobot's default) or ``"libx264"`` (H.264);
            ``"libx265"`` (HEVC, 12-bit gray) only for depth cameras (:meth:`depth`).
        crf: constant rate factor (0..63 for AV1, 0..51 for H.264; lower = better).
        gop: keyframe interval in frames. 2 makes random access cheap (lerobot's value).
        pix_fmt: pixel format of the encoded stream.
        preset: speed preset: an int -1..13 for SVT-AV1 (higher = faster), a name
            such as ``"veryfast"`` for x264. None = the encoder's own default.
        threads: encoder threads (0 = let the encoder decide).
        extra: further encoder options passed verbatim to FFmpeg.
    """

    codec: Codec = "libsvtav1"
    crf: int = 30
    gop: int = 2
    pix_fmt: str = "yuv420p"
    preset: int | str | None = 12
    threads: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in _CRF_MAX:
            raise SchemaError(f"video codec {self.codec!r} is not supported; use one of {sorted(_CRF_MAX)}")
        if not isinstance(self.crf, int) or not 0 <= self.crf <= _CRF_MAX[self.codec]:
            raise SchemaError(f"crf={self.crf!r} out of range 0..{_CRF_MAX[self.codec]} for {self.codec}")
        if not isinstance(self.gop, int) or self.gop < 1:
            raise SchemaError(f"gop={self.gop!r} must be an int >= 1")
        if self.pix_fmt not in _PIX_FMTS[self.codec]:
            raise SchemaError(
                f"pix_fmt={self.pix_fmt!r} not supported by {self.codec}; use one of {_PIX_FMTS[self.codec]}"
            )
        if not isinstance(self.threads, int) or self.threads < 0:
            raise SchemaError(f"threads={self.threads!r} must be an int >= 0")
        if self.preset is not None:
            if self.codec == "libsvtav1" and not (
                isinstance(self.preset, int) and not isinstance(self.preset, bool) and -1 <= self.preset <= 13
            ):
                raise SchemaError(f"preset={self.preset!r}: libsvtav1 presets are ints -1..13")
            if self.codec in ("libx264", "libx265") and self.preset not in _X264_PRESETS:
                raise SchemaError(f"preset={self.preset!r}: {self.codec} presets are {_X264_PRESETS}")

    @classmethod
    def h264(cls, crf: int = 23, preset: str = "veryfast", **kw: Any) -> VideoOptions:
        """H.264 (libx264) settings: larger files, much faster to encode and decode."""
        return cls(codec="libx264", crf=crf, preset=preset, **kw)

    @classmethod
    def depth(cls) -> VideoOptions:
        """Depth cameras, as lerobot 0.6 encodes them: lossless 12-bit HEVC (``gray12le``),
        GOP 2; without B-frames here, so that episodes concatenate by stream copy."""
        return cls(
            codec="libx265",
            pix_fmt="gray12le",
            preset=None,
            extra={"x265-params": "lossless=1:bframes=0:log-level=error"},
        )

    def with_(self, **changes: Any) -> VideoOptions:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    @property
    def info_codec(self) -> str:
        """The codec name for info.json's ``video.codec`` (``av1`` / ``h264``)."""
        return _INFO_NAME[self.codec]

    def ffmpeg_options(self) -> dict[str, str]:
        """Encoder options as FFmpeg's AVOptions (strings)."""
        opts = {"g": str(self.gop), "crf": str(self.crf)}
        if self.preset is not None:
            opts["preset"] = str(self.preset)
        if self.codec == "libx264":
            # No B-frames: pts == dts, so segments can be concatenated by stream copy
            # and every decoded frame maps to one packet (as lerobot's files).
            opts["bf"] = "0"
        opts.update(self.extra)
        return opts
