"""``robostore cache warm``: fill a cache ahead of training, in parallel processes.

The shards covering the chosen episodes that are not cached yet are cut into batches
of consecutive shards of one video key (each batch decodes forward through its mp4s
with few seeks) and handed to a pool of processes; each fills whole shards exactly as
a reader's miss would, with the same claims, so warming next to a running training
job is safe.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Protocol

from tqdm.auto import tqdm

from robostore.cache.layout import ArrayLayout
from robostore.errors import SchemaError
from robostore.meta import DatasetMeta

log = logging.getLogger(__name__)


class _Flushes(Protocol):
    def flush(self) -> None: ...


class _HasStats(Protocol):
    @property
    def stats(self) -> _Flushes: ...


class ShardFiller(Protocol):
    """What warming needs of one dataset's cache (a :class:`~robostore.cache.DatasetFrameCache`)."""

    @property
    def meta(self) -> DatasetMeta: ...
    @property
    def cache(self) -> _HasStats: ...
    def layout(self, video_key: str) -> ArrayLayout: ...
    def cached_shards(self, video_key: str) -> set[int]: ...
    def fill(self, video_key: str, shards: Iterable[int]) -> int: ...


@dataclass(frozen=True)
class WarmReport:
    """What a warm run did, in shards (all video keys together)."""

    shards: int  # covering the chosen episodes
    already_cached: int
    filled: int  # by this run
    skipped: int  # claimed by another process meanwhile, or undecodable (logged)
    seconds: float


def target_shards(frames: ShardFiller, episodes: Iterable[int] | None) -> dict[str, list[int]]:
    """Per video key, the sorted shards holding frames of ``episodes`` (all when None)."""
    meta = frames.meta
    chosen = meta.episode_indices.tolist() if episodes is None else sorted({int(e) for e in episodes})
    known = set(meta.episode_indices.tolist())
    unknown = [e for e in chosen if e not in known]
    if unknown:
        raise SchemaError(f"{meta.url}: episodes {unknown[:10]} do not exist ({len(known)} episodes)")
    out: dict[str, list[int]] = {}
    for key in meta.video_keys:
        size = frames.layout(key).shard_frames
        shards: set[int] = set()
        for episode in chosen:
            start, stop = meta.frame_range(episode)
            if stop > start:
                shards.update(range(start // size, (stop - 1) // size + 1))
        out[key] = sorted(shards)
    return out


def _batches(key: str, shards: list[int], size: int) -> list[tuple[str, list[int]]]:
    out: list[tuple[str, list[int]]] = []
    for shard in shards:
        if out and out[-1][1][-1] == shard - 1 and len(out[-1][1]) < size:
            out[-1][1].append(shard)
        else:
            out.append((key, [shard]))
    return out


_worker_frames: ShardFiller | None = None


def _init_worker(frames: ShardFiller) -> None:
    global _worker_frames
    _worker_frames = frames


def _fill_batch(key: str, shards: list[int]) -> int:
    assert _worker_frames is not None
    try:
        return _worker_frames.fill(key, shards)
    finally:
        _worker_frames.cache.stats.flush()


def warm(
    frames: ShardFiller, episodes: Iterable[int] | None = None, workers: int | None = None, progress: bool = True
) -> WarmReport:
    """Fill every missing shard covering ``episodes`` with ``workers`` processes."""
    began = time.perf_counter()
    targets = target_shards(frames, episodes)
    total = sum(len(s) for s in targets.values())
    todo = {key: sorted(set(shards) - frames.cached_shards(key)) for key, shards in targets.items()}
    missing = sum(len(s) for s in todo.values())
    workers = max(1, workers or os.cpu_count() or 1)
    # A few batches per worker balance the load; batches of neighbours keep decoding sequential.
    size = max(1, min(16, -(-missing // (workers * 4))))
    batches = [b for key, shards in todo.items() for b in _batches(key, shards, size)]
    filled = 0
    bar = tqdm(total=missing, unit="shard", desc=f"warming {frames.meta.url}", disable=not progress)
    try:
        if workers == 1 or len(batches) <= 1:
            for key, shards in batches:
                for shard in shards:
                    filled += frames.fill(key, [shard])
                    bar.update(1)
            frames.cache.stats.flush()
        else:
            ctx = multiprocessing.get_context("spawn")  # no inherited decoder or event-loop state
            with ProcessPoolExecutor(
                min(workers, len(batches)), mp_context=ctx, initializer=_init_worker, initargs=(frames,)
            ) as pool:
                jobs = {pool.submit(_fill_batch, key, shards): shards for key, shards in batches}
                for job in as_completed(jobs):
                    filled += job.result()
                    bar.update(len(jobs[job]))
    finally:
        bar.close()
    report = WarmReport(total, total - missing, filled, missing - filled, time.perf_counter() - began)
    log.info("frame cache warm %s: %s", frames.meta.url, report)
    return report
