"""The JSON documents the viewer's pages are built from: dataset, a page of episodes, one episode.

Everything comes through :class:`DatasetMeta` and the tabular reader, so any dataset
robostore opens (any backend, any layout version DatasetMeta reads) can be viewed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow.compute as pc

from robostore.errors import SchemaError
from robostore.meta import DatasetMeta
from robostore.schema import Feature
from robostore.schema.features import DEFAULT_FEATURE_KEYS, NUMERIC_DTYPES
from robostore.summary import dataset_summary
from robostore.torch.tabular import EpisodeIndex, TabularData

#: Episodes per page of the dataset page's list.
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def dataset_payload(meta: DatasetMeta) -> dict[str, Any]:
    """``robostore info``'s summary plus the stats table and the camera and plot keys."""
    summary = dataset_summary(meta)
    stats: dict[str, dict[str, Any]] = {}
    if meta.stats is not None:
        for key, values in meta.stats.to_json_dict().items():
            stats[key] = {name: _finite(v) for name, v in values.items() if name in ("mean", "std", "min", "max")}
    return {
        **summary,
        "stats": stats,
        "video_keys": meta.video_keys,
        "image_keys": meta.image_keys,
        "plotted": list(plotted_features(meta)),
    }


def episodes_page(
    meta: DatasetMeta, offset: int = 0, limit: int = PAGE_SIZE, task: str | None = None
) -> dict[str, Any]:
    """Episodes ``offset..offset+limit`` (only those with ``task`` when given): index, length, tasks."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise SchemaError(f"offset must be >= 0 and limit 1..{MAX_PAGE_SIZE}, got offset={offset} limit={limit}")
    table = meta.episodes.select(["episode_index", "length", "tasks"])
    if task:
        tasks = table.column("tasks").combine_chunks()
        parents = pc.list_parent_indices(tasks)
        table = table.take(pc.unique(pc.filter(parents, pc.equal(pc.list_flatten(tasks), task))))
    rows = table.slice(offset, limit).to_pylist()
    return {
        "total": table.num_rows,
        "offset": offset,
        "limit": limit,
        "episodes": [
            {"episode_index": r["episode_index"], "length": r["length"], "tasks": list(r["tasks"] or [])} for r in rows
        ],
    }


def plotted_features(meta: DatasetMeta) -> dict[str, Feature]:
    """Numeric features of one value or one vector per frame, other than the bookkeeping five."""
    return {
        key: f
        for key, f in meta.features.items()
        if key not in DEFAULT_FEATURE_KEYS and f.dtype in NUMERIC_DTYPES and len(f.shape) == 1
    }


def series_labels(key: str, feature: Feature) -> list[str]:
    """One label per value of a vector feature: its ``names`` when they fit, else ``key[i]``."""
    width = feature.shape[0]
    names: Any = feature.names
    if isinstance(names, dict) and len(names) == 1:
        names = next(iter(names.values()))
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return list(names)
    return [key] if width == 1 else [f"{key}[{i}]" for i in range(width)]


def load_episode(meta: DatasetMeta, episode_index: int) -> TabularData:
    """The non-camera columns of one episode, read in ranged requests (never a whole file)."""
    features = {k: f for k, f in meta.features.items() if not f.is_camera}
    index = EpisodeIndex.from_meta(meta, [episode_index])
    return TabularData.load(meta, meta.store, index, features, ranged=True)


def episode_payload(meta: DatasetMeta, episode_index: int) -> dict[str, Any]:
    """What the episode page shows first, from the episodes table alone: cameras, tasks, neighbours."""
    episode = meta.episode(episode_index)
    indices = meta.episode_indices
    pos = int(np.searchsorted(indices, episode_index))
    return {
        "episode_index": episode_index,
        "length": episode.length,
        "tasks": episode.tasks,
        "fps": meta.fps,
        "videos": [
            {
                "key": key,
                "url": f"/clip/{episode_index}/{key}",
                "path": span.path,
                "from_timestamp": span.from_timestamp,
                "to_timestamp": span.to_timestamp,
            }
            for key, span in episode.videos.items()
        ],
        "images": [{"key": key, "url": f"/image/{episode_index}/{key}/"} for key in meta.image_keys],
        "previous": int(indices[pos - 1]) if pos > 0 else None,
        "next": int(indices[pos + 1]) if pos + 1 < len(indices) else None,
    }


def episode_plots(meta: DatasetMeta, data: TabularData) -> dict[str, Any]:
    """The episode's time axis (seconds from its first frame) and one plot per plotted feature."""
    timestamps = data.columns["timestamp"].astype(np.float64)
    relative = (timestamps - timestamps[0]) if len(timestamps) else timestamps
    plots = []
    for key, feature in plotted_features(meta).items():
        values = data.columns[key].reshape(len(timestamps), -1)
        if values.dtype == np.bool_:
            values = values.astype(np.int8)  # plotted as 0/1
        plots.append(
            {
                "key": key,
                "labels": series_labels(key, feature),
                "series": [[_finite(v) for v in values[:, i].tolist()] for i in range(values.shape[1])],
            }
        )
    return {"time": relative.tolist(), "plots": plots}


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (lists are converted element-wise)."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
