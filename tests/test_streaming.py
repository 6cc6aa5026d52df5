"""robostore.StreamingDataset: coverage, equality with Dataset, order, resumption, bad input."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pytest
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from backends.pytest_plugin import backend_params, upload_folder
from fixture_data import DATA, FIXTURES
from robostore import (
    CorruptDataset,
    Dataset,
    NotFound,
    RobostoreError,
    SchemaError,
    StreamingDataset,
)
from robostore.layout import episodes_file, tasks_table
from robostore.meta import DatasetMeta
from robostore.parquet import to_parquet_bytes
from robostore.schema.arrow import data_schema
from robostore.stats import aggregate_stats, compute_stats
from robostore.torch import sharding
from robostore.torch.shuffle import ShardPlan
from robostore.video import decode

pytestmark = pytest.mark.timeout(120)

DELTAS = {"video_basic": "delta_video.json", "image_basic": "delta_image.json", "multi_chunk": "delta_multi.json"}
UNEVEN = [7, 31, 2, 19, 1, 44, 12, 3, 25, 9, 16]  # frames per episode of the generated dataset
FORK = multiprocessing.get_context("fork")


def deltas(name: str) -> dict[str, list[float]]:
    return json.loads((DATA / DELTAS[name]).read_text())


# ---------------------------------------------------------------------- a generated dataset


def generate(root: Path, lengths: list[int], camera: bool = False, episodes_per_file: int = 4, fps: int = 30) -> str:
    """A LeRobot v3.0 dataset with episodes of ``lengths`` frames, several data (and video)
    files; with ``camera``, one 64x64 AV1 camera (GOP 2, as lerobot encodes)."""
    cam = "observation.images.top"
    features: dict[str, Any] = {"observation.state": {"dtype": "float32", "shape": [3], "names": None}}
    if camera:
        features[cam] = {"dtype": "video", "shape": [64, 64, 3], "names": ["height", "width", "channels"]}
    meta = DatasetMeta.create(str(root), fps=fps, features=features)
    info = meta.info
    tasks = ["reach", "grasp"]
    columns = (
        "episode_index",
        "tasks",
        "length",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
    )
    rows: dict[str, list[Any]] = {k: [] for k in columns}
    video_rows: dict[str, list[Any]] = {k: [] for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")}
    start = 0
    per_episode: list[dict[str, Any]] = []
    for file_index, first in enumerate(range(0, len(lengths), episodes_per_file)):
        group = list(range(first, min(len(lengths), first + episodes_per_file)))
        n = sum(lengths[e] for e in group)
        ep = np.concatenate([np.full(lengths[e], e) for e in group])
        fi = np.concatenate([np.arange(lengths[e]) for e in group])
        index = np.arange(start, start + n)
        state = np.stack([index, ep, fi], axis=1).astype(np.float32)
        per_episode += [{"observation.state": compute_stats(state[ep == e])} for e in group]
        columns = {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 3),
            "timestamp": pa.array((fi / fps).astype(np.float32)),
            "frame_index": pa.array(fi.astype(np.int64)),
            "episode_index": pa.array(ep.astype(np.int64)),
            "index": pa.array(index.astype(np.int64)),
            "task_index": pa.array((ep % 2).astype(np.int64)),
        }
        schema = data_schema(info.features)
        table = pa.table([columns[f.name] for f in schema], schema=schema)
        meta.store.write(info.data_file(0, file_index), to_parquet_bytes(table, row_group_size=16))
        if camera:
            _encode(root / info.video_file(cam, 0, file_index), [lengths[e] for e in group], fps)
        offset = 0.0
        for e in group:
            rows["episode_index"].append(e)
            rows["tasks"].append([tasks[e % 2]])
            rows["length"].append(lengths[e])
            rows["data/chunk_index"].append(0)
            rows["data/file_index"].append(file_index)
            rows["dataset_from_index"].append(start)
            rows["dataset_to_index"].append(start + lengths[e])
            video_rows["chunk_index"].append(0)
            video_rows["file_index"].append(file_index)
            video_rows["from_timestamp"].append(offset)
            video_rows["to_timestamp"].append(offset + lengths[e] / fps)
            offset += lengths[e] / fps
            start += lengths[e]
    if camera:
        rows.update({f"videos/{cam}/{k}": v for k, v in video_rows.items()})
    rows["meta/episodes/chunk_index"] = [0] * len(lengths)
    rows["meta/episodes/file_index"] = [0] * len(lengths)
    meta.store.write(episodes_file(0, 0), to_parquet_bytes(pa.table(rows)))
    meta.store.write("meta/tasks.parquet", to_parquet_bytes(tasks_table(tasks)))
    meta.stats = aggregate_stats(per_episode)
    meta.write_stats()
    meta.info = info.model_copy(
        update={
            "total_episodes": len(lengths),
            "total_frames": start,
            "total_tasks": 2,
            "splits": {"train": f"0:{len(lengths)}"},
        }
    )
    meta.write_info()
    return str(root)


def _encode(path: Path, lengths: list[int], fps: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = Fraction(1, 15360)
    ticks = int(1 / (fps * time_base))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=fps, options={"g": "2", "crf": "40", "preset": "12"})
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = time_base
        for i in range(sum(lengths)):
            img = np.zeros((64, 64, 3), np.uint8)
            img[..., 0] = (i * 5) % 256
            img[: (i % 64) + 1, :, 1] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i * ticks, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def uneven(tmp_path_factory: pytest.TempPathFactory) -> str:
    return generate(tmp_path_factory.mktemp("uneven") / "ds", UNEVEN)


@pytest.fixture(scope="module")
def uneven_video(tmp_path_factory: pytest.TempPathFactory) -> str:
    return generate(tmp_path_factory.mktemp("uneven_video") / "ds", UNEVEN[:6], camera=True, episodes_per_file=3)


def dataset_url(name: str, uneven: str, uneven_video: str) -> str:
    return {"uneven": uneven, "uneven_video": uneven_video}.get(name) or str(DATA / name)


# ---------------------------------------------------------------------- helpers


def indices(sds: StreamingDataset, workers: int = 0, batch_size: int = 5) -> list[int]:
    """Global frame indices one process streams (through a DataLoader when ``workers``)."""
    if workers == 0:
        return [int(item["index"]) for item in sds]
    loader = DataLoader(sds, batch_size=batch_size, num_workers=workers, multiprocessing_context=FORK, timeout=300)
    return [int(i) for batch in loader for i in batch["index"]]


def per_rank(monkeypatch: pytest.MonkeyPatch, world: int, run: Callable[[], list[int]]) -> list[list[int]]:
    out = []
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        out.append(run())
    return out


def all_indices(url: str, episodes: list[int] | None = None) -> list[int]:
    return sorted(_global_indices(url, episodes))


def _global_indices(url: str, episodes: list[int] | None) -> Iterator[int]:
    index = Dataset(url, episodes=episodes)._index
    for lo, hi in zip(index.dataset_from.tolist(), index.dataset_to.tolist(), strict=True):
        yield from range(lo, hi)


def assert_same_item(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype, key
            assert torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


# ---------------------------------------------------------------------- coverage


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("name", [*FIXTURES, "uneven"])
def test_every_frame_exactly_once(
    monkeypatch: pytest.MonkeyPatch, uneven: str, uneven_video: str, name: str, world: int, workers: int
) -> None:
    url = dataset_url(name, uneven, uneven_video)
    sds = StreamingDataset(url, shuffle_buffer=8, seed=3)
    sds.set_epoch(1)
    ranks = per_rank(monkeypatch, world, lambda: indices(sds, workers))
    streamed = [i for r in ranks for i in r]
    assert sorted(streamed) == all_indices(url)
    # Balanced by frames: shards differ by less than the longest episode.
    longest = int(np.diff(sds._index.starts).max())
    assert max(map(len, ranks)) - min(map(len, ranks)) <= longest * max(1, workers)


def test_split_by_frames_balances_frames_not_episodes() -> None:
    lengths = np.array([100, 1, 1, 1, 1, 1, 1, 97, 50, 50])
    order = sharding.permutation(len(lengths), seed=0, epoch=0)
    shards = sharding.split_by_frames(lengths, order, 2)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(lengths)))
    loads = [int(lengths[s].sum()) for s in shards]
    assert abs(loads[0] - loads[1]) <= 2, loads  # by episode count it would be 5 vs 5 episodes
    position = {int(s): i for i, s in enumerate(order)}
    for shard in shards:  # each keeps the epoch's order
        assert [position[int(s)] for s in shard] == sorted(position[int(s)] for s in shard)


@pytest.mark.parametrize("mode", ["pad", "drop"])
@pytest.mark.parametrize(("world", "workers"), [(2, 0), (3, 2), (4, 1)])
def test_equal_length(monkeypatch: pytest.MonkeyPatch, uneven: str, mode: str, world: int, workers: int) -> None:
    sds = StreamingDataset(uneven, shuffle_buffer=4, equal_length=mode)
    ranks = per_rank(monkeypatch, world, lambda: indices(sds, workers))
    assert len({len(r) for r in ranks}) == 1, [len(r) for r in ranks]
    streamed = Counter(i for r in ranks for i in r)
    if mode == "pad":
        assert set(streamed) == set(all_indices(uneven))
    else:
        assert max(streamed.values()) == 1


def test_episodes_subset(uneven_video: str) -> None:
    chosen = [4, 1, 2]
    sds = StreamingDataset(uneven_video, episodes=chosen, delta_timestamps={"observation.state": [-1 / 30, 0]})
    ds = Dataset(uneven_video, episodes=chosen, delta_timestamps={"observation.state": [-1 / 30, 0]})
    items = list(sds)
    assert sorted(int(i["index"]) for i in items) == all_indices(uneven_video, chosen)
    assert {int(i["episode_index"]) for i in items} == set(chosen)
    position = {g: p for p, g in enumerate(_global_indices(uneven_video, chosen))}
    for item in items:
        assert_same_item(item, ds[position[int(item["index"])]])
    with pytest.raises(SchemaError, match="do not exist"):
        StreamingDataset(uneven_video, episodes=[99])


# ---------------------------------------------------------------------- samples


@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
@pytest.mark.parametrize("name", [*FIXTURES, "uneven_video"])
def test_same_samples_as_map_dataset(uneven: str, uneven_video: str, name: str, delta: bool) -> None:
    url = dataset_url(name, uneven, uneven_video)
    dt = None
    if delta:
        dt = (
            deltas(name)
            if name in DELTAS
            else {"observation.state": [-2 / 30, 0], "observation.images.top": [-1 / 30, 0, 1 / 30]}
        )
    ds = Dataset(url, delta_timestamps=dt)
    items = list(StreamingDataset(url, delta_timestamps=dt, shuffle_buffer=10, interleave=3))
    assert sorted(int(i["index"]) for i in items) == list(range(len(ds)))
    for item in items:
        assert_same_item(item, ds[int(item["index"])])


def test_uint8_and_transforms(uneven_video: str) -> None:
    cam = "observation.images.top"
    plain = {int(i["index"]): i for i in StreamingDataset(uneven_video, return_uint8=True)}
    flipped = StreamingDataset(uneven_video, image_transforms=lambda t: t.flip(-1))
    for item in flipped:
        raw = plain[int(item["index"])][cam]
        assert raw.dtype == torch.uint8
        assert torch.equal(item[cam], raw.to(torch.float32).div(255).flip(-1))


def test_each_episode_decoded_once_in_order(monkeypatch: pytest.MonkeyPatch, uneven_video: str) -> None:
    readers: list[decode.VideoReader] = []
    real_init = decode.VideoReader.__init__

    def spy(self: decode.VideoReader, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        readers.append(self)

    monkeypatch.setattr(decode.VideoReader, "__init__", spy)
    dt = {"observation.images.top": [-2 / 30, 0, 1 / 30]}
    items = list(StreamingDataset(uneven_video, delta_timestamps=dt, interleave=3, shuffle_buffer=5))
    episodes = len(StreamingDataset(uneven_video).episodes)
    assert len(items) == sum(UNEVEN[:6])
    assert len(readers) == episodes  # one reader per episode
    assert all(r.seeks == 1 for r in readers), [r.seeks for r in readers]
    # Each frame decoded once, plus at most a GOP before the episode's first frame.
    assert sum(r.decoded for r in readers) <= len(items) + 2 * episodes


# ---------------------------------------------------------------------- order


def test_order_is_seeded_by_seed_and_epoch(uneven: str) -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sds = StreamingDataset(uneven, seed=seed, shuffle_buffer=16)
        sds.set_epoch(epoch)
        return indices(sds)

    first = order(0, 0)
    assert first == order(0, 0)
    assert first != order(0, 1)
    assert first != order(1, 0)
    assert sorted(first) == sorted(order(0, 1))
    assert first != sorted(first)


def test_no_shuffle_is_dataset_order(uneven: str) -> None:
    sds = StreamingDataset(uneven, shuffle=False)
    assert indices(sds) == all_indices(uneven)
    sds.set_epoch(5)
    assert indices(sds) == all_indices(uneven)


def test_interleave_mixes_episodes(uneven: str) -> None:
    items = list(StreamingDataset(uneven, interleave=4, shuffle_buffer=1))
    first = [int(i["episode_index"]) for i in items[:20]]
    assert len(set(first)) >= 3
    per_episode: dict[int, list[int]] = {}
    for item in items:  # with no buffer, each episode's frames still come in order
        per_episode.setdefault(int(item["episode_index"]), []).append(int(item["frame_index"]))
    assert all(frames == sorted(frames) for frames in per_episode.values())


# ---------------------------------------------------------------------- resumption


@pytest.mark.parametrize("k", [0, 1, 37, 119, 175, 180])
def test_resume_plain(k: int) -> None:
    url = str(DATA / "multi_chunk")
    dt = deltas("multi_chunk")
    full = [int(i["index"]) for i in StreamingDataset(url, delta_timestamps=dt, shuffle_buffer=20, seed=7)]
    sds = StreamingDataset(url, delta_timestamps=dt, shuffle_buffer=20, seed=7)
    stream = iter(sds)
    head = [int(next(stream)["index"]) for _ in range(k)]
    state = sds.state_dict()
    assert state["yielded"] == k
    again = StreamingDataset(url, delta_timestamps=dt, shuffle_buffer=20, seed=7)
    again.load_state_dict(json.loads(json.dumps(state)))  # states survive JSON
    rest = list(again)
    assert head + [int(i["index"]) for i in rest] == full
    reference = Dataset(url, delta_timestamps=dt)
    for item in rest[:5]:
        assert_same_item(item, reference[int(item["index"])])


def test_resume_after_epoch_change_restores_saved_epoch(uneven: str) -> None:
    sds = StreamingDataset(uneven, shuffle_buffer=8)
    sds.set_epoch(3)
    full = indices(sds)
    stream = iter(sds)
    head = [int(next(stream)["index"]) for _ in range(10)]
    state = sds.state_dict()
    again = StreamingDataset(uneven, shuffle_buffer=8)
    again.load_state_dict(state)
    assert again.epoch == 3
    assert head + indices(again) == full


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("k", [1, 6])
def test_resume_under_stateful_dataloader(uneven_video: str, workers: int, k: int) -> None:
    def loader() -> StatefulDataLoader:
        sds = StreamingDataset(uneven_video, shuffle_buffer=6, interleave=2, seed=1)
        sds.set_epoch(2)
        kwargs: dict[str, Any] = {"multiprocessing_context": FORK, "timeout": 60} if workers else {}
        return StatefulDataLoader(sds, batch_size=4, num_workers=workers, **kwargs)

    def flat(batches: list[dict[str, Any]]) -> list[int]:
        return [int(i) for b in batches for i in b["index"]]

    full = flat(list(loader()))
    first = loader()
    it = iter(first)
    head = [next(it) for _ in range(k)]
    state = first.state_dict()
    del it
    second = loader()
    second.load_state_dict(state)
    rest = list(second)
    assert flat(head) + flat(rest) == full
    assert sorted(full) == all_indices(uneven_video)


def test_resume_with_other_settings_is_refused(monkeypatch: pytest.MonkeyPatch, uneven: str) -> None:
    sds = StreamingDataset(uneven)
    next(iter(sds))
    state = sds.state_dict()
    with pytest.raises(RobostoreError, match="other settings"):
        StreamingDataset(uneven, seed=1).load_state_dict(state)
    with pytest.raises(RobostoreError, match="not a state"):
        StreamingDataset(uneven).load_state_dict({"yielded": 3})
    monkeypatch.setenv("WORLD_SIZE", "2")
    other = StreamingDataset(uneven)
    other.load_state_dict(state)
    with pytest.raises(RobostoreError, match="shard"):
        iter(other)


def test_plan_replay_rereads_buffered_frames() -> None:
    lengths = np.array([5, 3, 8, 1, 6])
    plan = ShardPlan([2, 0, 4, 1, 3], lengths, shuffle=True, interleave=2, buffer=4, seed=11)
    steps = list(plan.steps())
    assert sorted(s.out for s in steps) == sorted((e, f) for e in range(5) for f in range(lengths[e]))
    for done in range(len(steps) + 1):
        tail = list(plan.steps(done))
        assert [s.out for s in tail] == [s.out for s in steps[done:]]
        if tail:  # whatever is yielded was read by then
            read = {r for s in steps[:done] for r in s.reads} | set(tail[0].reads)
            assert tail[0].out in read


# ---------------------------------------------------------------------- batches


def batches_of(
    sds: StreamingDataset, workers: int, loader: type[DataLoader] = DataLoader, **kwargs: Any
) -> list[dict[str, Any]]:
    extra: dict[str, Any] = {"multiprocessing_context": FORK, "timeout": 60} if workers else {}
    return list(loader(sds, num_workers=workers, **extra, **kwargs))


def assert_same_batches(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert type(g) is dict and list(g) == list(w)  # a plain dict, keys in the samples' order
        assert_same_item(g, w)


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
@pytest.mark.parametrize("uint8", [False, True], ids=["float", "uint8"])
@pytest.mark.parametrize("drop_last", [False, True], ids=["all", "drop_last"])
def test_batches_equal_dataloader_collation(
    uneven_video: str, workers: int, delta: bool, uint8: bool, drop_last: bool
) -> None:
    dt = {"observation.state": [-2 / 30, 0], "observation.images.top": [-1 / 30, 0]} if delta else None

    def make(**kwargs: Any) -> StreamingDataset:
        return StreamingDataset(
            uneven_video, delta_timestamps=dt, return_uint8=uint8, shuffle_buffer=9, seed=4, **kwargs
        )

    want = batches_of(make(), workers, batch_size=5, drop_last=drop_last)
    got = batches_of(make(batch_size=5, drop_last=drop_last), workers, batch_size=None)
    assert_same_batches(got, want)
    streamed = sorted(int(i) for b in got for i in b["index"])
    if drop_last:
        assert all(len(b["index"]) == 5 for b in got)
    else:
        assert streamed == all_indices(uneven_video)


def test_batches_with_transforms(uneven_video: str) -> None:
    flip = {"image_transforms": lambda t: t.flip(-1), "shuffle_buffer": 7}
    want = batches_of(StreamingDataset(uneven_video, **flip), 2, batch_size=4)
    got = batches_of(StreamingDataset(uneven_video, batch_size=4, **flip), 2, batch_size=None)
    assert_same_batches(got, want)


def test_kept_batches_are_not_overwritten(uneven_video: str) -> None:
    """Workers reuse a batch's shared memory only after the training process let go of it."""
    sds = StreamingDataset(uneven_video, batch_size=3, shuffle_buffer=5)
    kept = batches_of(sds, 1, batch_size=None, prefetch_factor=4)  # every batch alive at once
    copies = [
        {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()}
        for b in batches_of(sds, 1, batch_size=None)
    ]
    assert_same_batches(kept, copies)
    for batch in kept:  # writable, like collated tensors
        batch["observation.state"] += 1


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_resume_under_stateful_dataloader(uneven_video: str, workers: int) -> None:
    def loader() -> StatefulDataLoader:
        sds = StreamingDataset(uneven_video, shuffle_buffer=6, seed=1, batch_size=4)
        kwargs: dict[str, Any] = {"multiprocessing_context": FORK, "timeout": 60} if workers else {}
        return StatefulDataLoader(sds, batch_size=None, num_workers=workers, **kwargs)

    def flat(batches: list[dict[str, Any]]) -> list[int]:
        return [int(i) for b in batches for i in b["index"]]

    full = flat(list(loader()))
    first = loader()
    it = iter(first)
    head = [next(it) for _ in range(5)]
    state = first.state_dict()
    del it
    second = loader()
    second.load_state_dict(state)
    assert flat(head) + flat(list(second)) == full
    assert sorted(full) == all_indices(uneven_video)


