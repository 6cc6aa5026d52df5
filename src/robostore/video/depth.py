"""Depth-map cameras as lerobot 0.6 stores them: 12-bit codes in HEVC ``gray12le`` video.

A depth feature is a ``video`` feature of shape ``[H, W, 1]`` whose ``info`` says
``is_depth_map: true``. Each depth value (millimetres for integer input, metres for
float input, recorded as ``info.depth_unit``) is mapped to a code in ``0..4095``,
logarithmically by default, with the parameters ``video.depth_min`` / ``video.depth_max``
/ ``video.shift`` (metres) and ``video.use_log`` stored in ``info``. Readers get the
codes back and map them to float32 millimetres.

Reading: decoding a code to millimetres is a pure function of the 12-bit code, so it
is a lookup in a 4096-entry table computed once per feature, in float32 with the
operations in lerobot's order (multiply, add, exp, subtract, clamp, x1000, round half
to even, clamp to uint16) on torch's kernels — equal, value for value, to lerobot's
``dequantize_depth``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from robostore.errors import SchemaError

QUANT_BITS = 12
QMAX = (1 << QUANT_BITS) - 1
#: Pixel format of depth video streams.
PIX_FMT = "gray12le"
#: Codec lerobot 0.6 writes depth with (HEVC Main 12, lossless x265).
CODEC = "hevc"
ENCODER = "libx265"
ENCODER_OPTIONS = {"x265-params": "lossless=1"}

DEFAULT_MIN_M = 0.01
DEFAULT_MAX_M = 10.0
DEFAULT_SHIFT_M = 3.5
DEFAULT_USE_LOG = True
METRE, MILLIMETRE = "m", "mm"
MM_PER_METRE = 1000.0
_UINT16_MAX = 65535


@dataclass(frozen=True)
class DepthCodec:
    """The quantizer of one depth feature (parameters in metres, as in info.json).

    Raises:
        SchemaError: parameters lerobot could not use either (log mode with
            ``depth_min + shift <= 0``, ``depth_max <= depth_min``, non-numbers).
    """

    depth_min: float = DEFAULT_MIN_M
    depth_max: float = DEFAULT_MAX_M
    shift: float = DEFAULT_SHIFT_M
    use_log: bool = DEFAULT_USE_LOG

    def __post_init__(self) -> None:
        values = (self.depth_min, self.depth_max, self.shift)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise SchemaError(
                f"depth parameters must be finite numbers, got min={self.depth_min!r} max={self.depth_max!r} shift={self.shift!r}"
            )
        if not isinstance(self.use_log, bool):
            raise SchemaError(f"video.use_log must be true or false, got {self.use_log!r}")
        if self.depth_max <= self.depth_min:
            raise SchemaError(f"video.depth_max={self.depth_max} must exceed video.depth_min={self.depth_min}")
        if self.use_log and self.depth_min + self.shift <= 0:
            raise SchemaError(f"logarithmic depth needs depth_min + shift > 0, got {self.depth_min} + {self.shift}")

    @classmethod
    def from_info(cls, info: Mapping[str, Any] | None, where: str = "") -> DepthCodec:
        """The codec of a feature's ``info`` (missing keys take lerobot's defaults)."""
        info = info or {}
        kwargs: dict[str, Any] = {}
        for name in ("depth_min", "depth_max", "shift", "use_log"):
            value = info.get(f"video.{name}")
            if value is not None:
                kwargs[name] = float(value) if isinstance(value, int) and not isinstance(value, bool) else value
        try:
            return cls(**kwargs)
        except SchemaError as exc:
            raise SchemaError(f"{where}: {exc}" if where else str(exc)) from None

    def info_entries(self) -> dict[str, Any]:
        """The ``video.*`` entries lerobot 0.6 writes into the feature's ``info``."""
        return {
            "video.depth_min": self.depth_min,
            "video.depth_max": self.depth_max,
            "video.shift": self.shift,
            "video.use_log": self.use_log,
        }

    # ------------------------------------------------------------------ reading
    @cached_property
    def millimetres_table(self) -> np.ndarray:
        """float32 [4096]: the millimetres each code decodes to.

        Computed with torch's float32 kernels when torch is installed, as lerobot
        computes it: numpy's float32 ``exp`` differs from torch's in the last bit for a
        few codes (2 of 4096 at lerobot's defaults), which can move a value by 1 mm.
        """
        scale, offset = self._scale_offset()
        try:
            import torch
        except ImportError:
            return self._numpy_table(scale, offset)
        buf = torch.arange(QMAX + 1, dtype=torch.float32).mul_(scale).add_(offset)
        if self.use_log:
            buf.exp_().sub_(self.shift)
        buf.clamp_(self.depth_min, self.depth_max).mul_(MM_PER_METRE).round_().clamp_(0.0, _UINT16_MAX)
        return buf.numpy()

    def _numpy_table(self, scale: float, offset: float) -> np.ndarray:
        buf = np.arange(QMAX + 1, dtype=np.float32) * np.float32(scale)
        buf += np.float32(offset)
        if self.use_log:
            np.exp(buf, out=buf)
            buf -= np.float32(self.shift)
        np.clip(buf, np.float32(self.depth_min), np.float32(self.depth_max), out=buf)
        buf *= np.float32(MM_PER_METRE)
        np.rint(buf, out=buf)
        np.clip(buf, np.float32(0), np.float32(_UINT16_MAX), out=buf)
        return buf

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """float32 millimetres of uint16 ``codes`` (any shape); codes above 4095 count as 4095."""
        return np.take(self.millimetres_table, codes, mode="clip")

    # ------------------------------------------------------------------ writing
    def encode(self, depth: np.ndarray, unit: str) -> np.ndarray:
        """uint16 codes (0..4095) of ``depth`` in ``unit`` (``"mm"`` or ``"m"``), as
        lerobot's ``quantize_depth`` computes them (float32, in the input's unit)."""
        if unit not in (METRE, MILLIMETRE):
            raise SchemaError(f"depth unit must be 'm' or 'mm', got {unit!r}")
        factor = 1.0 if unit == METRE else MM_PER_METRE
        values = depth.astype(np.float32)
        lo, hi, shift = (np.float32(v * factor) for v in (self.depth_min, self.depth_max, self.shift))
        if self.use_log:
            log_min, log_max = math.log(float(lo + shift)), math.log(float(hi + shift))
            norm = (np.log(values + shift) - log_min) / (log_max - log_min)
        else:
            norm = (values - lo) / (hi - lo)
        codes: np.ndarray = np.rint(norm * QMAX).clip(0, QMAX).astype(np.uint16)
        return codes

    def _scale_offset(self) -> tuple[float, float]:
        if self.use_log:
            log_min, log_max = math.log(self.depth_min + self.shift), math.log(self.depth_max + self.shift)
            return (log_max - log_min) / QMAX, log_min
        return (self.depth_max - self.depth_min) / QMAX, self.depth_min


def unit_of(dtype: np.dtype) -> str:
    """The unit lerobot assumes for raw depth frames: metres for floats, millimetres otherwise."""
    return METRE if np.issubdtype(dtype, np.floating) else MILLIMETRE
