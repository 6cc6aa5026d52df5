"""The Zarr frame cache: bit-exact frames, staleness, concurrency, corruption, eviction."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("av")

from fixture_data import copy_fixture, fixture_path
from record_helpers import FEATURES, FPS, LOSSLESS, decode_episode, record_episode
from robostore.cache import FrameCache
from robostore.cache.layout import COMPRESSIONS, shard_key
from robostore.errors import RobostoreError, SchemaError
from robostore.meta import DatasetMeta
from robostore.video.decode import VideoReader

VIDEO_FIXTURES = ("video_basic", "multi_chunk")


def decoded(meta: DatasetMeta, key: str) -> np.ndarray:
    """Every frame of ``key`` by global index, decoded the way readers decode (frames_at)."""
    out = np.zeros((meta.total_frames, *meta.features[key].shape), np.uint8)
    for episode in meta.episode_indices.tolist():
        span = meta.video_span(episode, key)
        start, stop = meta.frame_range(episode)
        with VideoReader(meta.store.full_path(span.path)) as reader:
            out[start:stop] = reader.frames_at(span.from_timestamp + np.arange(stop - start) / meta.fps)
    return out


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, str], np.ndarray]:
    refs = {}
    for name in VIDEO_FIXTURES:
        meta = DatasetMeta.open(str(fixture_path(name)))
        for key in meta.video_keys:
            refs[name, key] = decoded(meta, key)
    return refs


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_cached_frames_equal_decoded_bit_for_bit(tmp_path: Path, name: str, compression: str, reference: dict) -> None:
    cache = FrameCache(str(tmp_path / "cache"), shard_frames=16, compression=compression)
    frames = cache.for_dataset(str(fixture_path(name)))
    order = np.random.default_rng(0).permutation(frames.meta.total_frames)
    for key in frames.video_keys:
        want = reference[name, key]
        cold = np.stack([frames.get(key, [i])[0] for i in order])  # random access fills shard by shard
        assert np.array_equal(cold, want[order])
        warm = frames.get(key, np.arange(len(want)), fill=False)  # everything is cached now
        assert warm is not None and np.array_equal(warm, want)
        window = [5, 6, 7, 7, 3]  # a delta window with a clamped (repeated) frame
        assert np.array_equal(frames.get(key, window, fill=False), want[window])
    info = cache.info()
    (entry,) = info.datasets
    assert entry.fingerprint == frames.fingerprint
    assert all(a.coverage == 1.0 and a.shards_cached == a.layout.num_shards for a in entry.arrays)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_arrays_are_zarr_v3_that_zarr_reads(tmp_path: Path, compression: str, reference: dict) -> None:
    cache = FrameCache(str(tmp_path / "cache"), shard_frames=32, compression=compression)
    frames = cache.for_dataset(str(fixture_path("video_basic")))
    key = frames.video_keys[0]
    frames.fill(key, range(frames.layout(key).num_shards))
    array = frames.zarr_array(key)
    assert array.shape == reference["video_basic", key].shape and array.dtype == np.uint8
    assert array.shards == (32, 48, 64, 3) and array.chunks == (1, 48, 64, 3)
    assert np.array_equal(array[:], reference["video_basic", key])


def test_video_file_view_maps_timestamps_to_frames(tmp_path: Path, reference: dict) -> None:
    meta = DatasetMeta.open(str(fixture_path("multi_chunk")))
    view = FrameCache(str(tmp_path / "cache"), shard_frames=8).for_dataset(meta).files()
    key = meta.video_keys[0]
    for episode in meta.episode_indices.tolist():
        span = meta.video_span(episode, key)
        start, _ = meta.frame_range(episode)
        got = view.get(span.path, [span.from_timestamp + 3 / meta.fps, span.from_timestamp])
        # Channels first, as the torch readers take them.
        assert np.array_equal(got, reference["multi_chunk", key][[start + 3, start]].transpose(0, 3, 1, 2))
    span = meta.video_span(0, key)
    assert view.get(span.path, [span.from_timestamp + 0.5 / meta.fps]) is None  # between two frames
    assert view.get("videos/none.mp4", [0.0]) is None


def test_put_writes_whole_shards_only(tmp_path: Path, reference: dict) -> None:
    frames = FrameCache(str(tmp_path / "cache"), shard_frames=8).for_dataset(str(fixture_path("video_basic")))
    key = frames.video_keys[0]
    want = reference["video_basic", key]
    assert frames.put(key, 5, want[5:30]) == 2  # shards 1 (8..15) and 2 (16..23); 0 and 3 are partial
    assert frames.cached_shards(key) == {1, 2}
    assert np.array_equal(frames.get(key, range(8, 24), fill=False), want[8:24])
    assert frames.get(key, [4], fill=False) is None
    assert frames.put(key, 88, want[88:]) == 1  # the short last shard (88..89)
    # Channels first: the chunks' own layout, in and out.
    chw = want.transpose(0, 3, 1, 2)
    assert frames.put(key, 24, chw[24:32], channels_first=True) == 1
    assert np.array_equal(frames.get(key, [31, 8, 24], fill=False, channels_first=True), chw[[31, 8, 24]])
    assert np.array_equal(frames.get(key, range(24, 32), fill=False), want[24:32])
    with pytest.raises(SchemaError):
        frames.put(key, 40, want[40:48], channels_first=True)  # [n, H, W, C] is not [n, C, H, W]


def test_changed_dataset_gets_new_fingerprint_and_no_stale_frames(tmp_path: Path, reference: dict) -> None:
    root = copy_fixture("multi_chunk", tmp_path / "ds")
    cache = FrameCache(str(tmp_path / "cache"), shard_frames=8)
    before = cache.for_dataset(str(root))
    key = before.video_keys[0]
    assert np.array_equal(before.get(key, range(40)), reference["multi_chunk", key][:40])
    # Rewrite the video of episode 0 with the (also 40 frames long) video of episode 3.
    meta = before.meta
    ep0, ep3 = meta.video_span(0, key), meta.video_span(3, key)
    assert ep0.from_timestamp == ep3.from_timestamp == 0
    shutil.copyfile(root / ep3.path, root / ep0.path)
    after = cache.for_dataset(str(root))
    assert after.fingerprint != before.fingerprint
    start3, stop3 = meta.frame_range(3)
    assert np.array_equal(after.get(key, range(40)), reference["multi_chunk", key][start3:stop3])
    # Any change to info.json (e.g. an appended episode bumps total_frames) is a new state too.
    info = json.loads((root / "meta/info.json").read_text())
    info["robot_type"] = "other"
    (root / "meta/info.json").write_text(json.dumps(info))
    assert cache.for_dataset(str(root)).fingerprint not in (before.fingerprint, after.fingerprint)


def _fill_worker(cache_url: str, dataset: str, seed: int) -> None:
    frames = FrameCache(cache_url, shard_frames=8).for_dataset(dataset)
    for key in frames.video_keys:
        for i in np.random.default_rng(seed).permutation(frames.meta.total_frames):
            frames.get(key, [i])  # None while the other process fills that shard
    frames.close()


def test_two_processes_fill_one_cache(tmp_path: Path, reference: dict) -> None:
    cache_url, dataset = str(tmp_path / "cache"), str(fixture_path("video_basic"))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_fill_worker, args=(cache_url, dataset, seed)) for seed in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    frames = FrameCache(cache_url).for_dataset(dataset)
    for key in frames.video_keys:
        got = frames.get(key, np.arange(frames.meta.total_frames), fill=False)
        assert got is not None and np.array_equal(got, reference["video_basic", key])
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and ".robostore-tmp-" in p.name]
    assert leftovers == [] and not any((tmp_path / "cache" / "claims").rglob("*~*"))
    counters = frames.cache.info().counters
    assert counters["hits"] + counters["misses"] >= 2 * 2 * 90
    assert counters["filled_shards"] >= 2 * 12  # every shard at least once (a race may fill one twice)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_corrupted_chunk_is_detected_redecoded_and_not_served(
    tmp_path: Path, compression: str, reference: dict
) -> None:
    cache_dir = tmp_path / "cache"
    frames = FrameCache(str(cache_dir), shard_frames=16, compression=compression).for_dataset(
        str(fixture_path("video_basic"))
    )
    key = frames.video_keys[0]
    want = reference["video_basic", key]
    frames.fill(key, [1])
    shard = cache_dir / shard_key(frames.fingerprint, key, 1)
    data = bytearray(shard.read_bytes())
    index = np.frombuffer(bytes(data[: 16 * 16]), "<u8").reshape(-1, 2)
    offset, length = (int(x) for x in index[4])  # frame 16 + 4 = 20
    data[offset + length // 2] ^= 0xFF
    shard.write_bytes(bytes(data))

    fresh = FrameCache(str(cache_dir)).for_dataset(str(fixture_path("video_basic")))
    assert fresh.get(key, [20], fill=False) is None  # detected, never served
    assert fresh.get(key, [18, 19, 20, 21], fill=False) is None  # also inside a run of chunks
    got = fresh.get(key, [19, 20, 21])
    assert np.array_equal(got, want[19:22])  # re-decoded
    assert shard.read_bytes() != bytes(data)  # and rewritten
    fresh.close()
    assert fresh.cache.info().counters["corrupt_chunks"] >= 1
    again = FrameCache(str(cache_dir)).for_dataset(str(fixture_path("video_basic")))
    assert np.array_equal(again.get(key, range(16, 32), fill=False), want[16:32])

    # A damaged shard index is caught the same way.
    data = bytearray(shard.read_bytes())
    data[3] ^= 0x01
    shard.write_bytes(bytes(data))
    again = FrameCache(str(cache_dir)).for_dataset(str(fixture_path("video_basic")))
    assert again.get(key, [17], fill=False) is None
    assert np.array_equal(again.get(key, [17]), want[[17]])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_truncated_shard_is_detected_and_refilled(tmp_path: Path, compression: str, reference: dict) -> None:
    cache_dir = tmp_path / "cache"
    dataset = str(fixture_path("video_basic"))
    frames = FrameCache(str(cache_dir), shard_frames=16, compression=compression).for_dataset(dataset)
    key = frames.video_keys[0]
    frames.fill(key, [0])
    shard = cache_dir / shard_key(frames.fingerprint, key, 0)
    shard.write_bytes(shard.read_bytes()[:-1000])  # a torn write: the last frames are cut

    fresh = FrameCache(str(cache_dir)).for_dataset(dataset)
    assert fresh.get(key, [15], fill=False) is None  # the last chunk is short: never served
    assert fresh.get(key, [14, 15], fill=False) is None  # nor inside a run
    want = reference["video_basic", key]
    assert np.array_equal(fresh.get(key, range(16)), want[:16])  # decoded again, rewritten
    assert np.array_equal(FrameCache(str(cache_dir)).for_dataset(dataset).get(key, range(16), fill=False), want[:16])


def test_max_bytes_evicts_least_recently_used_shards(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    frames = FrameCache(str(cache_dir), shard_frames=8).for_dataset(str(fixture_path("video_basic")))
    key = frames.video_keys[0]
    frames.fill(key, range(4))
    paths = [cache_dir / shard_key(frames.fingerprint, key, s) for s in range(4)]
    shard_size = max(p.stat().st_size for p in paths)
    for age, path in zip((400, 300, 200, 100), paths, strict=True):  # shard 0 oldest ... shard 3 newest
        os.utime(path, (path.stat().st_mtime - age,) * 2)

    limited = FrameCache(str(cache_dir), max_bytes=int(3.5 * shard_size)).for_dataset(str(fixture_path("video_basic")))
    assert limited.get(key, [0], fill=False) is not None  # shard 0 becomes the most recently used
    limited.fill(key, [4])  # 5 shards > 3.5: evict down to 90 % -> the two least recently used go
    present = limited.cached_shards(key)
    assert present == {0, 3, 4}
    assert sum(p.stat().st_size for p in cache_dir.rglob("*") if "/c/" in str(p) and p.is_file()) <= 3.5 * shard_size
    limited.close()
    assert limited.cache.info().counters["evicted_shards"] == 2


def test_existing_arrays_keep_their_compression(tmp_path: Path, reference: dict) -> None:
    dataset = str(fixture_path("video_basic"))
    lz4 = FrameCache(str(tmp_path / "cache"), shard_frames=16, compression="lz4").for_dataset(dataset)
    key = lz4.video_keys[0]
    lz4.fill(key, [0])
    # Another process configured for uncompressed arrays reads (and extends) the lz4 array.
    other = FrameCache(str(tmp_path / "cache"), shard_frames=16).for_dataset(dataset)
    assert other.layout(key).compression == "lz4"
    assert np.array_equal(other.get(key, range(32)), reference["video_basic", key][:32])
    assert np.array_equal(other.get(key, range(32), fill=False), reference["video_basic", key][:32])
    with pytest.raises(SchemaError, match="compression"):
        FrameCache(str(tmp_path / "cache"), compression="zip")


def test_max_bytes_is_for_local_caches_only() -> None:
    with pytest.raises(RobostoreError, match="local caches only"):
        FrameCache("memory://frames-max", max_bytes=1 << 20)


def test_cache_on_memory_filesystem(reference: dict) -> None:
    frames = FrameCache("memory://frame-cache-test", shard_frames=16).for_dataset(str(fixture_path("video_basic")))
    key = frames.video_keys[1]
    assert np.array_equal(frames.get(key, range(90)), reference["video_basic", key])
    assert np.array_equal(frames.get(key, range(90), fill=False), reference["video_basic", key])
    assert np.array_equal(frames.zarr_array(key)[:], reference["video_basic", key])
    assert frames.cache.clear() > 0
    # (frames keeps the shards it filled last in memory: look with a fresh view)
    assert frames.cache.for_dataset(frames.meta).get(key, [0], fill=False) is None


def test_clear_refuses_a_folder_that_is_not_a_cache(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(RobostoreError, match="not a robostore frame cache"):
        FrameCache(str(tmp_path)).clear()
    assert (tmp_path / "notes.txt").exists()


def test_warm_fills_the_chosen_episodes_in_parallel(tmp_path: Path, reference: dict) -> None:
    cache = FrameCache(str(tmp_path / "cache"), shard_frames=8)
    dataset = str(fixture_path("multi_chunk"))
    key = "observation.images.cam0"
    report = cache.warm(dataset, episodes=[1], workers=1, progress=False)
    assert (report.shards, report.filled) == (4, 4)  # frames 40..64 -> shards 5..8
    frames = cache.for_dataset(dataset)
    assert frames.cached_shards(key) == {5, 6, 7, 8}
    report = cache.warm(dataset, workers=2, progress=False)
    assert (report.shards, report.already_cached, report.filled, report.skipped) == (23, 4, 19, 0)
    assert np.array_equal(frames.get(key, range(180), fill=False), reference["multi_chunk", key])
    assert cache.warm(dataset, workers=2, progress=False).filled == 0
    with pytest.raises(RobostoreError, match="do not exist"):
        cache.warm(dataset, episodes=[7], progress=False)


def test_cli_cache_warm_info_clear(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from robostore.cli import app

    runner = CliRunner()
    cache_dir, dataset = str(tmp_path / "cache"), str(fixture_path("video_basic"))
    result = runner.invoke(
        app,
        [
            "cache",
            "warm",
            dataset,
            "--cache",
            cache_dir,
            "--episodes",
            "0,2",
            "--workers",
            "1",
            "--no-progress",
            "--compression",
            "lz4",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["cache", "info", cache_dir, "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    (dataset_info,) = info["datasets"]
    assert dataset_info["name"] == "video_basic" and dataset_info["total_frames"] == 90
    assert [a["frames_cached"] for a in dataset_info["arrays"]] == [90, 90]  # 0..29 and 50..89 cover every shard
    assert [a["compression"] for a in dataset_info["arrays"]] == ["lz4", "lz4"]
    text = runner.invoke(app, ["cache", "info", cache_dir]).output
    assert "90/90 frames (100.0 %)" in text and "hit rate" in text
    result = runner.invoke(app, ["cache", "clear", cache_dir, "--yes"])
    assert result.exit_code == 0 and "deleted" in result.output
    assert json.loads(runner.invoke(app, ["cache", "info", cache_dir, "--json"]).output)["datasets"] == []
    for bad in ("x", "5-3"):  # one strict parser for every command (robostore.selection)
        result = runner.invoke(app, ["cache", "warm", dataset, "--cache", cache_dir, "--episodes", bad])
        assert result.exit_code == 2 and "--episodes" in result.output, result.output


def test_import_robostore_does_not_import_the_cache() -> None:
    code = (
        "import sys, robostore, robostore.cli; assert 'zarr' not in sys.modules and 'numcodecs' not in sys.modules; "
        "from robostore.cache import FrameCache; assert robostore.FrameCache is FrameCache"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_map_style_dataset_with_cache_equals_without(tmp_path: Path, name: str) -> None:
    torch = pytest.importorskip("torch")
    import robostore

    url = str(fixture_path(name))
    cache = robostore.FrameCache(str(tmp_path / "cache"), shard_frames=16)
    deltas = {key: [-2 / 30, 0.0, 1 / 30] for key in DatasetMeta.open(url).video_keys}
    plain = robostore.Dataset(url, delta_timestamps=deltas, return_uint8=True)
    cached = robostore.Dataset(url, delta_timestamps=deltas, return_uint8=True, frame_cache=cache)
    order = [int(i) for i in np.random.default_rng(0).permutation(len(plain))]
    for _epoch in range(2):  # cold (filling), then warm
        for i in order:
            want, got = plain[i], cached[i]
            for key in deltas:
                assert torch.equal(want[key], got[key]) and torch.equal(want[key + "_is_pad"], got[key + "_is_pad"])
    cache.stats.flush()
    counters = cache.info().counters
    assert counters["filled_shards"] == sum(-(-len(plain) // 16) for _ in deltas)
    assert counters["hits"] > 0.9 * (counters["hits"] + counters["misses"])


@pytest.mark.parametrize("name", VIDEO_FIXTURES)
def test_streaming_dataset_with_cache_equals_without(tmp_path: Path, name: str) -> None:
    torch = pytest.importorskip("torch")
    import robostore

    url = str(fixture_path(name))
    cache = robostore.FrameCache(str(tmp_path / "cache"), shard_frames=16)
    keys = DatasetMeta.open(url).video_keys
    plain = {int(s["index"]): s for s in robostore.StreamingDataset(url, shuffle=False, return_uint8=True)}
    cached = robostore.StreamingDataset(url, seed=3, return_uint8=True, frame_cache=cache)
    for epoch in range(2):  # cold (filling), then warm
        cached.set_epoch(epoch)
        seen = 0
        for sample in cached:
            want = plain[int(sample["index"])]
            assert all(torch.equal(want[key], sample[key]) for key in keys)
            seen += 1
        assert seen == len(plain)
    cache.stats.flush()
    counters = cache.info().counters
    assert counters["filled_shards"] == len(keys) * -(-len(plain) // 16)
    assert counters["hits"] > 0.5 * (counters["hits"] + counters["misses"])


def test_dataset_in_dataloader_workers_fills_and_reads_the_cache(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import robostore

    url = str(fixture_path("video_basic"))
    cache = robostore.FrameCache(str(tmp_path / "cache"), shard_frames=8)
    plain = robostore.Dataset(url)
    cached = robostore.Dataset(url, frame_cache=cache)
    for _ in range(2):
        loader = torch.utils.data.DataLoader(cached, batch_size=8, shuffle=True, num_workers=2)
        for batch in loader:
            for j, i in enumerate(batch["index"].tolist()):
                want = plain[i]
                for key in ("observation.images.cam0", "observation.images.cam1"):
                    assert torch.equal(batch[key][j], want[key])
    frames = cache.for_dataset(url)
    assert all(frames.cached_shards(k) == set(range(12)) for k in frames.video_keys)


def test_shared_cache_on_s3(backend_url, reference: dict) -> None:
    from backends.pytest_plugin import upload_folder

    dataset_url, dataset_options = backend_url("s3")
    upload_folder(fixture_path("video_basic"), dataset_url, dataset_options)
    cache_url, cache_options = backend_url("s3")
    cache = FrameCache(cache_url, cache_options, shard_frames=16, compression="lz4")
    report = cache.warm(dataset_url, episodes=[0], workers=2, storage_options=dataset_options, progress=False)
    assert report.filled == 2 * 2  # frames 0..29: shards 0 and 1, two cameras
    frames = cache.for_dataset(dataset_url, dataset_options)
    for key in frames.video_keys:
        assert np.array_equal(frames.get(key, range(90)), reference["video_basic", key])
        assert np.array_equal(frames.get(key, range(90), fill=False), reference["video_basic", key])
    assert np.array_equal(frames.zarr_array(frames.video_keys[0])[:], reference["video_basic", frames.video_keys[0]])
    # A second machine (a new cache object, same bucket) reads what the first filled.
    other = FrameCache(cache_url, cache_options).for_dataset(dataset_url, dataset_options)
    assert other.fingerprint == frames.fingerprint
    assert np.array_equal(
        other.get(frames.video_keys[1], [89, 0], fill=False), reference["video_basic", frames.video_keys[1]][[89, 0]]
    )
    frames.close()
    info = cache.info()
    assert [a.coverage for a in info.datasets[0].arrays] == [1.0, 1.0] and info.counters["filled_shards"] == 12
    assert cache.clear() > 0 and cache.info().datasets == []


def test_appending_an_episode_with_the_recorder_is_a_new_state(tmp_path: Path) -> None:
    from robostore import Recorder

    url = str(tmp_path / "ds")
    key = "observation.images.front"
    with Recorder.create(url, fps=FPS, features=FEATURES, video=LOSSLESS) as rec:
        record_episode(rec, 0, 12)
        record_episode(rec, 1, 7)
    cache = FrameCache(str(tmp_path / "cache"), shard_frames=8)
    before = cache.for_dataset(url)
    want = np.concatenate([decode_episode(url, e, key) for e in (0, 1)])
    assert np.array_equal(before.get(key, range(19)), want)

    with Recorder.resume(url, video=LOSSLESS) as rec:
        record_episode(rec, 2, 9, "place")
    after = cache.for_dataset(url)
    assert after.fingerprint != before.fingerprint and after.layout(key).num_frames == 28
    want = np.concatenate([decode_episode(url, e, key) for e in (0, 1, 2)])
    assert after.get(key, range(28), fill=False) is None  # nothing of the new state is cached yet
    assert np.array_equal(after.get(key, range(28)), want)
