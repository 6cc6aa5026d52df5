"""Feature descriptions: one entry of ``info.json["features"]``."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

#: dtypes a feature may have: numpy numeric types plus lerobot's own kinds.
NUMERIC_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}
)
#: lerobot 0.6's annotation columns (``language_persistent`` / ``language_events``):
#: per frame, a list of message rows (see :mod:`robostore.schema.language`).
LANGUAGE_DTYPE = "language"
DTYPES = NUMERIC_DTYPES | {"string", "image", "video", LANGUAGE_DTYPE}
#: Axis names that mark the channel axis of a camera shape.
CHANNEL_NAMES = frozenset({"channel", "channels", "c"})
#: Channel counts a camera may have (grey, RGB, RGBA).
CHANNEL_COUNTS = frozenset({1, 3, 4})
#: Largest size one feature may claim per frame. info.json comes from strangers: a
#: claim beyond this is refused rather than trusted with an allocation.
MAX_FRAME_BYTES = 1 << 30


class Feature(BaseModel):
    """One feature: dtype, shape, optional names and (for videos) codec info.

    Unknown keys are kept so a round trip through robostore loses nothing.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    dtype: str
    shape: tuple[int, ...]
    names: list[Any] | dict[str, Any] | None = None
    info: dict[str, Any] | None = None

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}; expected one of {sorted(DTYPES)}")
        return value

    @field_validator("shape", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, tuple) and any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            raise ValueError(f"shape entries must be positive integers, got {list(value)}")
        return value

    def model_post_init(self, __context: Any) -> None:
        if self.is_camera and len(self.shape) != 3:
            raise ValueError(
                f"{self.dtype} features have shape [height, width, channels] (or [channels, height, width]), "
                f"got {list(self.shape)}"
            )
        itemsize = (
            1 if self.is_camera or self.dtype in ("string", "bool", LANGUAGE_DTYPE) else np.dtype(self.dtype).itemsize
        )
        claimed = int(np.prod(self.shape, dtype=object)) * itemsize
        if claimed > MAX_FRAME_BYTES:
            raise ValueError(
                f"shape {list(self.shape)} of dtype {self.dtype} claims {claimed / 2**30:.1f} GiB per frame "
                f"(limit {MAX_FRAME_BYTES / 2**30:.0f} GiB); the metadata is damaged or hostile"
            )

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    @property
    def is_image(self) -> bool:
        return self.dtype == "image"

    @property
    def is_camera(self) -> bool:
        """Video or image: a picture per frame."""
        return self.dtype in ("video", "image")

    @property
    def is_language(self) -> bool:
        """A lerobot 0.6 language annotation column (a list of message rows per frame)."""
        return self.dtype == LANGUAGE_DTYPE

    @property
    def is_depth(self) -> bool:
        """A depth-map camera (lerobot 0.6: ``info.is_depth_map``; older writers put
        ``video.is_depth_map`` in ``info`` or in a ``video_info`` entry)."""
        if not self.is_camera:
            return False
        info = self.info or {}
        video_info = getattr(self, "video_info", None)
        video_info = video_info if isinstance(video_info, dict) else {}
        return bool(info.get("is_depth_map") or info.get("video.is_depth_map") or video_info.get("video.is_depth_map"))

    @property
    def channels_first(self) -> bool:
        """A camera declared ``[channels, height, width]``, as lerobot's v2.1→v3.0 converter
        leaves many older datasets (lerobot writes ``[height, width, channels]``).

        The axis names decide (``"channel"``/``"channels"`` first or last); without them,
        a first axis of 1, 3 or 4 and a last axis of another size mean channel-first.
        Either way frames are read as lerobot returns them: ``[channels, height, width]``.
        """
        if not self.is_camera:
            return False
        names = self.names if isinstance(self.names, list) and len(self.names) == 3 else None
        if names is not None and all(isinstance(n, str) for n in names):
            if names[0].lower() in CHANNEL_NAMES:
                return True
            if names[2].lower() in CHANNEL_NAMES:
                return False
        return self.shape[0] in CHANNEL_COUNTS and self.shape[2] not in CHANNEL_COUNTS

    @property
    def frame_size(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of a camera feature, whichever layout it declares."""
        if not self.is_camera:
            raise ValueError(f"a {self.dtype} feature has no frame size")
        if self.channels_first:
            channels, height, width = self.shape
        else:
            height, width, channels = self.shape
        return height, width, channels

    def to_json(self) -> dict[str, Any]:
        """The dict written to info.json (``info`` only when present)."""
        out = self.model_dump(mode="json")
        out["shape"] = list(self.shape)
        if out.get("info") is None:
            out.pop("info", None)
        return out


def default_features() -> dict[str, Feature]:
    """The five features every LeRobot v3.0 dataset carries."""
    return {
        "timestamp": Feature(dtype="float32", shape=(1,), names=None),
        "frame_index": Feature(dtype="int64", shape=(1,), names=None),
        "episode_index": Feature(dtype="int64", shape=(1,), names=None),
        "index": Feature(dtype="int64", shape=(1,), names=None),
        "task_index": Feature(dtype="int64", shape=(1,), names=None),
    }


DEFAULT_FEATURE_KEYS = frozenset(default_features())
