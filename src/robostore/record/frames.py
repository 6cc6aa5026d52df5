"""Checking a frame against the dataset's features, and normalising its values.

``add_frame`` takes numpy arrays, torch tensors, numpy/Python scalars and (for cameras)
PIL images. Everything is checked before anything is recorded, so a bad frame leaves
the episode untouched; the :class:`SchemaError` names the feature, what was expected
and what came.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from robostore.errors import SchemaError
from robostore.schema import DEFAULT_FEATURE_KEYS, Feature, language
from robostore.video.depth import METRE, MILLIMETRE

TASK_KEY = "task"


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"ndarray {value.dtype} {list(value.shape)}"
    if _is_torch(value):
        return f"torch.Tensor {str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
    if hasattr(value, "mode") and hasattr(value, "size") and type(value).__module__.startswith("PIL"):
        return f"PIL image {value.mode} {value.size[0]}x{value.size[1]} (width x height)"
    text = repr(value)
    return f"{type(value).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL") and hasattr(value, "getbands")


class FrameSchema:
    """The user-supplied part of a frame: every non-default feature plus ``task``.

    Args:
        features: the dataset's features (the five default ones are filled in by the
            recorder and may not be supplied).
        where: prefix of error messages (the dataset URL).
    """

    def __init__(self, features: Mapping[str, Feature], where: str) -> None:
        self.features = {k: f for k, f in features.items() if k not in DEFAULT_FEATURE_KEYS}
        self.where = where

    def check(self, frame: Mapping[str, Any], context: str) -> tuple[dict[str, Any], str]:
        """Validate ``frame``; return ``(values, task)`` with values normalised.

        Numeric values become arrays of the feature's dtype and shape (copied: the
        caller may reuse its buffers), camera values uint8 [H, W, C] arrays, strings
        stay strings. ``context`` (e.g. ``"episode 3, frame 12"``) goes into errors.

        Raises:
            SchemaError: a feature is missing or unknown, or a value has the wrong
                type, dtype or shape, or holds NaN/inf.
        """
        if not isinstance(frame, Mapping):
            raise SchemaError(f"{self.where}: {context}: a frame is a dict of feature -> value, got {_describe(frame)}")
        missing = [k for k, f in self.features.items() if k not in frame and not f.is_language]
        if TASK_KEY not in frame:
            missing.append(TASK_KEY)
        unknown = [k for k in frame if k not in self.features and k != TASK_KEY]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing features {missing}")
            if unknown:
                defaults = [k for k in unknown if k in DEFAULT_FEATURE_KEYS]
                parts.append(
                    f"unknown keys {unknown}" + (f" ({defaults} are filled in by the recorder)" if defaults else "")
                )
            raise SchemaError(
                f"{self.where}: {context}: {'; '.join(parts)}; the frame must have exactly the keys "
                f"{sorted([*self.features, TASK_KEY])}"
            )
        task = frame[TASK_KEY]
        if not isinstance(task, str) or not task:
            raise SchemaError(
                f"{self.where}: {context}: feature 'task': expected a non-empty str, got {_describe(task)}"
            )
        values = {key: self._value(key, feature, frame.get(key), context) for key, feature in self.features.items()}
        return values, task

    # ------------------------------------------------------------------ per kind
    def _fail(self, key: str, context: str, expected: str, value: Any, why: str = "") -> SchemaError:
        return SchemaError(
            f"{self.where}: {context}: feature {key!r}: expected {expected}, got {_describe(value)}"
            + (f" ({why})" if why else "")
        )

    def _value(self, key: str, feature: Feature, value: Any, context: str) -> Any:
        if feature.is_depth:
            return self._depth(key, feature, value, context)
        if feature.is_camera:
            return self._camera(key, feature, value, context)
        if feature.is_language:
            return self._language(key, value, context)
        if feature.dtype == "string":
            if not isinstance(value, str):
                raise self._fail(key, context, "str", value)
            return value
        return self._numeric(key, feature, value, context)

    def _numeric(self, key: str, feature: Feature, value: Any, context: str) -> np.ndarray:
        dtype = np.dtype(feature.dtype)
        shape = tuple(feature.shape)
        expected = f"{feature.dtype} of shape {list(shape)}"
        if _is_torch(value):
            value = value.detach().cpu().numpy()
        if isinstance(value, (bool, int, float)) and not isinstance(value, np.generic):
            # Python scalars carry no dtype: accept them where the kind fits exactly.
            fits = (
                (dtype.kind == "b" and isinstance(value, bool))
                or (dtype.kind in "iu" and isinstance(value, int) and not isinstance(value, bool))
                or (dtype.kind == "f" and not isinstance(value, bool))
            )
            if shape != (1,) or not fits:
                raise self._fail(key, context, expected, value)
            arr = np.array([value], dtype=dtype)
        elif isinstance(value, (np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype != dtype:
                raise self._fail(key, context, expected, value, f"dtype {arr.dtype} is not {dtype}; cast it explicitly")
            if arr.shape != shape and not (shape == (1,) and arr.shape == ()):
                raise self._fail(key, context, expected, value, "wrong shape")
            arr = np.array(arr, copy=True).reshape(shape)
        else:
            raise self._fail(key, context, expected, value, "use a numpy array, a torch tensor or a Python scalar")
        if dtype.kind == "f" and not np.isfinite(arr).all():
            raise self._fail(key, context, "finite values", value, "NaN or inf would poison the dataset's stats")
        return arr

    def _depth(self, key: str, feature: Feature, value: Any, context: str) -> np.ndarray:
        """A depth map as [H, W, 1] in the feature's ``depth_unit``: integers for
        millimetres, floats for metres (lerobot's convention), finite and >= 0."""
        height, width, _ = feature.shape
        unit = (feature.info or {}).get("depth_unit", MILLIMETRE)
        kinds, what = ("f", "floats (metres)") if unit == METRE else ("iu", "integers (millimetres)")
        expected = f"a depth map of {height}x{width} as {what}, shape [H, W], [H, W, 1] or [1, H, W]"
        arr = value.detach().cpu().numpy() if _is_torch(value) else value
        if not isinstance(arr, np.ndarray):
            raise self._fail(key, context, expected, value)
        if arr.dtype.kind not in kinds or arr.dtype.kind == "b":
            raise self._fail(key, context, expected, value, f"depth_unit is {unit!r}")
        if arr.shape not in ((height, width), (height, width, 1), (1, height, width)):
            raise self._fail(key, context, expected, value, "wrong shape")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise self._fail(key, context, "finite depth values", value, "NaN or inf")
        if arr.size and arr.min() < 0:
            raise self._fail(key, context, "depth values >= 0", value)
        return np.array(arr, copy=True).reshape(height, width, 1)

    def _language(self, key: str, value: Any, context: str) -> list[dict[str, Any]]:
        """The frame's language rows (None or missing: none), checked against lerobot's
        row fields; copied so the caller may reuse its objects."""
        if value is None:
            return []
        fields = language.fields_of(key)
        expected = f"a list of dicts with fields {list(fields)} ('role' a str{', timestamp a number' if 'timestamp' in fields else ''})"
        if not isinstance(value, (list, tuple)):
            raise self._fail(key, context, expected, value)
        rows = []
        for row in value:
            if not isinstance(row, Mapping) or not isinstance(row.get("role"), str):
                raise self._fail(key, context, expected, row)
            unknown = set(row) - set(fields)
            if unknown:
                raise self._fail(key, context, expected, row, f"unknown fields {sorted(unknown)}")
            if "timestamp" in fields:
                ts = row.get("timestamp")
                if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not np.isfinite(ts):
                    raise self._fail(key, context, expected, row, "timestamp must be a finite number of seconds")
            for name in ("content", "style", "camera"):
                if row.get(name) is not None and not isinstance(row[name], str):
                    raise self._fail(key, context, expected, row, f"{name!r} must be a str or None")
            calls = row.get("tool_calls")
            if calls is not None and not isinstance(calls, (list, tuple)):
                raise self._fail(key, context, expected, row, "'tool_calls' must be a list or None")
            try:
                rows.append(json.loads(json.dumps(dict(row))))  # a deep copy, and JSON-able
            except (TypeError, ValueError) as exc:
                raise self._fail(key, context, expected, row, f"not JSON-serialisable: {exc}") from None
        return rows

    def _camera(self, key: str, feature: Feature, value: Any, context: str) -> np.ndarray:
        height, width, channels = feature.shape
        expected = f"an RGB image of {height}x{width} (uint8 [H, W, C] or [C, H, W], float in [0, 1], or PIL)"
        if _is_pil(value):
            if value.mode != "RGB" or channels != 3:
                raise self._fail(key, context, expected, value, "convert it with image.convert('RGB')")
            arr = np.asarray(value)
        elif _is_torch(value):
            arr = value.detach().cpu().numpy()
        elif isinstance(value, np.ndarray):
            arr = value
        else:
            raise self._fail(key, context, expected, value)
        if arr.shape == (height, width, channels):
            pass
        elif arr.shape == (channels, height, width):
            arr = arr.transpose(1, 2, 0)
        else:
            raise self._fail(
                key,
                context,
                expected,
                value,
                f"shape must be {[height, width, channels]} or {[channels, height, width]}",
            )
        if arr.dtype == np.uint8:
            return np.ascontiguousarray(arr)
        if arr.dtype.kind != "f":
            raise self._fail(key, context, expected, value, "pixels must be uint8 or float")
        lo, hi = float(arr.min()), float(arr.max())
        if not (lo >= 0.0 and hi <= 1.0):
            raise self._fail(key, context, expected, value, f"float pixels must lie in [0, 1], found [{lo:g}, {hi:g}]")
        # Truncation, not rounding: lerobot's (x * 255).astype(uint8).
        return (arr * 255).astype(np.uint8)
