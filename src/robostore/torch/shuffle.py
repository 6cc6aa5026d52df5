"""The order in which one shard reads and yields frames in one epoch, as pure index arithmetic.

A :class:`ShardPlan` knows nothing of video or bytes: from the shard's episodes, their
lengths and a seed it derives

* the **read order**: ``interleave`` episodes are open at a time; each read takes the
  next frame of one of them, picked at random; a finished episode is replaced by the
  next of the shard's list. Inside an episode frames are read in order, so each video
  is decoded once, forward.
* the **yield order**: reads go through a shuffle buffer of up to ``buffer`` frames.
  Yielding starts once it holds :data:`FIRST_YIELD` frames (so the first batch does not
  wait for a full buffer); it then grows by one frame per yield (two reads per yield)
  until full, after which each read pushes out a random resident. At the end the rest
  leaves in random order.

Because the plan depends only on lengths and seeds, it can be replayed without reading
anything. Resuming after ``n`` yielded samples replays ``n`` steps (microseconds each)
and reads again only the frames that sat in the buffer at that point.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

#: Frames in the shuffle buffer before the first yield (at most ``buffer``).
FIRST_YIELD = 64

#: A frame of the plan: ``(episode slot, frame number inside the episode)``.
Read = tuple[int, int]


class Step(NamedTuple):
    """Read ``reads`` (in this order) into the buffer, then yield ``out`` from it."""

    reads: list[Read]
    out: Read


class ShardPlan:
    """The reads and yields of one shard in one epoch.

    Args:
        episodes: the shard's episode slots, in the order they are opened.
        lengths: frames per episode slot (indexed by slot, for all slots).
        shuffle: False reads episodes one after the other and yields in read order.
        interleave: episodes open at once (with ``shuffle``).
        buffer: shuffle buffer size in frames (with ``shuffle``).
        seed: seeds the random picks (derive it from seed, epoch and shard).
        total: samples to yield; fewer than the shard's frames drops the last ones,
            more pads with frames of ``pad_episodes`` (read in order, yielded at once).
        pad_episodes: where padding frames come from, in order.
    """

    def __init__(
        self,
        episodes: Iterable[int],
        lengths: np.ndarray,
        *,
        shuffle: bool,
        interleave: int,
        buffer: int,
        seed: int,
        total: int | None = None,
        pad_episodes: Sequence[int] = (),
    ) -> None:
        self.episodes = [int(e) for e in episodes]
        self.lengths = [int(n) for n in lengths]
        self.shuffle = shuffle
        self.interleave = max(1, int(interleave)) if shuffle else 1
        self.buffer = max(1, int(buffer)) if shuffle else 1
        self.seed = seed
        self.frames = sum(self.lengths[e] for e in self.episodes)
        self.total = self.frames if total is None else int(total)
        self.pad_episodes = [int(e) for e in pad_episodes]

    def __len__(self) -> int:
        return self.total

    def steps(self, done: int = 0) -> Iterator[Step]:
        """The steps after the first ``done`` ones.

        The first step returned also re-reads the frames that were read but not yet
        yielded after ``done`` steps (in their original read order).
        """
        steps = self._all_steps()
        pending: dict[Read, None] = {}
        for _ in range(done):
            step = next(steps, None)
            if step is None:
                return
            pending.update(dict.fromkeys(step.reads))
            del pending[step.out]
        first = next(steps, None)
        if first is None:
            return
        yield Step([*pending, *first.reads], first.out)
        yield from steps

    def _all_steps(self) -> Iterator[Step]:
        count = 0
        for step in self._shuffled(random.Random(self.seed)):
            if count == self.total:
                return
            yield step
            count += 1
        for read in self._padding(self.total - count):
            yield Step([read], read)

    def _reads(self, rng: random.Random) -> Iterator[Read]:
        lengths = self.lengths
        queue = iter(e for e in self.episodes if lengths[e] > 0)
        if self.interleave == 1:
            for episode in queue:
                for frame in range(lengths[episode]):
                    yield episode, frame
            return
        active = [[e, 0] for e in itertools.islice(queue, self.interleave)]
        while active:
            i = rng.randrange(len(active)) if len(active) > 1 else 0
            slot = active[i]
            episode, frame = slot
            yield episode, frame
            if frame + 1 < lengths[episode]:
                slot[1] = frame + 1
                continue
            following = next(queue, None)
            if following is None:
                active.pop(i)
            else:
                active[i] = [following, 0]

    def _shuffled(self, rng: random.Random) -> Iterator[Step]:
        if self.buffer == 1:
            for read in self._reads(rng):
                yield Step([read], read)
            return
        size = self.buffer
        start = min(size, FIRST_YIELD)
        source = self._reads(rng)
        resident: list[Read] = []
        reads: list[Read] = []
        for read in source:
            reads.append(read)
            resident.append(read)
            if len(resident) < size:  # growing: two reads per yield until full
                extra = next(source, None)
                if extra is not None:
                    reads.append(extra)
                    resident.append(extra)
            if len(resident) < start:
                continue
            j = rng.randrange(len(resident))
            resident[j], resident[-1] = resident[-1], resident[j]
            yield Step(reads, resident.pop())
            reads = []
        rng.shuffle(resident)
        for out in resident:
            yield Step(reads, out)
            reads = []

    def _padding(self, missing: int) -> Iterator[Read]:
        if missing <= 0:
            return
        for episode in self.pad_episodes:
            for frame in range(self.lengths[episode]):
                yield episode, frame
                missing -= 1
                if missing == 0:
                    return
