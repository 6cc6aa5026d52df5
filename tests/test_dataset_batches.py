"""Whole batches of robostore.Dataset (``__getitems__``, ``ds[a:b]``, ``ds[list]``) against
DataLoader's default collation of the per-sample dicts (the path tested against lerobot)."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from backends.pytest_plugin import BACKENDS, backend_params, new_root, upload_folder
from fixture_data import DATA, FIXTURES
from robostore import Dataset
from robostore.torch.batch_assembly import SampleRows

DELTAS = {"video_basic": "delta_video.json", "image_basic": "delta_image.json", "multi_chunk": "delta_multi.json"}


def deltas(name: str) -> dict[str, list[float]]:
    return json.loads((DATA / DELTAS[name]).read_text())


def per_sample(ds: Dataset, indices: list[int]) -> dict[str, Any]:
    return default_collate([ds[i] for i in indices])


def assert_same_batch(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    assert type(got) is dict
    assert list(got) == list(want)  # same keys, same order
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert isinstance(got[key], torch.Tensor), key
            assert got[key].dtype == value.dtype and got[key].shape == value.shape, (
                key,
                got[key].dtype,
                got[key].shape,
            )
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


def batches_of(n: int, seed: int, size: int = 9) -> list[list[int]]:
    """A shuffled epoch cut into batches, plus the edges of the dataset."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    return [order[i : i + size] for i in range(0, n, size)] + [[0, n - 1, 0, 1], [n - 1]]


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
@pytest.mark.parametrize("uint8", [False, True], ids=["float32", "uint8"])
def test_batches_equal_collated_samples(name: str, delta: bool, uint8: bool) -> None:
    ds = Dataset(str(DATA / name), delta_timestamps=deltas(name) if delta else None, return_uint8=uint8)
    single = Dataset(str(DATA / name), delta_timestamps=deltas(name) if delta else None, return_uint8=uint8)
    for indices in batches_of(len(ds), seed=len(name)):
        assert_same_batch(ds[indices], per_sample(single, indices))


@pytest.mark.parametrize("name", ["v21_video", "v21_image"])
def test_batches_of_v21_datasets(name: str) -> None:
    """LeRobot v2.1 datasets (read in place: one mp4 per episode) batch the same way."""
    delta = deltas(name.removeprefix("v21_") + "_basic")
    ds = Dataset(str(DATA / name), delta_timestamps=delta)
    for indices in batches_of(len(ds), seed=7, size=12):
        assert_same_batch(ds[indices], per_sample(ds, indices))


