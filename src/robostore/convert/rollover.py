"""Which v2.1 episodes go into which v3.0 file: lerobot's converter's rollover, filed correctly.

lerobot's ``convert_dataset_v21_to_v30`` walks the episodes in order and starts a new
output file when adding the next episode would take the open one to the size limit
(data: the episode parquet's uncompressed size; video: the mp4's size on disk). Output
file positions are numbered ``chunk-{p // chunks_size}/file-{p % chunks_size}``.

Unlike lerobot's converter (upstream issue #2401), every episode is filed under the
data file it was actually written to: lerobot records the first episode of each new
data file under the previous file's index.
"""

from __future__ import annotations

from collections.abc import Sequence


def roll(sizes_mb: Sequence[float], limit_mb: float) -> list[list[int]]:
    """Group the positions of ``sizes_mb`` into files: a new file starts when the open
    one is not empty and the next item would bring it to ``limit_mb`` or beyond."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0.0
    for position, size in enumerate(sizes_mb):
        if current and total + size >= limit_mb:
            groups.append(current)
            current, total = [], 0.0
        current.append(position)
        total += size
    if current:
        groups.append(current)
    return groups
