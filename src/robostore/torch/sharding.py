"""Who reads which episodes: the process's place in the job, and a frame-balanced split.

The unit of work is the episode. An epoch's episodes are split into
``world_size * num_workers`` shards, one per (rank, DataLoader worker), with no overlap
and no loss. Every shard computes the whole split from the same inputs (the episode
lengths, seed and epoch), so no process ever talks to another.

Balancing is by frames, not by episode count: episodes are handed out longest first,
each to the shard with the fewest frames so far (LPT scheduling). Shards then differ
by less than the longest episode, while a split by episode count can be off by many
episodes' worth of frames when lengths vary. Inside a shard the episodes keep the
epoch's permuted order.
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass

import numpy as np
import torch.distributed
import torch.utils.data

from robostore.errors import RobostoreError


@dataclass(frozen=True)
class ShardId:
    """One (rank, worker) of the job; ``index`` among ``count`` shards."""

    rank: int
    world_size: int
    worker: int
    num_workers: int

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


def current_shard() -> ShardId:
    """This process's shard: rank and world size from ``torch.distributed`` when it is
    initialised, else the ``RANK`` / ``WORLD_SIZE`` environment variables, else one
    process; worker id and count from the DataLoader (one worker outside one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        try:
            rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError as exc:
            raise RobostoreError(f"RANK / WORLD_SIZE must be integers: {exc}") from exc
    if world < 1 or not 0 <= rank < world:
        raise RobostoreError(f"rank {rank} is not within world size {world} (RANK / WORLD_SIZE)")
    info = torch.utils.data.get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return ShardId(rank, world, worker, workers)


def permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The epoch's episode order (slots ``0..n-1``), the same in every process."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def split_by_frames(lengths: np.ndarray, order: np.ndarray, parts: int) -> list[np.ndarray]:
    """Split the episodes ``order`` (slots into ``lengths``) into ``parts`` shards of
    nearly equal frame counts, each keeping ``order``'s order (see the module docstring)."""
    rank_in_order = np.empty(len(order), dtype=np.int64)
    rank_in_order[order] = np.arange(len(order))
    # Longest first; equal lengths keep their order (stable), so the result is deterministic.
    by_length = order[np.argsort(-lengths[order], kind="stable")]
    loads = [(0, part) for part in range(parts)]
    members: list[list[int]] = [[] for _ in range(parts)]
    for slot in by_length.tolist():
        load, part = heapq.heappop(loads)
        members[part].append(slot)
        heapq.heappush(loads, (load + int(lengths[slot]), part))
    return [np.asarray(sorted(m, key=lambda s: rank_in_order[s]), dtype=np.int64) for m in members]