@pytest.mark.parametrize("backend", backend_params(tuple(b for b in BACKENDS if b != "local")))
def test_batches_on_every_backend(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url, options = new_root(backend, request, tmp_path)
    upload_folder(DATA / "multi_chunk", url, options)
    ds = Dataset(url, storage_options=options, delta_timestamps=deltas("multi_chunk"))
    local = Dataset(str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"))
    for indices in batches_of(len(ds), seed=3, size=32)[:3]:
        assert_same_batch(ds[indices], per_sample(local, indices))


def test_episode_subsets_keep_their_neighbours() -> None:
    ds = Dataset(str(DATA / "multi_chunk"), episodes=[4, 1, 2], delta_timestamps=deltas("multi_chunk"))
    for indices in batches_of(len(ds), seed=5, size=16):
        assert_same_batch(ds[indices], per_sample(ds, indices))


@pytest.mark.parametrize("name", ["video_basic", "image_basic"])
def test_transforms_run_per_sample(name: str) -> None:
    seen: list[tuple[int, ...]] = []

    def crop_and_shift(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape))
        return t[..., 2:-3, 1:].flip(-1) * 0.5 + 0.25

    ds = Dataset(str(DATA / name), delta_timestamps=deltas(name), image_transforms=crop_and_shift)
    indices = [7, 3, 29, 3]
    want = per_sample(ds, indices)
    per_sample_calls = len(seen)
    seen.clear()
    assert_same_batch(ds[indices], want)
    assert len(seen) == per_sample_calls  # once per sample and camera, on [T, 3, H, W] as before
    uint8 = Dataset(str(DATA / name), return_uint8=True, image_transforms=lambda t: t[:, ::2, ::2].contiguous())
    assert_same_batch(uint8[indices], per_sample(uint8, indices))


def test_slices_lists_and_index_types() -> None:
    ds = Dataset(str(DATA / "video_basic"), delta_timestamps=deltas("video_basic"))
    n = len(ds)
    assert_same_batch(ds[3:11], per_sample(ds, list(range(3, 11))))
    assert_same_batch(ds[n - 4 :: 2], per_sample(ds, [n - 4, n - 2]))
    assert_same_batch(ds[[-1, 5, 5]], per_sample(ds, [n - 1, 5, 5]))
    assert_same_batch(ds[np.array([2, 1])], per_sample(ds, [2, 1]))
    assert_same_batch(ds[torch.tensor([8, 0])], per_sample(ds, [8, 0]))
    with pytest.raises(IndexError, match="out of range"):
        ds[[0, n]]
    with pytest.raises(IndexError, match="empty"):
        ds[5:5]
    with pytest.raises(TypeError, match="integers"):
        ds[[0.5, 1.5]]
    with pytest.raises(TypeError, match="integers"):
        ds["index"]


def test_custom_collate_gets_the_samples() -> None:
    ds = Dataset(str(DATA / "image_basic"), delta_timestamps=deltas("image_basic"))
    rows = ds.__getitems__([4, 9])
    assert isinstance(rows, SampleRows) and len(rows) == 2
    for row, i in zip(rows, [4, 9], strict=True):
        assert_same_batch(dict(row), ds[i])
    loader = DataLoader(ds, batch_size=3, collate_fn=lambda samples: [dict(s) for s in samples])
    first = next(iter(loader))
    for i, sample in enumerate(first):
        assert_same_batch(sample, ds[i])
    # Samples of different batches collate one by one.
    mixed = [ds.__getitems__([1, 2])[1], ds.__getitems__([6])[0]]
    assert_same_batch(default_collate(mixed), per_sample(ds, [2, 6]))


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("workers", "context", "uint8"),
    [(0, None, False), (2, "fork", False), (2, "fork", True), (2, "spawn", True)],
    ids=["main", "fork-float32", "fork-uint8", "spawn-uint8"],
)
def test_dataloader_batches_equal_collated_samples(workers: int, context: str | None, uint8: bool) -> None:
    ds = Dataset(str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"), return_uint8=uint8)
    order = np.random.default_rng(1).permutation(len(ds)).tolist()
    loader = DataLoader(
        ds,
        batch_size=16,
        sampler=order,
        num_workers=workers,
        multiprocessing_context=None if context is None else multiprocessing.get_context(context),
        persistent_workers=workers > 0,
    )
    reference = Dataset(str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"), return_uint8=uint8)
    for epoch in range(2):  # the second epoch reuses the workers' returned buffers
        kept = []
        for n, batch in enumerate(loader):
            assert_same_batch(batch, per_sample(reference, order[n * 16 : n * 16 + 16]))
            # From a worker, the batch arrives in the worker's reused buffer, not in the
            # fresh shared memory torch gives each tensor it sends.
            assert not batch["index"].is_shared() if workers else True
            kept.append(batch)
        assert sum(len(b["index"]) for b in kept) == len(ds)
        for n, batch in enumerate(kept):  # batches kept by the training loop are not overwritten
            assert batch["index"].tolist() == order[n * 16 : n * 16 + 16], epoch


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", [0, 2])
def test_batches_through_the_frame_cache(tmp_path: Path, workers: int) -> None:
    from robostore.cache import FrameCache

    cache = FrameCache(tmp_path / "frames")
    plain = Dataset(str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"), return_uint8=True)
    ds = Dataset(
        str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"), return_uint8=True, frame_cache=cache
    )
    order = np.random.default_rng(2).permutation(len(ds)).tolist()
    for _ in ("cold", "warm"):
        loader = DataLoader(
            ds, batch_size=16, sampler=order, num_workers=workers, multiprocessing_context="fork" if workers else None
        )
        for n, batch in enumerate(loader):
            assert_same_batch(batch, per_sample(plain, order[n * 16 : n * 16 + 16]))
    if workers:  # the workers' counters are written when they flush; their shards are there
        assert any(p.is_file() and "/c/" in str(p) for p in (tmp_path / "frames").rglob("*"))
    else:
        cache.stats.flush()
        counters = cache.info().counters
        assert counters["hits"] > 0.4 * (counters["hits"] + counters["misses"])


def _changed(samples: list) -> dict:
    batch = default_collate(samples)
    batch["twice"] = batch["index"] * 2
    return batch


def _taken(samples: list) -> dict:
    batch = default_collate(samples)
    return {"index": batch["index"], "state": batch["observation.state"]}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("collate", [_changed, _taken], ids=["changed", "taken"])
def test_collate_fns_that_change_default_collation_in_workers(collate: Any) -> None:
    """In a worker, default_collate's batch is a dict over the worker's buffer: changed,
    or its tensors moved into another container, it still reaches the training process
    whole, and the buffer is not reused while anything still needs it."""
    ds = Dataset(str(DATA / "multi_chunk"), delta_timestamps=deltas("multi_chunk"), return_uint8=True)
    order = np.random.default_rng(4).permutation(len(ds)).tolist()
    loader = DataLoader(
        ds,
        batch_size=8,
        sampler=order,
        num_workers=2,
        multiprocessing_context="fork",
        collate_fn=collate,
        persistent_workers=True,
    )
    for _ in range(2):
        kept = list(loader)
        for n, batch in enumerate(kept):
            want = per_sample(ds, order[n * 8 : n * 8 + 8])
            assert torch.equal(batch["index"], want["index"])
            if "state" in batch:
                assert torch.equal(batch["state"], want["observation.state"])
            else:
                assert torch.equal(batch["twice"], want["index"] * 2)
                assert torch.equal(batch["observation.images.cam0"], want["observation.images.cam0"])


def test_string_features_collate_as_default_collate_does(tmp_path: Path) -> None:
    from test_dataset import _record

    url = str(tmp_path / "ds")
    features = {"note": {"dtype": "string", "shape": (1,), "names": None}}
    _record(url, features, [[{"note": f"n{i} é", "task": "t"} for i in range(4)]])
    for delta in (None, {"note": [0.0, 1 / 30]}):
        ds = Dataset(url, delta_timestamps=delta)
        assert_same_batch(ds[[3, 0, 1]], per_sample(ds, [3, 0, 1]))


@pytest.mark.parametrize(
    ("variant", "fixture"),
    [
        ("channel_first", "video_basic"),
        ("channel_first", "image_basic"),
        ("misfiled_episodes", "multi_chunk"),
        ("list_columns", "video_basic"),
    ],
)
def test_batches_of_dataset_variants(tmp_path: Path, variant: str, fixture: str) -> None:
    """Variants lerobot reads (channel-first cameras, misfiled episodes, list columns) batch
    as their samples collate."""
    import shutil
    import warnings

    import variants

    root = tmp_path / variant
    shutil.copytree(DATA / fixture, root)
    getattr(variants, variant)(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset(str(root), delta_timestamps=deltas(fixture))
        for indices in batches_of(len(ds), seed=9, size=16)[:3]:
            assert_same_batch(ds[indices], per_sample(ds, indices))
