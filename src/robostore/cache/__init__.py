"""The Zarr frame cache: decode each video frame once, serve it fast ever after.

::

    cache = robostore.FrameCache("/scratch/frames", max_bytes=200 << 30)  # or "s3://team/frames"
    ds = robostore.Dataset(url, frame_cache=cache)

A :class:`FrameCache` is a location (local folder or any fsspec URL). Inside it, each
dataset *state* has its own arrays, named by a fingerprint of the bytes that produce
its frames (info.json, the episodes files, every mp4; see :mod:`.fingerprint`), so a
rewritten video or an appended episode is a new, empty set of arrays and stale frames
are never served. Layout (:mod:`.layout`)::

    zarr.json                          root group (attribute robostore_frame_cache)
    <fingerprint>/zarr.json            group: name, fps, total_frames, video_keys
    <fingerprint>/<video_key>/zarr.json    uint8 [total_frames, H, W, C], Zarr v3
    <fingerprint>/<video_key>/c/<s>/0/0/0  shard s: frames [s*S, (s+1)*S), one chunk each
    stats/<host>-<pid>-<rand>.json     hit/miss counters of one process
    claims/...                         fill claims (local caches only)

The interface readers call
--------------------------
``cache.for_dataset(meta) -> DatasetFrameCache`` (computes the fingerprint once; the
result pickles into DataLoader workers without recomputing it). Then, by video key and
global frame ``index``:

``get(video_key, indices, fill=True) -> np.ndarray | None``
    uint8 ``[T, H, W, C]``, all or nothing. On a miss (shard absent, or a chunk failing
    its crc32c) the cache decodes *the whole shard* with :class:`VideoReader`, writes it
    in one atomic write and serves it: a shard is the unit of filling, so no two writers
    ever modify one object. None means "decode these yourself": ``fill=False`` and a
    shard is missing, another process is filling that shard right now, or decoding
    failed (the reader's own decode then raises its usual error).
``put(video_key, first_index, frames) -> int``
    For readers that decoded a run themselves (streaming decodes whole episodes):
    every shard the run covers completely is written (if not cached yet).

``DatasetFrameCache.files()`` gives the same cache addressed by mp4 path and timestamps
in that file (``get(video_path, timestamps)`` / ``put(video_path, timestamps,
frames)``), which is the ``frame_cache`` interface of ``robostore.torch``'s readers.

Concurrency: every shard is written whole, once, atomically (temp file + rename on
local disk, one PUT on object stores) by whoever decoded it; its presence is its
completion record, and each chunk (and the shard index) carries a crc32c. There is no
shared counter or manifest to update. Fill claims (:mod:`.claims`) keep DataLoader
workers and processes on one machine from decoding the same shard twice; counters are
per process (:mod:`.stats`). Local caches evict least recently used shards to stay
under ``max_bytes`` (:mod:`.evict`). ``robostore cache warm`` fills a cache ahead of
training with worker processes (:mod:`.warm`).

Needs the ``cache`` extra (zarr, which brings numcodecs and google-crc32c) and, for
filling, PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that the CLI (robostore.cache.cli) loads without zarr.
_LAZY = {
    "ArrayLayout": "robostore.cache.layout",
    "CacheInfo": "robostore.cache.reports",
    "DatasetFrameCache": "robostore.cache.frame_cache",
    "FrameCache": "robostore.cache.frame_cache",
    "VideoFileFrames": "robostore.cache.frame_cache",
    "WarmReport": "robostore.cache.warm",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robostore.cache' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = list(_LAZY)