def test_batches_need_one_layout(uneven_video: str) -> None:
    sizes = iter(range(10**6))

    def crop(t: torch.Tensor) -> torch.Tensor:  # another size every sample
        return t[..., : 64 - next(sizes) % 3, :]

    with pytest.raises(SchemaError, match=r"observation\.images\.top.*batch_size=None"):
        list(StreamingDataset(uneven_video, batch_size=4, image_transforms=crop))


# ---------------------------------------------------------------------- backends


@pytest.mark.parametrize("backend", backend_params())
def test_every_backend(backend: str, backend_url: Callable[..., tuple[str, dict]]) -> None:
    url, options = backend_url(backend)
    upload_folder(DATA / "multi_chunk", url, options)
    dt = deltas("multi_chunk")
    ds = Dataset(str(DATA / "multi_chunk"), delta_timestamps=dt)
    sds = StreamingDataset(url, delta_timestamps=dt, storage_options=options, shuffle_buffer=16, prefetch=2)
    stream = iter(sds)
    head = [next(stream) for _ in range(50)]
    again = StreamingDataset(url, delta_timestamps=dt, storage_options=options, shuffle_buffer=16, prefetch=2)
    again.load_state_dict(sds.state_dict())
    items = head + list(again)
    assert sorted(int(i["index"]) for i in items) == list(range(len(ds)))
    for item in items:
        assert_same_item(item, ds[int(item["index"])])


