"""Batches that DataLoader workers hand to the training process through reused shared memory.

torch sends every tensor a worker returns through a fresh shared-memory segment: the
worker faults in new pages for each batch (measured here: ~1.5 µs per 4 KiB page,
~0.2 ms per sample of two uint8 240x320 cameras) and the training process connects
back to the worker once per tensor to receive its file descriptor. A dataset that
collates its own batches (``StreamingDataset(batch_size=...)``) writes each batch into
a buffer of a per-worker pool instead and sends the buffer's whereabouts:

* the worker returns a :class:`SharedBatch`, which pickles as (pid, fd, layout, lend
  count) — a few hundred bytes;
* the training process opens ``/proc/<pid>/fd/<fd>``, maps it and builds the batch's
  tensors on the mapping: a plain dict, as DataLoader's own collation gives;
* when the last of those tensors is gone, a finalizer writes the lend count back into
  the buffer's header, which frees the buffer. The worker reuses only free buffers, so
  a batch the training loop keeps is never overwritten; it makes a new one instead.

Each buffer is a memfd: nothing is left behind in ``/dev/shm`` when a process dies.
"""

from __future__ import annotations

import math
import mmap
import os
import sys
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.utils.data

from robostore.errors import RobostoreError
from robostore.forks import current_pid

#: Bytes before the batch data: the worker's lend count, then the consumer's return count.
HEADER = 64
_RETURNED_AT = 8

#: Free buffers a worker keeps for reuse; more are closed.
KEEP_FREE = 2

#: Alignment of each tensor's data in a batch buffer.
_ALIGN = 64


@dataclass(frozen=True)
class Field:
    """One tensor of a batch: ``rows x shape`` values of ``dtype`` at ``offset`` in the data."""

    key: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    def view(self, data: Any, rows: int) -> np.ndarray:
        """The field's values in ``data`` (a buffer starting at the data's offset 0)."""
        count = rows * math.prod(self.shape)
        return np.frombuffer(data, self.dtype, count, self.offset).reshape(rows, *self.shape)


def shared_batches_available() -> bool:
    """Whether this process can lend batches through memfd buffers (Linux with /proc)."""
    return hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd")


def lend_batches() -> bool:
    """Whether batches made now should go into a pool buffer: in a DataLoader worker
    that can lend them."""
    return torch.utils.data.get_worker_info() is not None and shared_batches_available()


