"""Keeping a local cache under ``max_bytes``: least recently used shards go first.

"Recently used" is the shard file's mtime: written on fill, and set to now by readers
when they use a shard (at most once per ``TOUCH_INTERVAL_S`` per shard and process),
since atime is unreliable (``noatime``/``relatime`` mounts). Eviction deletes whole
shard files, oldest first, down to ``LOW_WATERMARK * max_bytes``; the arrays'
``zarr.json`` stay (a few hundred bytes each). Several processes may evict at once:
deleting a file another one already deleted is not an error, and a reader that loses
a shard under its feet sees a miss and refills it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)

TOUCH_INTERVAL_S = 30.0
LOW_WATERMARK = 0.9


@dataclass
class ShardFile:
    path: str
    size: int
    mtime: float


def shard_files(root: str) -> list[ShardFile]:
    """Every shard file under the local cache folder ``root`` (``<fp>/<key>/c/...``)."""
    out = []
    for folder, _dirs, files in os.walk(root):
        rel = os.path.relpath(folder, root).split(os.sep)
        if len(rel) < 3 or "c" not in rel[2:]:
            continue
        for name in files:
            if name.startswith("."):  # a temporary file of an atomic write in progress
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            out.append(ShardFile(path, st.st_size, st.st_mtime))
    return out


def evict(root: str, max_bytes: int) -> tuple[int, int, int]:
    """Delete least recently used shards until the cache is under ``max_bytes``.

    Returns ``(shards deleted, bytes deleted, bytes left)``.
    """
    files = shard_files(root)
    total = sum(f.size for f in files)
    if total <= max_bytes:
        return 0, 0, total
    goal = int(max_bytes * LOW_WATERMARK)
    deleted = freed = 0
    for f in sorted(files, key=lambda f: f.mtime):
        if total - freed <= goal:
            break
        try:
            os.unlink(f.path)
        except FileNotFoundError:
            continue
        deleted += 1
        freed += f.size
    log.info("frame cache %s: evicted %d shards (%d bytes) to stay under %d bytes", root, deleted, freed, max_bytes)
    return deleted, freed, total - freed


def touch(path: str) -> None:
    """Mark a shard as just used."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)