# ---------------------------------------------------------------------- bad input


def test_bad_arguments(uneven: str) -> None:
    for kwargs in (
        {"shuffle_buffer": 0},
        {"interleave": 0},
        {"prefetch": -1},
        {"equal_length": "trim"},
        {"batch_size": 0},
    ):
        with pytest.raises(SchemaError):
            StreamingDataset(uneven, **kwargs)
    with pytest.raises(SchemaError, match="not a feature"):
        StreamingDataset(uneven, delta_timestamps={"nope": [0]})
    with pytest.raises(NotFound):
        StreamingDataset(str(Path(uneven).parent / "missing"))


def _rewrite_episodes(root: Path, change: Callable[[dict[str, list[Any]]], None]) -> None:
    import pyarrow.parquet as pq

    path = root / episodes_file(0, 0)
    rows = pq.read_table(path).to_pydict()
    change(rows)
    path.write_bytes(to_parquet_bytes(pa.table(rows)))


def test_inconsistent_episodes_table_fails_at_open(tmp_path: Path) -> None:
    root = Path(generate(tmp_path / "ds", [4, 5, 6]))
    _rewrite_episodes(root, lambda rows: rows["length"].__setitem__(1, 9))
    with pytest.raises(CorruptDataset, match="length"):
        StreamingDataset(str(root))


