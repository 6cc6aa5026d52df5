"""What ``robostore info`` and the web viewer show about a dataset, as one dict."""

from __future__ import annotations

from typing import Any

from robostore.layout import DATA_DIR, META_DIR, VIDEOS_DIR
from robostore.meta import DatasetMeta


def dataset_summary(meta: DatasetMeta, with_files: bool = True) -> dict[str, Any]:
    """What ``robostore info`` shows, as a dict."""
    info = meta.info
    summary: dict[str, Any] = {
        "url": meta.url,
        "codebase_version": info.codebase_version,
        "robot_type": info.robot_type,
        "fps": info.fps,
        "episodes": info.total_episodes,
        "frames": info.total_frames,
        "duration_s": round(info.total_frames / info.fps, 3),
        "features": {
            key: {"dtype": f.dtype, "shape": list(f.shape), "names": f.names} for key, f in info.features.items()
        },
        "tasks": meta.tasks,
    }
    if with_files:
        files = [f for folder in (DATA_DIR, VIDEOS_DIR, META_DIR) for f in meta.store.list_info(folder)]
        summary["files"] = len(files)
        summary["bytes"] = sum(f.size for f in files)
    return summary
