"""Feature statistics: per-episode computation and count-weighted aggregation.

lerobot keeps, per feature, ``min max mean std count q01 q10 q50 q90 q99``. Across
episodes, mean and std are count-weighted (std through the pooled variance), min/max
are taken element-wise, and quantiles are the count-weighted average of the
per-episode quantiles (what lerobot does; not exact quantiles of the union).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robostore.schema import STAT_NAMES, DatasetStats, FeatureStats

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def compute_stats(values: np.ndarray, *, camera: bool = False) -> dict[str, np.ndarray]:
    """Statistics of one feature over one episode.

    ``values`` is [frames, ...]. For cameras pass float frames [frames, C, H, W] in
    [0, 1]: statistics are per channel, shaped [C, 1, 1] as lerobot stores them.
    """
    values = np.asarray(values)
    if camera:
        axes: tuple[int, ...] = (0, 2, 3)
        keep = True
    else:
        axes = (0,)
        keep = False
        if values.ndim == 1:
            values = values[:, None]
    as_float = values.astype(np.float64)
    out: dict[str, np.ndarray] = {
        "min": np.min(values, axis=axes, keepdims=keep),
        "max": np.max(values, axis=axes, keepdims=keep),
        "mean": np.mean(as_float, axis=axes, keepdims=keep),
        "std": np.std(as_float, axis=axes, keepdims=keep),
        "count": np.array([values.shape[0]], dtype=np.int64),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(as_float, q, axis=axes, keepdims=keep)
    if camera:
        out = {k: (v[0] if k != "count" else v) for k, v in out.items()}
    return out


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
            return np.stack([np.asarray(p[name]) for p in parts])

        def weighted(name: str) -> np.ndarray:
            arr = stack(name).astype(np.float64)
            return np.tensordot(weights, arr, axes=1)

        agg: dict[str, Any] = {}
        if all("min" in p for p in parts):
            agg["min"] = stack("min").min(axis=0)
            agg["max"] = stack("max").max(axis=0)
        if all("mean" in p for p in parts):
            mean = weighted("mean")
            agg["mean"] = mean
            if all("std" in p for p in parts):
                means = stack("mean").astype(np.float64)
                var = stack("std").astype(np.float64) ** 2 + (means - mean) ** 2
                agg["std"] = np.sqrt(np.tensordot(weights, var, axes=1))
        agg["count"] = np.array([int(total)], dtype=np.int64)
        for name in QUANTILES:
            if all(name in p for p in parts):
                agg[name] = weighted(name)
        features[key] = FeatureStats(**{k: _to_list(agg[k]) for k in STAT_NAMES if k in agg})
    return DatasetStats(features=features)


def _to_list(value: Any) -> list[Any]:
    arr = np.asarray(value)
    return arr.tolist() if arr.ndim else [arr.item()]
