"""robostore.Dataset against what the real lerobot returned, on every backend."""

from __future__ import annotations

import io
import json
import multiprocessing
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from backends.pytest_plugin import backend_params, new_root, upload_folder
from fixture_data import DATA, FIXTURES, expected
from robostore import Dataset

DELTAS = {"video_basic": "delta_video.json", "image_basic": "delta_image.json", "multi_chunk": "delta_multi.json"}
FRAME_ATOL = 1 / 255 + 1e-6

OpenDataset = Callable[..., Dataset]


@pytest.fixture(scope="module", params=backend_params())
def open_dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> OpenDataset:
    """``open_dataset(name, **kwargs)``: a Dataset over fixture ``name`` on the parametrised backend.

    Each fixture is uploaded once per backend (the local one is read in place).
    """
    backend = request.param
    made: dict[str, tuple[str, dict]] = {}

    def open_(name: str, **kwargs: object) -> Dataset:
        if name not in made:
            if backend == "local":
                made[name] = (str(DATA / name), {})
            else:
                url, options = new_root(backend, request, tmp_path_factory.mktemp(name))
                upload_folder(DATA / name, url, options)
                made[name] = (url, options)
        url, options = made[name]
        return Dataset(url, storage_options=options, **kwargs)

    open_.backend = backend  # type: ignore[attr-defined]
    return open_


def delta_timestamps(name: str) -> dict[str, list[float]]:
    return json.loads((DATA / DELTAS[name]).read_text())


