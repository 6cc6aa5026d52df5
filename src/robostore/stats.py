"""Feature statistics: per-episode computation and count-weighted aggregation.

Per episode, :func:`compute_stats` reproduces the ``stats/...`` columns lerobot writes
(checked value for value against the lerobot-written fixtures in tests/data).

lerobot keeps, per feature, ``min max mean std count q01 q10 q50 q90 q99``. Across
episodes, mean and std are count-weighted (std through the pooled variance), min/max
are taken element-wise, and quantiles are the count-weighted average of the
per-episode quantiles (what lerobot does; not exact quantiles of the union).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from robostore.schema import STAT_NAMES, DatasetStats, FeatureStats
from robostore.schema.episodes import STATS_PREFIX

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
#: Bins of the histogram the per-episode quantiles are read from (lerobot's value).
HISTOGRAM_BINS = 5000
#: Camera frames per episode that stats are computed from, at least/at most.
MIN_CAMERA_SAMPLES = 100
MAX_CAMERA_SAMPLES = 10_000


def compute_stats(values: np.ndarray, *, camera: bool = False, depth: bool = False) -> dict[str, np.ndarray]:
    """Statistics of one feature over one episode, computed as lerobot computes them.

    ``values`` is [frames, ...] in the feature's own dtype (float32 features give
    float32-precision mean/std, as in lerobot's files). For cameras pass the uint8
    frames [frames, C, H, W] chosen by :func:`camera_sample_indices` and
    :func:`downsample_for_stats`: statistics are per channel, scaled to [0, 1] and
    shaped [C, 1, 1]; ``count`` is the number of frames given. Depth maps (``depth``:
    [frames, 1, H, W] in their depth unit) are not scaled, as lerobot 0.6 keeps them.

    Quantiles come from a histogram of :data:`HISTOGRAM_BINS` bins between min and
    max with linear interpolation inside a bin (lerobot's estimate, not exact order
    statistics). One deliberate difference: lerobot 0.4 squares uint8 pixels without
    widening them, so its camera ``std`` wraps around and is written as 0; robostore
    writes the true standard deviation.
    """
    arr = np.asarray(values)
    frames = arr.shape[0]
    if camera:
        channels = arr.shape[1]
        flat = arr.transpose(0, 2, 3, 1).reshape(-1, channels)
        shape: tuple[int, ...] = (channels, 1, 1)
    else:
        flat = arr.reshape(frames, -1)
        shape = arr.shape[1:] or (1,)
    out = _column_stats(flat)
    out = {k: v.reshape(shape) for k, v in out.items()}
    if camera and not depth:
        out = {k: v / 255.0 for k, v in out.items()}
    out["count"] = np.array([frames], dtype=np.int64)
    return out


def _column_stats(flat: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/quantiles of each column of a [rows, columns] array.

    Computed in the data's own precision, as lerobot does. Floats near their dtype's
    limits (a sensor's ``FLT_MAX`` "no reading" sentinel, say) overflow the sums, the
    squares and the histogram range there; then the stats are computed again from the
    values scaled by a power of two into [-2, 2] in float64 (see
    :func:`_scaled_column_stats`), so finite data always gives finite stats.
    """
    if flat.dtype.kind == "f" and flat.size:
        top, limit = float(np.abs(flat).max()), float(np.finfo(flat.dtype).max)
        if top * flat.shape[0] * 2 >= limit or top * top >= limit:
            return _scaled_column_stats(flat)
    return _native_column_stats(flat)


