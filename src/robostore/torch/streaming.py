"""The :class:`StreamingDataset`: an IterableDataset that decodes episodes sequentially.

How one epoch of one process runs:

1. :mod:`.sharding` splits the epoch's permuted episodes into one shard per
   (rank, DataLoader worker), balanced by frames.
2. :mod:`.shuffle` plans the shard's reads (``interleave`` episodes open at once, each
   read forward) and yields (through a shuffle buffer) as index arithmetic.
3. This module carries the plan out. Samples are assembled by the same
   :class:`~robostore.torch.sample.SampleAssembler` as the map-style Dataset's, from the
   same tabular arrays, with frames from the same ``VideoReader.frames_at``, but with one
   reader per open episode: reading an episode's frames in order, each reader seeks once
   and then decodes forward, every frame once. :mod:`.prefetch` fetches the video bytes
   of the next episodes in the background (remote stores).
4. Progress is one number: samples yielded in the epoch. Since the plan depends only on
   seeds and lengths, a restore replays it up to that point without reading anything.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch.utils.data

from robostore.errors import RobostoreError, SchemaError
from robostore.meta import DatasetMeta
from robostore.store import Store
from robostore.torch.batches import BatchCollator
from robostore.torch.deltas import delta_indices
from robostore.torch.frames import (
    FrameCache,
    VideoFrames,
    bind_frame_cache,
    check_backend,
)
from robostore.torch.prefetch import Prefetcher
from robostore.torch.process import PerProcessStore
from robostore.torch.sample import SampleAssembler, Transform, finish_camera
from robostore.torch.sharding import (
    ShardId,
    current_shard,
    permutation,
    split_by_frames,
)
from robostore.torch.shuffle import ShardPlan
from robostore.torch.tabular import EpisodeIndex, ImageBytes, TabularData
from robostore.torch.views import SelectedEpisodes
from robostore.video.decode import DecodedFrames

log = logging.getLogger(__name__)

EqualLength = Literal["pad", "drop"]
_STATE_VERSION = 1


@dataclass
class _Progress:
    """Where the live iterator of this process is."""

    shard: ShardId
    epoch: int
    yielded: int


class StreamingDataset(SelectedEpisodes, torch.utils.data.IterableDataset[dict[str, Any]]):
    """Streams the frames of a LeRobot v3.0 dataset, decoding each episode once, in order.

    Samples are the map-style :class:`~robostore.torch.Dataset`'s: the sample whose
    ``item["index"]`` is ``i`` equals ``Dataset(url, same args)[position of i]`` for
    every key. Each epoch yields every frame of the selected episodes exactly once
    across all ranks and DataLoader workers (unless ``equal_length`` asks otherwise).

    Args:
        url: dataset root (path, ``memory://``, ``s3://``, ``gs://``, ``hf://`` ...) or a Store.
        episodes: episode indices to stream (all when None).
        delta_timestamps: ``{key: [seconds, ...]}`` neighbours per key, as in Dataset.
        shuffle: permute episodes per epoch and mix frames; False yields each shard's
            frames in dataset order (and with one process, the dataset's order).
        seed: seeds the permutation and the mixing; with :meth:`set_epoch`'s epoch it
            fixes the order.
        shuffle_buffer: frames held for mixing (with ``shuffle``). Each holds its
            decoded cameras as uint8, so memory is about ``shuffle_buffer`` samples.
        interleave: episodes read at once per worker (with ``shuffle``).
        prefetch: episodes whose video bytes are fetched ahead (remote stores).
        storage_options: passed to the fsspec filesystem.
        frame_cache: decoded-frame cache consulted before decoding (as in Dataset).
        return_uint8: cameras as uint8 instead of float32 in [0, 1].
        equal_length: ``"pad"`` or ``"drop"`` makes every (rank, worker) yield the same
            number of samples, as DDP needs: padding repeats frames (up to one
            episode's worth per shard), dropping leaves out the last ones. None (default)
            yields every frame exactly once; shards then differ by less than one episode.
        image_transforms: applied to each camera tensor, on output.
        tolerance_s: allowed |decoded - wanted| frame time, also for deltas.
        video_backend: ``"pyav"`` (default) or ``"torchcodec"``.
        batch_size: yield batches of this many samples instead of single samples, as
            DataLoader's default collation would make them; wrap the dataset in
            ``DataLoader(sds, batch_size=None, num_workers=...)``. Each sample is then
            written once, straight into its batch, and DataLoader workers hand batches
            over through reused shared memory: several times less work per sample
            than DataLoader's own batching (see docs/streaming.md).
        drop_last: with ``batch_size``, leave out each worker's last, short batch.

    Raises:
        SchemaError: bad arguments (deltas, episodes, sizes).
        CorruptDataset: the metadata contradicts itself (checked by ``DatasetMeta.open``).
        NotFound: no dataset at ``url``.
    """

    def __init__(
        self,
        url: str | Store,
        episodes: Iterable[int] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer: int = 1000,
        interleave: int = 4,
        prefetch: int = 2,
        storage_options: Mapping[str, Any] | None = None,
        frame_cache: FrameCache | None = None,
        return_uint8: bool = False,
        *,
        equal_length: EqualLength | None = None,
        image_transforms: Transform | None = None,
        tolerance_s: float = 1e-4,
        video_backend: str | None = None,
        batch_size: int | None = None,
        drop_last: bool = False,
    ) -> None:
        sizes = [("shuffle_buffer", shuffle_buffer, 1), ("interleave", interleave, 1), ("prefetch", prefetch, 0)]
        if batch_size is not None:
            sizes.append(("batch_size", batch_size, 1))
        for name, value, least in sizes:
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise SchemaError(f"StreamingDataset: {name} must be an integer >= {least}, got {value!r}")
        if equal_length not in (None, "pad", "drop"):
            raise SchemaError(f"StreamingDataset: equal_length must be None, 'pad' or 'drop', got {equal_length!r}")
        self.meta = DatasetMeta.open(url, storage_options)
        self._index = EpisodeIndex.from_meta(self.meta, None if episodes is None else list(episodes))
        self.delta_timestamps = None if delta_timestamps is None else {k: list(v) for k, v in delta_timestamps.items()}
        self._offsets = (
            {}
            if delta_timestamps is None
            else delta_indices(delta_timestamps, self.meta.fps, tolerance_s, self.meta.features, self.meta.url)
        )
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.shuffle_buffer = shuffle_buffer
        self.interleave = interleave
        self.prefetch = prefetch
        # Bound here, in the parent, so the dataset's fingerprint is computed once.
        self.frame_cache = bind_frame_cache(frame_cache, self.meta, tolerance_s)
        self.return_uint8 = return_uint8
        self.equal_length = equal_length
        self.image_transforms = image_transforms
        self.tolerance_s = tolerance_s
        self.video_backend = check_backend(video_backend)
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._store = PerProcessStore(self.meta.store)
        self._lengths = np.diff(self._index.starts)
        self._tabular: TabularData | None = None
        self._lock = threading.Lock()
        self._progress: _Progress | None = None
        self._restore: dict[str, Any] | None = None

    # ------------------------------------------------------------------ views
    @property
    def episodes(self) -> list[int]:
        """The selected episode indices, ascending."""
        episodes: list[int] = self._index.episodes.tolist()
        return episodes

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.meta.url!r}, episodes={self.num_episodes}, "
            f"frames={self.num_frames}, shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"
        )

    # ------------------------------------------------------------------ epochs and state
    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s episode permutation and mixing from the next ``iter()`` on.

        Call it in the main process before each epoch (like DistributedSampler's); with
        ``persistent_workers=True`` the workers keep the epoch they started with.
        """
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, Any]:
        """Where this process's stream stands: epoch, samples yielded, shard and settings.

        Under torchdata's ``StatefulDataLoader`` each worker's copy reports its own
        state and the loader keeps them together; outside it, call this in the process
        that iterates.
        """
        if self._restore is not None:
            return dict(self._restore)
        progress = self._progress
        return {
            "version": _STATE_VERSION,
            "epoch": self.epoch if progress is None else progress.epoch,
            "yielded": 0 if progress is None else progress.yielded,
            "shard": None if progress is None else _shard_list(progress.shard),
            "settings": self._fingerprint(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next ``iter()`` yield exactly the rest of the saved epoch, in order.

        Raises:
            RobostoreError: the state is not a StreamingDataset state, or was saved with
                other settings (seed, shuffling, episodes...) or another shard layout
                (checked when iteration starts).
        """
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise RobostoreError(f"StreamingDataset.load_state_dict: not a state of this version: {state!r}")
        if state.get("settings") != self._fingerprint():
            raise RobostoreError(
                "StreamingDataset.load_state_dict: the state was saved with other settings "
                f"({state.get('settings')!r}, now {self._fingerprint()!r}); restore with the same "
                "episodes, seed, shuffle, shuffle_buffer, interleave and equal_length"
            )
        self._restore = dict(state)
        self.epoch = int(state["epoch"])

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """This process's samples of the epoch (or batches of them, with ``batch_size``)."""
        shard = current_shard()
        restore, self._restore = self._restore, None
        done = 0
        if restore is not None:
            saved = restore.get("shard")
            if saved is not None and saved != _shard_list(shard):
                raise RobostoreError(
                    f"StreamingDataset: the state was saved by shard {saved} (rank, world size, worker, "
                    f"workers) but this is {_shard_list(shard)}; resume with the same world size "
                    "and number of DataLoader workers"
                )
            done = int(restore["yielded"])
        plan = self.plan(shard, self.epoch)
        progress = _Progress(shard, self.epoch, min(done, len(plan)))
        self._progress = progress
        samples = self._stream(plan, progress)
        if self.batch_size is None:
            return map(self._finish, samples)
        collator = BatchCollator(
            self.batch_size,
            self.drop_last,
            self.meta.rgb_camera_keys,
            self.return_uint8,
            self.image_transforms,
            self.meta.url,
        )
        return collator.batches(samples)

    def plan(self, shard: ShardId, epoch: int) -> ShardPlan:
        """The reads and yields of ``shard`` in ``epoch`` (no I/O)."""
        n = len(self._lengths)
        order = permutation(n, self.seed, epoch) if self.shuffle else np.arange(n)
        shards = split_by_frames(self._lengths, order, shard.count)
        sizes = [int(self._lengths[s].sum()) for s in shards]
        mine = shards[shard.index]
        total = None
        if self.equal_length == "pad":
            total = max(sizes)
        elif self.equal_length == "drop":
            total = min(sizes)
        # Padding reads this shard's episodes again, then everyone's (for empty shards).
        pad = [*mine.tolist(), *np.roll(order, -shard.index).tolist()]
        rng = np.random.default_rng([self.seed, epoch, shard.index, shard.count])
        return ShardPlan(
            mine,
            self._lengths,
            shuffle=self.shuffle,
            interleave=self.interleave,
            buffer=self.shuffle_buffer,
            seed=int(rng.integers(2**63)),
            total=total,
            pad_episodes=pad,
        )

    def _stream(self, plan: ShardPlan, progress: _Progress) -> Iterator[dict[str, Any]]:
        """The plan's samples, cameras not yet converted (still decoded frames, or uint8
        from a frame cache) nor transformed: see :meth:`_finish`."""
        store = self._store.get()
        episodes = self._index.episodes
        starts = self._index.starts
        lengths = self._lengths
        order = plan.episodes
        place = {slot: i for i, slot in enumerate(order)}
        prefetcher = None
        if self.meta.video_keys and store.local_path() is None:
            prefetcher = Prefetcher(self.meta, store, threads=min(8, 2 * len(self.meta.video_keys)))
            # Before the tabular data loads: the first videos' index and bytes are the
            # longest wait of a remote stream's first batch.
            prefetcher.schedule(int(episodes[s]) for s in order[: self.interleave + self.prefetch])
        frames = _EpisodeFrames(self, prefetcher)
        held: dict[tuple[int, int], dict[str, Any]] = {}
        started: set[int] = set()
        try:
            assembler = SampleAssembler(
                self.meta,
                self._index,
                self._load_tabular(),
                self._offsets,
                frames,
                ImageBytes(self._store),
                self.tolerance_s,
                None,
                True,
            )
            for reads, out in plan.steps(progress.yielded):
                for slot, frame in reads:
                    if prefetcher is not None and slot not in started:
                        started.add(slot)
                        i = place.get(slot)
                        if i is not None:
                            ahead = order[i + 1 : i + 1 + self.prefetch]
                            prefetcher.schedule(int(episodes[s]) for s in ahead)
                    held[(slot, frame)] = assembler.sample(int(starts[slot]) + frame)
                    if frame == lengths[slot] - 1:
                        frames.finish(int(episodes[slot]))
                item = held.pop(out)
                progress.yielded += 1
                yield item
        finally:
            frames.close()
            if prefetcher is not None:
                prefetcher.close()

    def _finish(self, item: dict[str, Any]) -> dict[str, Any]:
        for key in self.meta.rgb_camera_keys:
            item[key] = finish_camera(item[key], self.return_uint8, self.image_transforms)
        return item

    def _load_tabular(self) -> TabularData:
        with self._lock:
            if self._tabular is None:
                self._tabular = TabularData.load(self.meta, self._store.get(), self._index, self.meta.features)
                log.debug("%s: loaded %d frames of tabular data", self.meta.url, len(self._index))
            return self._tabular

    def _fingerprint(self) -> dict[str, Any]:
        digest = hashlib.sha256(self._index.episodes.tobytes() + self._index.starts.tobytes()).hexdigest()[:16]
        return {
            "episodes": digest,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "shuffle_buffer": self.shuffle_buffer,
            "interleave": self.interleave,
            "equal_length": self.equal_length,
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


class _EpisodeFrames:
    """Video frames for the assembler, with one set of readers per open episode.

    The map-style Dataset keeps one reader per file; a stream reads several episodes
    of the same file at once, and each must go forward on its own decoder.
    """

    def __init__(self, dataset: StreamingDataset, prefetcher: Prefetcher | None) -> None:
        self._dataset = dataset
        self._prefetcher = prefetcher
        window = max(
            (int(o.max() - o.min()) for k, o in dataset._offsets.items() if k in dataset.meta.video_keys), default=0
        )
        self._keep_recent = window + 2
        self._open: OrderedDict[int, VideoFrames] = OrderedDict()
        # Stragglers (episodes whose last frame was read before a restore) close by age.
        self._max_open = dataset.interleave + dataset.prefetch + 2

    def frames(
        self, path: str, timestamps: Sequence[float], tolerance_s: float, episode: int, key: str | None = None
    ) -> np.ndarray | DecodedFrames:
        videos = self._open.get(episode)
        if videos is None:
            ds = self._dataset
            videos = VideoFrames(
                ds._store,
                ds.video_backend,
                max_open=max(1, len(ds.meta.video_keys)),
                frame_cache=ds.frame_cache,
                keep_recent=self._keep_recent,
                open_source=None if self._prefetcher is None else self._prefetcher.source,
                features=ds.meta.features,
            )
            self._open[episode] = videos
            while len(self._open) > self._max_open:
                self._close(next(iter(self._open)))
        else:
            self._open.move_to_end(episode)
        return videos.frames(path, timestamps, tolerance_s, episode, key, decoded=True)

    def finish(self, episode: int) -> None:
        """The episode's last frame was read: close its readers, drop its bytes."""
        self._close(episode)

    def close(self) -> None:
        for episode in list(self._open):
            self._close(episode)

    def _close(self, episode: int) -> None:
        videos = self._open.pop(episode, None)
        if videos is not None:
            videos.close()
        if self._prefetcher is not None:
            self._prefetcher.release(episode)


def _shard_list(shard: ShardId) -> list[int]:
    return [shard.rank, shard.world_size, shard.worker, shard.num_workers]
