"""The map-style :class:`Dataset`: random access to frames, value for value like lerobot."""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.utils.data

from robostore.meta import DatasetMeta
from robostore.store import Store
from robostore.torch.batch_assembly import BatchAssembler, SampleRows
from robostore.torch.deltas import delta_indices
from robostore.torch.frames import (
    FrameCache,
    VideoFrames,
    bind_frame_cache,
    check_backend,
)
from robostore.torch.process import PerProcessStore
from robostore.torch.sample import SampleAssembler, Transform
from robostore.torch.shared_batches import lend_batches
from robostore.torch.tabular import EpisodeIndex, ImageBytes, TabularData
from robostore.torch.views import SelectedEpisodes

if TYPE_CHECKING:
    import robostore.cache

log = logging.getLogger(__name__)


class Dataset(SelectedEpisodes, torch.utils.data.Dataset[dict[str, Any]]):
    """Random access to the frames of a LeRobot v3.0 dataset on any backend.

    ``ds[i]`` is a dict like lerobot's ``LeRobotDataset[i]``: every non-video feature
    as a tensor (shape-[1] features as 0-d tensors, dtypes as in info.json), each
    camera as float32 [C, H, W] in [0, 1] (uint8 with ``return_uint8``), and ``task``
    (the task text). With ``delta_timestamps`` a key holds its neighbours stacked
    ``[len(deltas), ...]``, clamped to the episode, and ``<key>_is_pad`` flags the
    clamped ones.

    ``ds[a:b]`` and ``ds[[i, j, ...]]`` return the batch of those samples, as
    DataLoader's default collation of ``[ds[i] for i in ...]`` would, built column by
    column; a DataLoader with a batch size asks for whole batches the same way
    (``__getitems__``).

    Opening reads ``meta/`` only. The tabular data of the selected episodes is read on
    first access in each process (and carried along when the dataset is pickled after
    that); video readers are opened lazily per process and kept open (LRU). The
    dataset works in DataLoader workers started with fork or spawn.

    Args:
        url: dataset root (a path, ``memory://``, ``s3://``, ``gs://``, ``hf://`` ...)
            or a :class:`~robostore.store.Store`.
        episodes: episode indices to use (all when None). Positions run over their
            frames in episode order; ``item["index"]`` stays the global frame index.
        delta_timestamps: ``{key: [seconds, ...]}`` neighbours to return per key;
            each must be within ``tolerance_s`` of a multiple of ``1/fps``.
        image_transforms: callable applied to each camera tensor.
        tolerance_s: allowed |decoded - wanted| frame time, also for deltas.
        storage_options: passed to the fsspec filesystem (credentials, endpoint...).
        video_backend: ``"pyav"`` (default) or ``"torchcodec"`` (must be installed).
        frame_cache: a :class:`robostore.FrameCache` (decoded frames kept in Zarr,
            filled on first use), or any object with ``get``/``put`` of decoded
            frames (:class:`~robostore.torch.frames.FrameCache`), consulted before decoding.
        return_uint8: cameras as uint8 (4x less to move between processes).

    Raises:
        SchemaError: bad ``delta_timestamps``, unknown episodes or video backend.
        NotFound: no dataset at ``url``.
    """

    def __init__(
        self,
        url: str | Store,
        episodes: Iterable[int] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        image_transforms: Transform | None = None,
        tolerance_s: float = 1e-4,
        storage_options: Mapping[str, Any] | None = None,
        video_backend: str | None = None,
        frame_cache: FrameCache | robostore.cache.FrameCache | None = None,
        return_uint8: bool = False,
    ) -> None:
        self.meta = DatasetMeta.open(url, storage_options)
        self._index = EpisodeIndex.from_meta(self.meta, None if episodes is None else list(episodes))
        #: The selected episode indices, ascending (None: all).
        self.episodes = None if episodes is None else self._index.episodes.tolist()
        self.delta_timestamps = None if delta_timestamps is None else {k: list(v) for k, v in delta_timestamps.items()}
        self.tolerance_s = tolerance_s
        self._offsets = (
            {}
            if delta_timestamps is None
            else delta_indices(delta_timestamps, self.meta.fps, tolerance_s, self.meta.features, self.meta.url)
        )
        self.image_transforms = image_transforms
        self.video_backend = check_backend(video_backend)
        self.frame_cache = frame_cache
        self.return_uint8 = return_uint8
        self._store = PerProcessStore(self.meta.store)
        file_cache = bind_frame_cache(frame_cache, self.meta, tolerance_s)
        self._videos = VideoFrames(self._store, self.video_backend, frame_cache=file_cache, features=self.meta.features)
        self._images = ImageBytes(self._store)
        self._tabular: TabularData | None = None
        self._assembler: SampleAssembler | None = None
        self._batches: BatchAssembler | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ views
    @property
    def delta_indices(self) -> dict[str, list[int]] | None:
        """``delta_timestamps`` as integer frame offsets (lerobot's ``delta_indices``)."""
        return {k: v.tolist() for k, v in self._offsets.items()} if self.delta_timestamps is not None else None

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.meta.url!r}, episodes={self.num_episodes}, frames={self.num_frames}, "
            f"fps={self.fps}, features={list(self.features)})"
        )

    # ------------------------------------------------------------------ access
    def __getitem__(self, idx: int | slice | Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, Any]:
        if isinstance(idx, (slice, Sequence, np.ndarray, torch.Tensor)) and not isinstance(idx, (str, bytes)):
            if isinstance(idx, slice):
                idx = range(*idx.indices(len(self._index)))
            batch = self._batch(idx, shared=False).collated()
            assert isinstance(batch, dict)
            return batch
        n = len(self._index)
        try:
            position = operator.index(idx)  # type: ignore[arg-type]  # bytes raise the TypeError answered below
        except TypeError:
            raise TypeError(
                f"Dataset indices must be integers, slices or lists of integers, got {type(idx).__name__}"
            ) from None
        if position < 0:
            position += n
        if not 0 <= position < n:
            raise IndexError(f"index {int(idx)} is out of range for a dataset of {n} frames")
        return self._assemble().sample(position)

    def __getitems__(self, indices: Sequence[int]) -> SampleRows:
        """The samples at ``indices``, built as one batch (what DataLoader calls with
        ``batch_size``): default collation of the result is that batch, equal to the
        collation of ``[ds[i] for i in indices]``; in a DataLoader worker it travels
        through a reused shared-memory buffer."""
        return self._batch(indices, shared=lend_batches())

    def _batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor, shared: bool) -> SampleRows:
        n = len(self._index)
        try:
            wanted = np.asarray(indices)
            if wanted.ndim != 1 or (wanted.size and wanted.dtype.kind not in "iu"):
                raise TypeError
        except (TypeError, ValueError):
            raise TypeError(f"Dataset batch indices must be a flat list of integers, got {indices!r:.80}") from None
        if wanted.size == 0:
            raise IndexError("an empty selection of samples has no batch; ask for at least one index")
        positions = wanted.astype(np.int64)
        positions = np.where(positions < 0, positions + n, positions)
        bad = (positions < 0) | (positions >= n)
        if bad.any():
            raise IndexError(f"index {int(wanted[bad][0])} is out of range for a dataset of {n} frames")
        self._assemble()
        assert self._batches is not None
        return self._batches.batch(positions, shared)

    def load(self) -> None:
        """Read the tabular data now (otherwise done on first access in each process)."""
        self._assemble()

    def close(self) -> None:
        """Close this process's open video readers."""
        self._videos.close()

    def _assemble(self) -> SampleAssembler:
        assembler = self._assembler
        if assembler is None:
            with self._lock:
                if self._assembler is None:
                    if self._tabular is None:
                        self._tabular = TabularData.load(self.meta, self._store.get(), self._index, self.meta.features)
                        log.debug("%s: loaded %d frames of tabular data", self.meta.url, len(self._index))
                    made = SampleAssembler(
                        self.meta,
                        self._index,
                        self._tabular,
                        self._offsets,
                        self._videos,
                        self._images,
                        self.tolerance_s,
                        self.image_transforms,
                        self.return_uint8,
                    )
                    self._batches = BatchAssembler(made)
                    self._assembler = made  # last: other threads take a set _assembler as ready
                assembler = self._assembler
        return assembler

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # Readers and locks stay behind; loaded tabular arrays travel (cheaper than
        # re-reading them from the backend in every spawned worker).
        state = self.__dict__.copy()
        state["_assembler"] = None
        state["_batches"] = None
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