def assert_item(
    got: dict,
    npz: np.lib.npyio.NpzFile,
    keys: list[str],
    idx: int,
    cameras: list[str],
    json_values: dict[str, Any] | None = None,
) -> None:
    """``got`` equals lerobot's sample ``idx``: ``cameras`` within 1/255, the rest exactly;
    keys in ``json_values`` (values an npz cannot hold, e.g. language rows) equal those."""
    assert sorted(got) == sorted(keys), idx
    for key in keys:
        if json_values is not None and key in json_values:
            assert got[key] == json_values[key], (idx, key)
            continue
        want = npz[f"item/{idx}/{key}"]
        if key == "task":
            assert got[key] == str(want), (idx, key)
            continue
        value = got[key]
        assert isinstance(value, torch.Tensor), (idx, key)
        assert value.dtype == torch.from_numpy(want).dtype, (idx, key, value.dtype, want.dtype)
        assert tuple(value.shape) == want.shape, (idx, key, value.shape, want.shape)
        if key in cameras:
            np.testing.assert_allclose(value.numpy(), want, atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")
        else:
            np.testing.assert_array_equal(value.numpy(), want, err_msg=f"{idx} {key}")


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
def test_matches_lerobot(open_dataset: OpenDataset, name: str, delta: bool) -> None:
    meta, npz = expected(name, delta)
    ds = open_dataset(name, delta_timestamps=delta_timestamps(name) if delta else None)
    assert len(ds) == meta["len"] == ds.num_frames
    assert ds.num_episodes == meta["num_episodes"]
    assert ds.fps == meta["fps"]
    assert ds.delta_indices == meta["delta_indices"]
    for idx in meta["indices"]:
        assert_item(ds[idx], npz, meta["item_keys"][str(idx)], idx, meta["camera_keys"])


# ---------------------------------------------------------------------- second path


def _episodes(root: Path) -> list[dict]:
    rows = [r for f in sorted((root / "meta/episodes").rglob("*.parquet")) for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["episode_index"])


def _sequential_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of ``path`` decoded in order with PyAV: (times [N], uint8 [N, H, W, 3])."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pairs = [(float(f.pts * stream.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    return np.array([t for t, _ in pairs]), np.stack([a for _, a in pairs])


class _Reference:
    """Each sample computed independently: whole-file sequential decode, PIL for PNGs."""

    def __init__(self, name: str, deltas: dict[str, list[float]] | None) -> None:
        self.root = DATA / name
        self.info = json.loads((self.root / "meta/info.json").read_text())
        self.eps = _episodes(self.root)
        self.fps = self.info["fps"]
        self.offsets = {k: [round(d * self.fps) for d in v] for k, v in (deltas or {}).items()}
        self.data = pq.read_table(self.root / "data").sort_by("index").to_pylist()
        self.videos: dict[Path, tuple[np.ndarray, np.ndarray]] = {}

    def frames(self, key: str, ep: dict, timestamps: list[float]) -> np.ndarray:
        rel = self.info["video_path"].format(
            video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"], file_index=ep[f"videos/{key}/file_index"]
        )
        if rel not in self.videos:
            self.videos[rel] = _sequential_frames(self.root / rel)
        times, frames = self.videos[rel]
        picked = []
        for t in timestamps:
            j = int(np.argmin(np.abs(times - (ep[f"videos/{key}/from_timestamp"] + t))))
            assert abs(times[j] - (ep[f"videos/{key}/from_timestamp"] + t)) < 1e-4
            picked.append(frames[j])
        return np.stack(picked).transpose(0, 3, 1, 2).astype(np.float32) / 255

    def item(self, idx: int) -> dict[str, np.ndarray]:
        row = self.data[idx]
        ep = self.eps[row["episode_index"]]
        lo, hi = ep["dataset_from_index"], ep["dataset_to_index"]
        out = {}
        for key, feature in self.info["features"].items():
            offsets = self.offsets.get(key)
            rows = [self.data[min(max(idx + d, lo), hi - 1)] for d in (offsets or [0])]
            if feature["dtype"] == "video":
                value = self.frames(key, ep, [float(np.float32(r["timestamp"])) for r in rows])
            elif feature["dtype"] == "image":
                value = (
                    np.stack([np.asarray(Image.open(io.BytesIO(r[key]["bytes"])).convert("RGB")) for r in rows])
                    .transpose(0, 3, 1, 2)
                    .astype(np.float32)
                    / 255
                )
            else:
                value = np.array([r[key] for r in rows], dtype=feature["dtype"])
            out[key] = value if offsets is not None else value[0]
            if offsets is not None:
                out[f"{key}_is_pad"] = np.array([not lo <= idx + d < hi for d in offsets])
        return out


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("delta", [False, True], ids=["plain", "delta"])
def test_every_index_against_sequential_decode(name: str, delta: bool) -> None:
    deltas = delta_timestamps(name) if delta else None
    ds = Dataset(DATA / name, delta_timestamps=deltas)
    ref = _Reference(name, deltas)
    cameras = set(ds.meta.camera_keys)
    for idx in range(len(ds)):
        got = ds[idx]
        for key, want in ref.item(idx).items():
            value = got[key].numpy()
            assert value.shape == want.shape, (idx, key)
            if key in cameras:
                np.testing.assert_allclose(value, want, atol=FRAME_ATOL, rtol=0, err_msg=f"{idx} {key}")
            else:
                assert value.dtype == want.dtype, (idx, key)
                np.testing.assert_array_equal(value, want, err_msg=f"{idx} {key}")


# ---------------------------------------------------------------------- subsets, options


def test_episodes_subset_keeps_global_index(open_dataset: OpenDataset) -> None:
    meta, npz = expected("multi_chunk")
    full = open_dataset("multi_chunk")
    ds = open_dataset("multi_chunk", episodes=[3, 1])
    assert ds.episodes == [1, 3]
    assert ds.num_episodes == 2
    assert len(ds) == 25 + 40
    positions = {40: 0, 64: 24, 115: 25, 154: 64}
    for global_index, position in positions.items():
        item = ds[position]
        assert int(item["index"]) == global_index
        assert_item(item, npz, meta["item_keys"][str(global_index)], global_index, meta["camera_keys"])
        torch.testing.assert_close(item["observation.images.cam0"], full[global_index]["observation.images.cam0"])


def test_episodes_subset_deltas_clamp_to_episode(open_dataset: OpenDataset) -> None:
    # The neighbours of a subset's frame are those of the same global frame.
    meta, npz = expected("multi_chunk", delta=True)
    ds = open_dataset("multi_chunk", episodes=[2, 4], delta_timestamps=delta_timestamps("multi_chunk"))
    for global_index, position in {65: 0, 114: 49, 155: 50, 179: 74}.items():
        assert_item(ds[position], npz, meta["item_keys"][str(global_index)], global_index, meta["camera_keys"])


def test_return_uint8_and_transforms(open_dataset: OpenDataset) -> None:
    plain = open_dataset("video_basic")[45]
    raw = open_dataset("video_basic", return_uint8=True)[45]
    for key in ("observation.images.cam0", "observation.images.cam1"):
        assert raw[key].dtype == torch.uint8 and raw[key].shape == (3, 48, 64)
        torch.testing.assert_close(raw[key].float() / 255, plain[key])
    flipped = open_dataset("video_basic", image_transforms=lambda t: t.flip(-1))[45]
    torch.testing.assert_close(flipped["observation.images.cam0"], plain["observation.images.cam0"].flip(-1))
    images = open_dataset("image_basic", image_transforms=lambda t: t * 0)[3]
    assert float(images["observation.images.cam0"].abs().sum()) == 0


def test_negative_index_and_len(open_dataset: OpenDataset) -> None:
    ds = open_dataset("video_basic")
    assert int(ds[-1]["index"]) == 89
    assert int(ds[np.int64(3)]["index"]) == 3


def test_opening_reads_meta_only(open_dataset: OpenDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    from robostore.store import Store

    seen: list[str] = []
    for method in ("read", "read_many", "open", "read_range"):
        original = getattr(Store, method)

        def spy(self, path, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            seen.extend([path] if isinstance(path, str) else list(path))
            return _original(self, path, *args, **kwargs)

        monkeypatch.setattr(Store, method, spy)
    ds = open_dataset("multi_chunk", episodes=[2])
    assert seen and all(p.startswith("meta/") for p in seen)
    seen.clear()
    ds[0]
    assert [p for p in seen if p.startswith("data/")] == ["data/chunk-001/file-000.parquet"]
    assert not any(p.startswith("meta/") for p in seen)


# ---------------------------------------------------------------------- workers


def _direct(ds: Dataset, indices: list[int]) -> dict:
    return torch.utils.data.default_collate([ds[i] for i in indices])


def _assert_batches_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("context", "loaded"),
    [("fork", False), ("fork", True), ("spawn", False)],
    ids=["fork-lazy", "fork-loaded", "spawn-lazy"],  # spawn with loaded state: test_pickles_*
)
def test_dataloader_workers_match_direct(open_dataset: OpenDataset, context: str, loaded: bool) -> None:
    if context == "spawn" and open_dataset.backend == "memory":  # type: ignore[attr-defined]
        pytest.skip("memory:// lives in one process; spawned workers cannot see it")
    ds = open_dataset("video_basic", delta_timestamps=delta_timestamps("video_basic"))
    if loaded:
        ds.load()
        ds[5]  # readers open in the parent must not leak into the workers
    loader = torch.utils.data.DataLoader(
        ds, batch_size=7, num_workers=2, multiprocessing_context=multiprocessing.get_context(context)
    )
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == len(ds)
    for n, batch in enumerate(batches):
        _assert_batches_equal(batch, _direct(ds, list(range(n * 7, min(len(ds), n * 7 + 7)))))


def test_pickles_without_open_readers(open_dataset: OpenDataset) -> None:
    ds = open_dataset("image_basic", delta_timestamps=delta_timestamps("image_basic"))
    first = ds[14]
    clone = pickle.loads(pickle.dumps(ds))
    _assert_batches_equal(torch.utils.data.default_collate([clone[14]]), torch.utils.data.default_collate([first]))


def _record(url: str, features: dict, frames: list[list[dict]], **limits: object) -> None:
    from robostore import Recorder

    with Recorder.create(url, fps=30, features=features, **limits) as rec:
        for episode in frames:
            for frame in episode:
                rec.add_frame(frame)
            rec.save_episode()


def test_string_features_read_back_as_str(tmp_path: Path) -> None:
    """A string feature's value crashed ``ds[i]`` (torch.from_numpy of a numpy str_ array)."""
    features = {"note": {"dtype": "string", "shape": (1,), "names": None}}
    url = str(tmp_path / "ds")
    _record(url, features, [[{"note": f"n{i} é", "task": "t"} for i in range(3)]])
    assert [Dataset(url)[i]["note"] for i in range(3)] == ["n0 é", "n1 é", "n2 é"]


def test_row_groups_are_found_by_index_behind_an_image_column(tmp_path: Path) -> None:
    """Row groups were chosen by the statistics of the wrong parquet column when an image
    (struct: two leaf columns) came before ``index``: frames of later episodes were
    skipped and reading failed with CorruptDataset."""
    features = {
        "cam": {"dtype": "image", "shape": (8, 8, 3), "names": ["height", "width", "channels"]},
        "x": {"dtype": "float32", "shape": (1,), "names": None},
    }
    lengths = [3, 4, 2]
    frames = [
        [{"cam": np.full((8, 8, 3), 10 * e + i, np.uint8), "x": np.float32(e + i / 10), "task": "t"} for i in range(n)]
        for e, n in enumerate(lengths)
    ]
    url = str(tmp_path / "ds")
    _record(url, features, frames)
    assert pq.ParquetFile(tmp_path / "ds/data/chunk-000/file-000.parquet").num_row_groups == len(lengths)
    ds = Dataset(url, episodes=[1, 2], return_uint8=True)
    got = [(int(ds[i]["episode_index"]), float(ds[i]["x"]), int(ds[i]["cam"][0, 0, 0])) for i in range(len(ds))]
    want = [(e, float(np.float32(e + i / 10)), 10 * e + i) for e in (1, 2) for i in range(lengths[e])]
    assert got == want
