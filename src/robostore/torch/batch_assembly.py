"""Whole batches of the map-style Dataset in one call: ``Dataset.__getitems__``, ``ds[a:b]``.

A batch holds what DataLoader's default collation makes of the per-sample dicts of
:class:`~robostore.torch.sample.SampleAssembler` (same keys in the same order, dtypes,
shapes and values), built per column rather than per sample:

* tabular values, neighbours and pad masks: one vectorised take per column;
* cameras: written straight into the batch's ``[B, (T,) 3, H, W]`` array; a frame
  cache serves all of a camera's frames in one call, otherwise each file's frames are
  decoded in time order (queries sharing a GOP decode it once);
* in a DataLoader worker the batch is written into a reused shared-memory buffer
  (:mod:`.shared_batches`), which reaches the training process as a plain dict.

``__getitems__`` returns :class:`SampleRows`: a sequence of the batch's samples, as
torch's protocol asks, whose default collation is the batch already built (no
stacking, no copy). A custom ``collate_fn`` gets samples as usual (copies of the rows).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data._utils.collate import collate, default_collate, default_collate_fn_map

from robostore.torch.deltas import PAD_SUFFIX
from robostore.torch.sample import SampleAssembler, finish_camera, unit_float
from robostore.torch.shared_batches import BatchBuffer, SharedBatch, plan_fields


class BatchAssembler:
    """Builds batches from positions, with the per-sample assembler's data and readers.

    Args:
        samples: the dataset's per-sample assembler (its tabular arrays, readers,
            offsets and options are shared).
    """

    def __init__(self, samples: SampleAssembler) -> None:
        self.samples = samples
        self._frame_shapes: dict[str, tuple[int, ...]] = {}  # camera key -> [3, H, W], learned once
        self._scratch: dict[str, np.ndarray] = {}  # camera key -> uint8 frames before conversion

    def batch(self, positions: np.ndarray, shared: bool) -> SampleRows:
        """The samples at ``positions`` (int64 [B], each in range, B >= 1).

        ``shared``: write into this process's pool of shared buffers (DataLoader workers).
        """
        s = self.samples
        index = s.index
        size = len(positions)
        slots = np.searchsorted(index.starts, positions, side="right") - 1
        first, stop, start = index.dataset_from[slots], index.dataset_to[slots], index.starts[slots]
        global_index = first + positions - start
        rows: dict[str, np.ndarray] = {}
        pads: dict[str, np.ndarray] = {}
        for key, offsets in s.offsets.items():
            wanted = global_index[:, None] + offsets[None, :]
            clamped = np.clip(wanted, first[:, None], stop[:, None] - 1)
            pads[key] = (wanted < first[:, None]) | (wanted >= stop[:, None])
            rows[key] = start[:, None] + clamped - first[:, None]

        # Depth maps and language rows are built per sample (collated as DataLoader would).
        depth_keys = [k for k in s.video_keys if k in s.depth]
        cameras = [k for k in s.video_keys if k not in s.depth] + s.image_keys
        # Each camera's frames as uint8 [B, T, 3, H, W] (T = 1 without deltas).
        frame_rows = {key: rows[key] if key in rows else positions[:, None] for key in cameras}
        for key in cameras:
            self._learn_shape(key, frame_rows[key][0], int(slots[0]))
        direct = s.image_transforms is None  # cameras go straight into the batch
        transformed: dict[str, torch.Tensor] = {}
        if not direct:
            for key in cameras:
                frames = self._read_camera(
                    key, frame_rows[key], slots, self._uint8(key, frame_rows[key].shape + self._frame_shapes[key])
                )
                samples = [
                    finish_camera(torch.from_numpy(f if key in rows else f[0]), s.return_uint8, s.image_transforms)
                    for f in frames
                ]
                transformed[key] = torch.stack(samples)

        tensors: list[tuple[str, tuple[int, ...], np.dtype[Any]]] = []
        others: dict[str, list[Any]] = {}
        order: list[str] = []
        for key in s.offsets:
            order.append(key + PAD_SUFFIX)
            tensors.append((key + PAD_SUFFIX, pads[key].shape[1:], np.dtype(bool)))
        for key in cameras:
            order.append(key)
            if key in transformed:
                value = transformed[key]
                tensors.append((key, tuple(value.shape[1:]), value.numpy().dtype))
            else:
                shape = ((len(s.offsets[key]),) if key in rows else ()) + self._frame_shapes[key]
                tensors.append((key, shape, np.dtype(np.uint8 if s.return_uint8 else np.float32)))
        for key in depth_keys:
            order.append(key)
            key_rows = rows[key] if key in rows else positions[:, None]
            others[key] = [self._depth(key, r, int(slot), key in rows) for r, slot in zip(key_rows, slots, strict=True)]
        for key in s.tabular_keys:
            order.append(key)
            column = s.tabular.columns[key]
            key_rows = rows.get(key, positions)
            if column.dtype == object or column.dtype.kind in "US":  # strings: collated as DataLoader collates them
                others[key] = [_string_value(column[r]) for r in key_rows]
            else:
                tensors.append((key, key_rows.shape[1:] + column.shape[1:], column.dtype))
        for key in s.language_keys:
            order.append(key)
            column = s.tabular.columns[key]
            others[key] = [
                copy.deepcopy(column[r] if r.ndim == 0 else [column[i] for i in r]) for r in rows.get(key, positions)
            ]
        order.append("task")
        others["task"] = [s.meta.task(int(t)) for t in s.task_index[positions]]

        fields, nbytes = plan_fields(tensors, size)
        buffer = BatchBuffer(fields, nbytes, size, shared)
        views = buffer.views
        for key in s.offsets:
            views[key + PAD_SUFFIX][...] = pads[key]
        for key in cameras:
            view = views[key]
            if key in transformed:
                view[...] = transformed[key].numpy()
                continue
            target = view if key in rows else view[:, None]
            if s.return_uint8:
                self._read_camera(key, frame_rows[key], slots, target)
            else:
                frames = self._read_camera(key, frame_rows[key], slots, self._uint8(key, target.shape))
                unit_float(frames, out=target)
        for key in s.tabular_keys:
            if key in views:
                np.take(s.tabular.columns[key], rows.get(key, positions), axis=0, out=views[key], mode="clip")
        return SampleRows(buffer, others, order, uncollated=frozenset(s.language_keys))

    # ------------------------------------------------------------------ cameras
    def _depth(self, key: str, key_rows: np.ndarray, slot: int, stacked: bool) -> torch.Tensor:
        """float32 millimetres of depth camera ``key`` at positions ``key_rows`` of one sample."""
        s = self.samples
        span = s.spans[key]
        wanted = (span.from_timestamp[slot] + s.timestamps[key_rows].astype(np.float64)).tolist()
        codes = s.videos.frames(span.paths[slot], wanted, s.tolerance_s, int(s.index.episodes[slot]), key)
        millimetres = torch.from_numpy(s.depth[key].decode(np.asarray(codes)))
        return millimetres if stacked else millimetres[0]

    def _read_camera(self, key: str, frame_rows: np.ndarray, slots: np.ndarray, out: np.ndarray) -> np.ndarray:
        """uint8 frames of camera ``key`` at positions ``frame_rows`` [B, T] into ``out``
        ([B, T, 3, H, W], C-contiguous rows)."""
        s = self.samples
        if key in s.image_keys:
            for b, positions in enumerate(frame_rows.tolist()):
                for t, position in enumerate(positions):
                    out[b, t] = np.moveaxis(s.image(key, position), -1, -3)
            return out
        span = s.spans[key]
        times = s.timestamps[frame_rows].astype(np.float64) + span.from_timestamp[slots][:, None]
        episodes = s.index.episodes[slots].tolist()
        queries = [
            (span.paths[slot], wanted, episode)
            for slot, wanted, episode in zip(slots.tolist(), times.tolist(), episodes, strict=True)
        ]
        s.videos.frames_many(key, queries, s.tolerance_s, out)  # type: ignore[attr-defined]  # a Dataset's VideoFrames: streams never batch here
        return out

    def _learn_shape(self, key: str, frame_rows: np.ndarray, slot: int) -> None:
        """The [3, H, W] of camera ``key``'s frames, from its first request (once per process)."""
        if key in self._frame_shapes:
            return
        s = self.samples
        if key in s.image_keys:
            shape = np.moveaxis(s.image(key, int(frame_rows[0])), -1, -3).shape
        else:
            span = s.spans[key]
            wanted = [float(s.timestamps[frame_rows[0]]) + float(span.from_timestamp[slot])]
            shape = s.videos.frames(span.paths[slot], wanted, s.tolerance_s, int(s.index.episodes[slot]), key).shape[1:]
        self._frame_shapes[key] = tuple(shape)

    def _uint8(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """A reused uint8 array for ``key``'s frames before they are converted."""
        scratch = self._scratch.get(key)
        if scratch is None or scratch.shape != shape:
            scratch = self._scratch[key] = np.empty(shape, np.uint8)
        return scratch


def _string_value(value: Any) -> Any:
    """A string feature's value as a sample holds it (str, or a list for neighbours)."""
    array = np.asarray(value)
    return array.item() if array.ndim == 0 else array.tolist()


class SampleRows(Sequence["BatchRow"]):
    """The samples of one batch, held as the batch (what ``Dataset.__getitems__`` returns).

    DataLoader's default collation of it is :meth:`collated`; item ``i`` is sample
    ``i`` (a mapping whose tensors are copies of its rows), for custom collate functions.
    """

    def __init__(
        self,
        buffer: BatchBuffer,
        others: dict[str, list[Any]],
        order: list[str],
        uncollated: frozenset[str] = frozenset(),
    ) -> None:
        self._buffer = buffer
        self._others = others
        self._order = order
        self._uncollated = uncollated  # language rows: a list per sample (default_collate cannot stack them)

    def __len__(self) -> int:
        return self._buffer.rows

    def __getitem__(self, i: int) -> BatchRow:  # type: ignore[override]  # rows by integer only: collate never slices
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} of a batch of {len(self)}")
        return BatchRow(self, i % len(self))

    def collated(self) -> dict[str, Any] | SharedBatch:
        """The batch: a dict as ``default_collate`` makes of the samples (a
        :class:`SharedBatch` in a DataLoader worker: a dict once it reaches the training
        process). Call it once."""
        others = {
            key: values if key in self._uncollated else default_collate(values)  # type: ignore[no-untyped-call]  # torch leaves it untyped
            for key, values in self._others.items()
        }
        return self._buffer.finish(others, self._order)

    def value(self, i: int, key: str) -> Any:
        """Sample ``i``'s value of ``key`` (tensors copied out of the batch)."""
        if key in self._others:
            return self._others[key][i]
        return torch.from_numpy(np.array(self._buffer.views[key][i]))

    @property
    def keys(self) -> list[str]:
        return self._order


class BatchRow(Mapping[str, Any]):
    """One sample of a :class:`SampleRows`, read from the batch on access."""

    def __init__(self, rows: SampleRows, i: int) -> None:
        self.rows, self.i = rows, i

    def __getitem__(self, key: str) -> Any:
        if key not in self.rows.keys:
            raise KeyError(key)
        return self.rows.value(self.i, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows.keys)

    def __len__(self) -> int:
        return len(self.rows.keys)


def _collate_rows(batch: Sequence[BatchRow], *, collate_fn_map: dict[Any, Any] | None = None) -> Any:
    """default_collate's rule for samples of a :class:`SampleRows`: the whole batch is
    already built; samples from elsewhere are collated one by one as usual."""
    first = batch[0]
    if isinstance(batch, SampleRows) and first.rows is batch:
        return batch.collated()
    return collate([dict(row) for row in batch], collate_fn_map=collate_fn_map)


# DataLoader applies its collate_fn to what __getitems__ returns: this makes the default
# one hand the built batch on.
default_collate_fn_map[BatchRow] = _collate_rows
