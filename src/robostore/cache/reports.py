"""What ``robostore cache info`` reports: size, coverage per dataset and video key, counters."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from robostore.cache.layout import ROOT_ATTR, ArrayLayout
from robostore.cache.stats import read_stats
from robostore.errors import CorruptDataset
from robostore.store import Store

log = logging.getLogger(__name__)


@dataclass
class ArrayInfo:
    """Coverage of one cached video key."""

    fingerprint: str
    video_key: str
    layout: ArrayLayout
    shards_cached: int = 0
    frames_cached: int = 0
    bytes: int = 0

    @property
    def coverage(self) -> float:
        return self.frames_cached / self.layout.num_frames if self.layout.num_frames else 1.0


@dataclass
class DatasetInfo:
    """The cached arrays of one dataset state."""

    fingerprint: str
    attributes: dict[str, Any]
    arrays: list[ArrayInfo] = field(default_factory=list)


@dataclass
class CacheInfo:
    """What ``robostore cache info`` shows."""

    url: str
    bytes: int
    files: int
    datasets: list[DatasetInfo]
    counters: dict[str, int]
    max_bytes: int | None = None

    @property
    def hit_rate(self) -> float | None:
        """Frames served from the cache / frames asked for, over all processes (None before any)."""
        asked = self.counters["hits"] + self.counters["misses"]
        return self.counters["hits"] / asked if asked else None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "bytes": self.bytes,
            "files": self.files,
            "max_bytes": self.max_bytes,
            "hit_rate": self.hit_rate,
            "counters": self.counters,
            "datasets": [
                {
                    "fingerprint": d.fingerprint,
                    **d.attributes,
                    "arrays": [
                        {
                            "video_key": a.video_key,
                            "frames": a.layout.num_frames,
                            "frame_shape": list(a.layout.frame_shape),
                            "shard_frames": a.layout.shard_frames,
                            "compression": a.layout.compression,
                            "shards": a.layout.num_shards,
                            "shards_cached": a.shards_cached,
                            "frames_cached": a.frames_cached,
                            "coverage": a.coverage,
                            "bytes": a.bytes,
                        }
                        for a in d.arrays
                    ],
                }
                for d in self.datasets
            ],
        }


def cache_info(store: Store, url: str, max_bytes: int | None) -> CacheInfo:
    """Size, coverage per dataset and video key, and hit/miss counters of all processes."""
    files = store.list_info("")
    arrays: dict[str, ArrayInfo] = {}
    groups: dict[str, dict[str, Any]] = {}
    metadata_paths = [f.path for f in files if f.path.endswith("/zarr.json")]
    for path, raw in store.read_many(metadata_paths).items():
        try:
            node = json.loads(raw)
        except ValueError:
            log.warning("frame cache: unreadable %s", store.describe(path))
            continue
        prefix = path[: -len("/zarr.json")]
        if node.get("node_type") == "group":
            groups[prefix] = node.get("attributes", {}).get(ROOT_ATTR, {})
        elif node.get("node_type") == "array":
            try:
                layout = ArrayLayout.from_metadata(node, store.describe(path))
            except CorruptDataset as exc:
                log.warning("%s", exc)
                continue
            fingerprint, _, key = prefix.partition("/")
            arrays[prefix] = ArrayInfo(fingerprint, key, layout)
    for f in files:
        prefix, sep, rest = f.path.rpartition("/c/")
        if sep and prefix in arrays and rest.endswith("/0/0/0"):
            array = arrays[prefix]
            shard = int(rest.split("/", 1)[0])
            start, stop = array.layout.shard_range(shard)
            array.shards_cached += 1
            array.frames_cached += stop - start
            array.bytes += f.size
    datasets: dict[str, DatasetInfo] = {}
    for array in arrays.values():
        entry = datasets.setdefault(
            array.fingerprint, DatasetInfo(array.fingerprint, groups.get(array.fingerprint, {}))
        )
        entry.arrays.append(array)
    return CacheInfo(
        url=url,
        bytes=sum(f.size for f in files),
        files=len(files),
        datasets=sorted(datasets.values(), key=lambda d: d.fingerprint),
        counters=read_stats(store),
        max_bytes=max_bytes,
    )