def plan_fields(tensors: Iterable[tuple[str, tuple[int, ...], np.dtype[Any]]], rows: int) -> tuple[list[Field], int]:
    """Fields for ``(key, shape of one row, dtype)`` tensors of ``rows`` rows, each
    64-byte aligned, and the bytes they take together."""
    fields: list[Field] = []
    offset = 0
    for key, shape, dtype in tensors:
        fields.append(Field(key, tuple(shape), np.dtype(dtype).str, offset))
        nbytes = rows * math.prod(shape) * np.dtype(dtype).itemsize
        offset += -(-nbytes // _ALIGN) * _ALIGN
    return fields, max(offset, 1)


class BatchBuffer:
    """The memory one batch's tensors are written into: a pool buffer (lent to the
    training process by :meth:`finish`) or plain memory.

    Args:
        fields: the batch's tensors (from :func:`plan_fields`).
        nbytes: their bytes together.
        rows: rows the buffer holds.
        shared: take a buffer of this process's pool (see :func:`lend_batches`).
    """

    def __init__(self, fields: list[Field], nbytes: int, rows: int, shared: bool) -> None:
        self.fields, self.rows = fields, rows
        self._buffer = worker_pool().take(nbytes) if shared else None
        data = self._buffer.lease() if self._buffer is not None else np.empty(nbytes, np.uint8)
        #: Each field's ``[rows, *shape]`` array, to write the batch into.
        self.views = {f.key: f.view(data, rows) for f in fields}

    def finish(self, others: dict[str, Any], order: list[str], rows: int | None = None) -> dict[str, Any] | SharedBatch:
        """The batch of the first ``rows`` rows (all by default), with the non-tensor
        values ``others``, keys in ``order``: a plain dict of tensors, or a
        :class:`SharedBatch` (a dict once it reaches the training process)."""
        rows = self.rows if rows is None else rows
        if self._buffer is not None:
            return SharedBatch(self._buffer, self.fields, rows, others, order)
        return {key: torch.from_numpy(self.views[key][:rows]) if key in self.views else others[key] for key in order}


class _Buffer:
    """One memfd mapping: a header of two counters, then the batch data."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fd = os.memfd_create("robostore-batch", os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, HEADER + size)
            self.map = mmap.mmap(self.fd, HEADER + size)
        except BaseException:
            os.close(self.fd)
            raise
        self.data = memoryview(self.map)[HEADER:]
        self._counts = np.frombuffer(self.map, np.int64, 2)
        self._lease: weakref.ref[np.ndarray] | None = None

    def lease(self) -> np.ndarray:
        """The data as an array, for the arrays of the batch written into it now, which
        all keep it alive: while any of them lives in this process the buffer is not
        free (a batch not lent yet, or one whose tensors a collate_fn took into another
        container, which torch copies only when it sends them). numpy holds no buffer
        export of what it views, so a weak reference is what tells."""
        data = self._lease() if self._lease is not None else None
        if data is None:
            data = np.frombuffer(self.map, np.uint8, self.size, HEADER)
            self._lease = weakref.ref(data)
        return data

    @property
    def free(self) -> bool:
        """Every lend of this buffer has come back and nothing in this process views
        the batch last written into it."""
        return bool(self._counts[0] == self._counts[1]) and (self._lease is None or self._lease() is None)

    def lend(self) -> int:
        """Mark the buffer lent; the number the consumer writes back when done."""
        self._counts[0] += 1
        return int(self._counts[0])

    def close(self) -> bool:
        """Unmap and close; False (and nothing done) while arrays of this process still
        view the buffer."""
        if self._lease is not None and self._lease() is not None:
            return False
        try:
            self.data.release()
        except BufferError:
            return False
        del self._counts
        self.map.close()
        os.close(self.fd)
        return True


class SharedBatchPool:
    """The buffers of one worker process (use :func:`worker_pool`)."""

    def __init__(self) -> None:
        self._buffers: list[_Buffer] = []

    def take(self, size: int) -> _Buffer:
        """A free buffer of at least ``size`` data bytes (new if none is free)."""
        chosen = None
        spare = 0
        for buffer in list(self._buffers):
            if not buffer.free:
                continue
            if chosen is None and buffer.size >= size:
                chosen = buffer
            elif spare < KEEP_FREE or not buffer.close():
                spare += 1
            else:
                self._buffers.remove(buffer)
        if chosen is None:
            chosen = _Buffer(size)
            self._buffers.append(chosen)
        return chosen

    def __len__(self) -> int:
        return len(self._buffers)


_pool: tuple[int, SharedBatchPool] | None = None


def worker_pool() -> SharedBatchPool:
    """This process's pool. It outlives the iterators that use it: batches still
    queued for the training process must stay readable after an epoch's generator ends."""
    global _pool
    if _pool is None or _pool[0] != current_pid():
        _pool = (current_pid(), SharedBatchPool())
    return _pool[1]


class SharedBatch(dict[str, Any]):
    """A batch written into a pool buffer: in the worker a dict of tensors viewing the
    buffer; pickled, the buffer's whereabouts, which unpickle as a plain dict of
    tensors mapping the same memory (the buffer is lent, not copied).

    A batch changed in the worker (keys added, removed or given other values, as a
    collate_fn that post-processes ``default_collate``'s batch does) pickles as the
    plain dict it has become: torch then copies its tensors as it copies any, and the
    buffer is reused once nothing in the worker views it.

    Args:
        buffer: the buffer holding the tensors' data (already written).
        fields: the tensors in it.
        rows: the batch's rows (the last batch of an epoch may be short).
        others: values that are not tensors (lists of strings).
        order: the keys in the order the batch dict has them.
    """

    def __init__(
        self, buffer: _Buffer, fields: list[Field], rows: int, others: dict[str, Any], order: list[str]
    ) -> None:
        data = buffer.lease()
        tensors = {f.key: torch.from_numpy(f.view(data, rows)) for f in fields}
        super().__init__((key, tensors[key] if key in tensors else others[key]) for key in order)
        self._buffer = buffer
        self._layout = (fields, rows, others, order)
        self._written = dict(self)
        self._lent: tuple[Any, ...] | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if list(self) != list(self._written) or any(self[k] is not v for k, v in self._written.items()):
            return dict, (dict(self),)
        if self._lent is None:  # once: each lend is given back once
            buffer = self._buffer
            self._lent = (os.getpid(), buffer.fd, HEADER + buffer.size, buffer.lend(), *self._layout)
        return _open_shared_batch, self._lent


def _open_shared_batch(
    pid: int, fd: int, size: int, lent: int, fields: list[Field], rows: int, others: dict[str, Any], order: list[str]
) -> dict[str, Any]:
    path = f"/proc/{pid}/fd/{fd}"
    try:
        own = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        raise RobostoreError(
            f"cannot open the shared batch buffer of DataLoader worker {pid} ({path}: {exc.strerror}); "
            "this process needs read access to its workers' /proc entries. Use "
            "StreamingDataset(batch_size=None) with DataLoader(batch_size=...) instead"
        ) from exc
    try:
        mapping = mmap.mmap(own, size)
    except BaseException:
        os.close(own)
        raise
    weakref.finalize(mapping, _give_back, own, lent, current_pid())
    data = memoryview(mapping)[HEADER:]
    tensors = {f.key: torch.from_numpy(f.view(data, rows)) for f in fields}
    return {key: tensors[key] if key in tensors else others[key] for key in order}


def _give_back(fd: int, lent: int, pid: int) -> None:
    """The batch's last tensor is gone: tell the worker its buffer is free.

    Only from the process that received the batch: a process forked from it holds
    copies of its tensors, and dropping those frees nothing the receiver still uses.
    """
    try:
        if current_pid() == pid:
            os.pwrite(fd, lent.to_bytes(8, sys.byteorder, signed=True), _RETURNED_AT)
    finally:
        os.close(fd)