def _scaled_column_stats(flat: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`_native_column_stats` of ``flat / s`` in float64, times ``s``, cast back.

    ``s`` is a power of two (exact scaling) with every ``|value| / s < 2``; quantiles are
    clipped to [min, max], which the histogram's edge padding could push past.
    """
    scale = _power_of_two_above([flat])
    scaled = _native_column_stats(flat.astype(np.float64) / scale)
    mn, mx = flat.min(axis=0), flat.max(axis=0)
    out = {"min": mn, "max": mx}
    with np.errstate(over="ignore"):
        for name, value in scaled.items():
            if name not in out:
                value = value * scale
                value = np.minimum(value, np.finfo(flat.dtype).max) if name == "std" else np.clip(value, mn, mx)
                out[name] = value.astype(flat.dtype)
    return out


def _native_column_stats(flat: np.ndarray) -> dict[str, np.ndarray]:
    mn, mx = flat.min(axis=0), flat.max(axis=0)
    mean = np.mean(flat, axis=0)
    if flat.shape[0] < 2:
        out = {"min": mn, "max": mx, "mean": mean, "std": np.std(flat, axis=0)}
        out.update({name: mean.copy() for name in QUANTILES})
        return out
    # Small integers are widened before squaring; floats keep their precision.
    squares = flat.astype(np.float64) ** 2 if flat.dtype.kind in "bui" else flat**2
    variance = np.mean(squares, axis=0) - mean**2
    out = {"min": mn, "max": mx, "mean": mean, "std": np.sqrt(np.maximum(0, variance))}
    columns = [_histogram_quantiles(flat[:, i], mn[i], mx[i]) for i in range(flat.shape[1])]
    for j, name in enumerate(QUANTILES):
        out[name] = np.array([col[j] for col in columns])
    return out


def _histogram_quantiles(column: np.ndarray, lo: Any, hi: Any) -> list[float]:
    # The edges keep the column's dtype (float32 data gives float32 edges), as lerobot's.
    edges = np.linspace(lo - 1e-10, hi + 1e-10, HISTOGRAM_BINS + 1)
    if column.dtype == np.bool_:
        column = column.view(np.uint8)
    cumulative = np.cumsum(np.histogram(column, bins=edges)[0].astype(np.float64))
    out = []
    for q in QUANTILES.values():
        target = q * len(column)
        idx = int(np.searchsorted(cumulative, target))
        if idx == 0:
            out.append(edges[0])
        elif idx >= len(cumulative):
            out.append(edges[-1])
        else:
            before = cumulative[idx - 1]
            in_bin = cumulative[idx] - before
            if in_bin == 0:
                out.append(edges[idx])
            else:
                out.append(edges[idx] + (target - before) / in_bin * (edges[idx + 1] - edges[idx]))
    return out


def camera_sample_indices(frames: int) -> np.ndarray:
    """Which of an episode's ``frames`` camera frames stats are computed from.

    All frames up to 100, then ``frames ** 0.75`` of them (at most 10 000), evenly
    spaced, first and last included — lerobot's choice.
    """
    low = min(MIN_CAMERA_SAMPLES, frames)
    n = max(low, min(int(frames**0.75), MAX_CAMERA_SAMPLES))
    return np.round(np.linspace(0, frames - 1, n)).astype(int)


def downsample_for_stats(frame: np.ndarray, target: int = 150, threshold: int = 300) -> np.ndarray:
    """Stride-subsample an [H, W, C] frame whose larger side is >= ``threshold``.

    The stride is ``larger side // target`` (lerobot's rule), so 480x640 becomes 120x160.
    """
    height, width = frame.shape[:2]
    if max(height, width) < threshold:
        return frame
    step = int(width / target) if width > height else int(height / target)
    return frame[::step, ::step]


def aggregate_stats(per_episode: Sequence[Mapping[str, Mapping[str, Any]]]) -> DatasetStats:
    """Combine per-episode stats (feature → stat → nested list/array) into dataset stats."""
    features: dict[str, FeatureStats] = {}
    keys = list(dict.fromkeys(k for ep in per_episode for k in ep))
    for key in keys:
        parts = [ep[key] for ep in per_episode if key in ep and ep[key].get("count") is not None]
        if not parts:
            continue
        counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
        total = counts.sum()
        weights = counts / total if total else np.full(len(parts), 1 / len(parts))

        def stack(name: str) -> np.ndarray:
            return np.stack([np.asarray(p[name]) for p in parts])  # noqa: B023 - called in this iteration only

        # Sums run on values scaled by a power of two into [-2, 2] (exact), so stats near
        # float64's limits neither overflow nor lose precision; results are scaled back.
        scale = _power_of_two_above(
            [stack(name) for name in ("mean", "std", *QUANTILES) if all(name in p for p in parts)]
        )

        def weighted(name: str) -> np.ndarray:
            arr = stack(name).astype(np.float64) / scale  # noqa: B023 - called in this iteration only
            return np.tensordot(weights, arr, axes=1)  # noqa: B023 - called in this iteration only

        agg: dict[str, Any] = {}
        if all("min" in p for p in parts):
            agg["min"] = stack("min").min(axis=0)
            agg["max"] = stack("max").max(axis=0)
        if all("mean" in p for p in parts):
            mean = weighted("mean")
            agg["mean"] = mean * scale
            if all("std" in p for p in parts):
                means = stack("mean").astype(np.float64) / scale
                var = (stack("std").astype(np.float64) / scale) ** 2 + (means - mean) ** 2
                agg["std"] = np.minimum(np.sqrt(np.tensordot(weights, var, axes=1)) * scale, np.finfo(np.float64).max)
        agg["count"] = np.array([int(total)], dtype=np.int64)
        for name in QUANTILES:
            if all(name in p for p in parts):
                agg[name] = weighted(name) * scale
        features[key] = FeatureStats(**{k: _to_list(agg[k]) for k in STAT_NAMES if k in agg})
    return DatasetStats(features=features)


def add_episode_stats(running: DatasetStats | None, episode: Mapping[str, Mapping[str, Any]]) -> DatasetStats:
    """Dataset stats after one more episode: ``running`` (the stats so far) folded with ``episode``'s.

    The recorder's running stats, O(features) per episode; equal (to rounding) to
    :func:`aggregate_stats` over every episode at once.
    """
    return aggregate_stats([running.to_json_dict(), episode] if running is not None else [episode])


def _power_of_two_above(arrays: Sequence[np.ndarray]) -> float:
    """A power of two ``s`` with ``|x| / s < 2`` for every finite x in ``arrays`` (1.0 when small)."""
    top = max((float(np.abs(a.astype(np.float64)).max(initial=0.0)) for a in arrays), default=0.0)
    if not np.isfinite(top) or top < 2.0:
        return 1.0
    return float(np.ldexp(1.0, np.frexp(top)[1] - 1))  # top = m * 2**e with 0.5 <= m < 1


def _to_list(value: Any) -> list[Any]:
    arr = np.asarray(value)
    return arr.tolist() if arr.ndim else [arr.item()]


def episode_stats_dicts(table: pa.Table) -> list[dict[str, dict[str, Any]]]:
    """The ``stats/<feature>/<stat>`` columns as one feature → stat → array dict per episode."""
    columns = [c for c in table.column_names if c.startswith(STATS_PREFIX)]
    values = {c: table.column(c).to_pylist() for c in columns}
    out: list[dict[str, dict[str, Any]]] = []
    for row in range(table.num_rows):
        episode: dict[str, dict[str, Any]] = {}
        for column in columns:
            feature, stat = column[len(STATS_PREFIX) :].rsplit("/", 1)
            if values[column][row] is not None:
                episode.setdefault(feature, {})[stat] = np.asarray(values[column][row])
        out.append(episode)
    return out
