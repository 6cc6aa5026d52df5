"""Collating samples into batches inside a dataset: ``StreamingDataset(batch_size=...)``.

The batches equal what DataLoader's default collation makes of the same samples
(tensors stacked along a new first dimension, strings gathered in lists), but each
sample is written once, straight into its row: camera frames are converted from uint8
into the batch's float32 rows, and in a DataLoader worker the batch lives in a reused
shared-memory buffer (:mod:`.shared_batches`) rather than in fresh memory that torch
copies into fresh shared memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from robostore.errors import SchemaError
from robostore.torch.sample import Transform, finish_camera, unit_float
from robostore.torch.shared_batches import (
    BatchBuffer,
    Field,
    SharedBatch,
    lend_batches,
    plan_fields,
)
from robostore.video.decode import DecodedFrames


class BatchCollator:
    """Turns a stream of samples into batches of ``batch_size`` rows.

    Args:
        batch_size: rows per batch.
        drop_last: leave out the last batch when it is short.
        camera_keys: keys whose values are uint8 ``[..., 3, H, W]`` frames still to be
            finished (converted to float32 unless ``return_uint8``, then transformed).
        return_uint8: keep camera frames uint8.
        image_transforms: applied to each sample's camera tensor before it is written.
        name: how errors name the dataset.
    """

    def __init__(
        self,
        batch_size: int,
        drop_last: bool,
        camera_keys: Sequence[str],
        return_uint8: bool,
        image_transforms: Transform | None,
        name: str,
    ) -> None:
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.camera_keys = frozenset(camera_keys)
        self.return_uint8 = return_uint8
        self.image_transforms = image_transforms
        self.name = name
        self._scratches: dict[str, np.ndarray] = {}

    def batches(self, samples: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any] | SharedBatch]:
        """Batches of the samples, in order. In a DataLoader worker (on Linux) they are
        :class:`SharedBatch` objects, which reach the training process as dicts."""
        shared = lend_batches()
        size = self.batch_size
        layout: tuple[list[Field], list[str], list[str], int] | None = None
        views: dict[str, np.ndarray] = {}
        others: dict[str, list[Any]] = {}
        buffer: BatchBuffer | None = None
        row = 0
        for sample in samples:
            sample = self._finished(sample)
            if layout is None:
                converted = self.camera_keys if self.image_transforms is None and not self.return_uint8 else frozenset()
                layout = _layout(sample, size, converted)
            fields, other_keys, order, nbytes = layout
            if buffer is None:
                buffer = BatchBuffer(fields, nbytes, size, shared)
                views = buffer.views
                others = {key: [] for key in other_keys}
            self._write(sample, row, views, others, fields, other_keys)
            row += 1
            if row == size:
                batch = buffer.finish(others, order)
                views, buffer, row = {}, None, 0
                yield batch
        if row and not self.drop_last and layout is not None and buffer is not None:
            yield buffer.finish(others, layout[2], row)

    def _finished(self, sample: dict[str, Any]) -> dict[str, Any]:
        """Cameras finished here only when a transform must see them; otherwise they are
        converted while written."""
        if self.image_transforms is not None:
            for key in self.camera_keys:
                sample[key] = finish_camera(sample[key], self.return_uint8, self.image_transforms)
        return sample

    def _write(
        self,
        sample: dict[str, Any],
        row: int,
        views: dict[str, np.ndarray],
        others: dict[str, list[Any]],
        fields: list[Field],
        other_keys: list[str],
    ) -> None:
        if len(sample) != len(fields) + len(other_keys):
            raise self._mismatch(sample, "keys", sorted(sample), sorted([f.key for f in fields] + other_keys))
        convert = self.image_transforms is None and not self.return_uint8
        for field in fields:
            value = sample.get(field.key)
            if not isinstance(value, (torch.Tensor, DecodedFrames)):
                raise self._mismatch(sample, field.key, type(value).__name__, "a tensor")
            if tuple(value.shape) != field.shape:
                raise self._mismatch(sample, field.key, tuple(value.shape), field.shape)
            rows = views[field.key]
            if isinstance(value, DecodedFrames):
                if convert:
                    unit_float(value.write(self._scratch(field)), out=rows[row])
                else:
                    value.write(rows[row])
            elif convert and field.key in self.camera_keys:
                unit_float(value.numpy(), out=rows[row])
            else:
                rows[row] = value.numpy()
        for key in other_keys:
            if key not in sample:
                raise self._mismatch(sample, "keys", sorted(sample), sorted([f.key for f in fields] + other_keys))
            others[key].append(sample[key])

    def _scratch(self, field: Field) -> np.ndarray:
        """A uint8 row for converting frames before the float32 division (reused: it
        stays in cache)."""
        scratch = self._scratches.get(field.key)
        if scratch is None or scratch.shape != field.shape:
            scratch = self._scratches[field.key] = np.empty(field.shape, np.uint8)
        return scratch

    def _mismatch(self, sample: dict[str, Any], what: str, got: Any, want: Any) -> SchemaError:
        return SchemaError(
            f"{self.name}: batch_size={self.batch_size} needs samples of one layout, but the sample with "
            f"index {sample.get('index')!r} has {what} {got}, the batch has {want}; image_transforms "
            "that change sizes need batch_size=None (batch with the DataLoader)"
        )


def _layout(
    sample: dict[str, Any], rows: int, to_float: frozenset[str]
) -> tuple[list[Field], list[str], list[str], int]:
    """Fields of the tensors (``to_float`` keys as float32), the other keys, the key
    order, the data's bytes."""
    tensors: list[tuple[str, tuple[int, ...], np.dtype[Any]]] = []
    other_keys: list[str] = []
    for key, value in sample.items():
        if isinstance(value, DecodedFrames):
            dtype = np.dtype(np.float32 if key in to_float else np.uint8)
        elif isinstance(value, torch.Tensor):
            dtype = np.dtype(np.float32) if key in to_float else value.numpy().dtype
        else:
            other_keys.append(key)
            continue
        tensors.append((key, tuple(value.shape), dtype))
    fields, nbytes = plan_fields(tensors, rows)
    return fields, other_keys, list(sample), nbytes