@pytest.mark.parametrize("workers", [0, 2])
def test_data_file_not_matching_episodes_table(tmp_path: Path, workers: int) -> None:
    import pyarrow.parquet as pq

    root = Path(generate(tmp_path / "ds", [4, 5, 6]))
    data = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    data.write_bytes(to_parquet_bytes(table.slice(0, table.num_rows - 1)))  # episode 2 loses a frame
    with pytest.raises(CorruptDataset, match=r"data/chunk-000/file-000\.parquet"):
        indices(StreamingDataset(str(root)), workers)


@pytest.mark.parametrize("backend", backend_params(("local", "memory")))
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("missing", ["data", "video"])
def test_missing_file_is_named(
    backend: str, backend_url: Callable[..., tuple[str, dict]], uneven_video: str, workers: int, missing: str
) -> None:
    if backend == "memory" and workers:
        pytest.skip("memory:// is per process; forked workers see a copy, which works, but that tests nothing new")
    url, options = backend_url(backend)
    upload_folder(uneven_video, url, options)
    from robostore.backends import open_store

    gone = (
        "data/chunk-000/file-001.parquet"
        if missing == "data"
        else "videos/observation.images.top/chunk-000/file-001.mp4"
    )
    open_store(url, options).delete(gone)
    sds = StreamingDataset(url, storage_options=options)
    with pytest.raises(NotFound, match=gone.replace(".", r"\.")):
        indices(sds, workers)


def test_video_layout_reads_the_index_while_the_container_is_open(tmp_path: Path) -> None:
    """The packet index was read after the container closed (a use-after-free): byte
    positions came back as garbage and streaming from a remote store failed with
    ``read_range: end < start``."""
    from robostore.backends import open_store
    from robostore.torch.prefetch import VideoLayout

    local = DATA / "video_basic"
    path = DatasetMeta.open(str(local)).video_files()[0]
    with av.open(str(local / path)) as container:
        want = [(e.pos, e.size) for e in container.streams.video[0].index_entries]
    url = f"memory://layout-{tmp_path.name}/ds"
    upload_folder(local, url)
    store = open_store(url)
    for _ in range(20):  # freed memory gets reused quickly; one read was not always enough
        layout = VideoLayout.read(store, path)
        junk = [bytes(4096) for _ in range(64)]  # noqa: F841  (reuses freed memory)
        assert list(zip(layout.starts.tolist(), (layout.ends - layout.starts).tolist(), strict=True)) == want
