"""Shared-memory batch buffers: reuse only after the consumer let go, errors named."""

from __future__ import annotations

import gc
import pickle

import numpy as np
import pytest
import torch

from robostore import RobostoreError
from robostore.torch import shared_batches
from robostore.torch.shared_batches import Field, SharedBatch, SharedBatchPool


def lend(pool: SharedBatchPool, value: int) -> tuple[object, dict]:
    """Write a batch of two rows into a pool buffer; return the buffer and what a consumer gets."""
    fields = [Field("x", (3,), "<f4", 0), Field("i", (), "<i8", 64)]
    buffer = pool.take(128)
    fields[0].view(buffer.data, 2)[:] = value
    fields[1].view(buffer.data, 2)[:] = [value, value + 1]
    batch = pickle.loads(pickle.dumps(SharedBatch(buffer, fields, 2, {"task": ["a", "b"]}, ["x", "task", "i"])))
    return buffer, batch


def test_a_buffer_is_reused_once_the_consumer_dropped_the_batch() -> None:
    pool = SharedBatchPool()
    first, batch = lend(pool, 1)
    assert list(batch) == ["x", "task", "i"] and batch["task"] == ["a", "b"]
    assert torch.equal(batch["x"], torch.ones(2, 3)) and batch["i"].tolist() == [1, 2]
    assert not first.free
    second, kept = lend(pool, 2)
    assert second is not first  # the first is still held
    view = batch["x"][0]  # a view keeps the buffer lent
    del batch
    gc.collect()
    assert not first.free
    del view
    assert first.free
    third, _ = lend(pool, 3)
    assert third is first and len(pool) == 2
    assert torch.equal(kept["x"], torch.full((2, 3), 2.0))  # untouched by the reuse


def test_free_buffers_beyond_the_spare_ones_are_closed() -> None:
    pool = SharedBatchPool()
    held = [lend(pool, v)[1] for v in range(6)]
    assert len(pool) == 6
    del held
    gc.collect()
    pool.take(128)
    assert len(pool) == 1 + shared_batches.KEEP_FREE


def test_an_unreachable_worker_is_reported() -> None:
    with pytest.raises(RobostoreError, match=r"DataLoader worker 999999999.*batch_size=None"):
        shared_batches._open_shared_batch(999999999, 3, 128, 1, [], 0, {}, [])


def test_field_views_match_numpy_layout() -> None:
    data = np.arange(64 + 24, dtype=np.uint8)
    view = Field("a", (2, 3), "|u1", 64).view(data, 4)
    assert view.shape == (4, 2, 3) and view.ravel().tolist() == list(range(64, 88))


def test_only_the_receiving_process_gives_a_buffer_back() -> None:
    """A process forked from the training process drops copies of its batches; that must
    not free buffers the training process still reads."""
    import os

    pool = SharedBatchPool()
    buffer = pool.take(64)
    buffer.lend()
    fd = os.open(f"/proc/{os.getpid()}/fd/{buffer.fd}", os.O_RDWR)
    shared_batches._give_back(fd, 1, pid=os.getpid() + 1)  # as if run in a forked child
    assert not buffer.free
    fd = os.open(f"/proc/{os.getpid()}/fd/{buffer.fd}", os.O_RDWR)
    shared_batches._give_back(fd, 1, pid=os.getpid())
    assert buffer.free


def test_a_batch_not_sent_keeps_its_buffer_and_a_changed_one_pickles_as_a_dict() -> None:
    pool = SharedBatchPool()
    fields = [Field("x", (3,), "<f4", 0)]
    buffer = pool.take(64)
    batch = SharedBatch(buffer, fields, 1, {}, ["x"])
    batch["x"][:] = 7
    assert isinstance(batch, dict) and not buffer.free  # written, waiting to be sent
    assert pool.take(64) is not buffer
    batch["y"] = "added in the worker"
    got = pickle.loads(pickle.dumps(batch))
    assert type(got) is dict and got["y"] == "added in the worker" and got["x"].tolist() == [[7.0, 7.0, 7.0]]
    del batch
    gc.collect()
    assert buffer.free  # never lent; nothing views it any more
