"""Property-based round trips: whatever is recorded reads back, value for value.

Hypothesis draws a schema (numeric features of every dtype as scalars, vectors and
matrices, optional string feature, 0-3 cameras of small random sizes as ``image`` or
``video``), episode lengths (1-frame episodes included) and file/chunk limits small
enough to force rollover. The recording is made with the Recorder, then read back with
the map-style Dataset, the StreamingDataset and through the FrameCache,
and validated: tabular values bit-exact, PNG images exact, video frames within the
near-lossless codec's error, cached frames equal to decoded ones bit for bit.

The default run draws a few examples; ``-m slow`` runs many more.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recording import Episode, Recording, record_episode
from robostore import Recorder
from robostore.meta import DatasetMeta
from robostore.torch import Dataset, StreamingDataset
from robostore.validate import validate
from roundtrip import check_dataset, check_sample, expected_positions

pytest.importorskip("av")

pytestmark = pytest.mark.timeout(900)

NUMERIC = ("float32", "float64", "int64", "int32", "bool")
SHAPES = st.one_of(st.just((1,)), st.tuples(st.integers(2, 5)), st.tuples(st.integers(1, 3), st.integers(1, 3)))
SIZES = st.sampled_from([100.0, 0.002, 0.005, 0.02])


@st.composite
def recordings(draw: st.DrawFn, max_episodes: int = 4, max_length: int = 6) -> Recording:
    """A random schema with random limits and episodes."""
    features: dict[str, dict[str, Any]] = {}
    for n in range(draw(st.integers(0, 4))):
        shape = draw(SHAPES)
        features[f"observation.f{n}"] = {"dtype": draw(st.sampled_from(NUMERIC)), "shape": shape, "names": None}
    if draw(st.booleans()) and not features:
        features["observation.state"] = {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]}
    if draw(st.integers(0, 5)) == 0:
        features["language"] = {"dtype": "string", "shape": (1,), "names": None}
    for n in range(draw(st.integers(0, 3))):
        h, w = draw(st.sampled_from([8, 16])), draw(st.sampled_from([8, 16, 24]))
        kind = draw(st.sampled_from(["video", "image"]))
        features[f"observation.images.cam{n}"] = {
            "dtype": kind,
            "shape": (h, w, 3),
            "names": ["height", "width", "channels"],
        }
    lengths = draw(st.lists(st.integers(1, max_length), min_size=1, max_size=max_episodes))
    tasks = draw(
        st.lists(
            st.sampled_from(["pick", "place", "push the red block", "ü"]), min_size=len(lengths), max_size=len(lengths)
        )
    )
    seeds = draw(st.lists(st.integers(0, 2**31), min_size=len(lengths), max_size=len(lengths)))
    return Recording(
        features=features,
        episodes=[Episode(n, t, s) for n, t, s in zip(lengths, tasks, seeds, strict=True)],
        chunks_size=draw(st.integers(1, 3)) if draw(st.booleans()) else 1000,
        data_files_size_in_mb=draw(SIZES),
        video_files_size_in_mb=draw(SIZES),
        use_videos=draw(st.integers(0, 5)) > 0,
    )


def record(url: str, rec: Recording) -> None:
    with Recorder.create(url, **rec.create_kwargs()) as recorder:
        for e, episode in enumerate(rec.episodes):
            assert record_episode(recorder, rec.features, episode) == e


def check_roundtrip(root: Path, rec: Recording, backend: str, episodes: list[int] | None) -> None:
    url = str(root / "ds") if backend == "local" else f"memory://props-{root.name}/ds"
    record(url, rec)
    report = validate(url)
    assert report.ok, report.problems
    meta = DatasetMeta.open(url)
    assert meta.total_episodes == len(rec.episodes)
    assert meta.total_frames == sum(e.length for e in rec.episodes)
    assert meta.info.chunks_size == rec.chunks_size
    if rec is ROLLOVER:
        assert any("chunk-001" in p for p in meta.data_files()) and any("chunk-001" in p for p in meta.video_files())

    check_dataset(Dataset(url, return_uint8=True), rec)
    if episodes is not None:
        check_dataset(Dataset(url, episodes=episodes, return_uint8=True), rec, episodes)
    check_streaming(url, rec, episodes)
    if meta.video_keys and backend == "local":
        check_frame_cache(url, root / "cache")


def check_streaming(url: str, rec: Recording, episodes: list[int] | None) -> None:
    """Streamed samples (shuffled) are the recorded frames, each exactly once."""
    want = {g: (e, i) for e, i, g in expected_positions(rec, episodes)}
    stream = StreamingDataset(url, episodes=episodes, shuffle=True, seed=3, shuffle_buffer=4, return_uint8=True)
    seen = set()
    for item in stream:
        g = int(item["index"])
        assert g in want and g not in seen, f"index {g} unexpected or repeated"
        seen.add(g)
        check_sample(item, rec, *want[g], g)
    assert seen == set(want)


def check_frame_cache(url: str, cache_dir: Path) -> None:
    """Frames served from the FrameCache equal the decoder's bit for bit, cold and warm."""
    from robostore.cache import FrameCache

    plain = Dataset(url, return_uint8=True)
    cached = Dataset(url, return_uint8=True, frame_cache=FrameCache(str(cache_dir), shard_frames=4))
    keys = plain.meta.video_keys
    order = np.random.default_rng(0).permutation(len(plain))
    for _ in range(2):  # fills, then hits
        for pos in order.tolist():
            a, b = plain[int(pos)], cached[int(pos)]
            for key in keys:
                assert np.array_equal(a[key].numpy(), b[key].numpy()), (
                    f"position {pos} {key}: cache differs from decoder"
                )


def run_property(rec: Recording, backend: str, subset: list[int] | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check_roundtrip(Path(tmp), rec, backend, subset)


@st.composite
def cases(draw: st.DrawFn, max_episodes: int, max_length: int) -> tuple[Recording, str, list[int] | None]:
    rec = draw(recordings(max_episodes, max_length))
    backend = draw(st.sampled_from(["local", "memory"]))
    subset = None
    if len(rec.episodes) > 1 and draw(st.booleans()):
        subset = sorted(draw(st.sets(st.integers(0, len(rec.episodes) - 1), min_size=1)))
    return rec, backend, subset


#: Every kind of feature, 1-frame episodes, and limits that roll data, video and
#: episodes files over across chunk folders: always run, whatever hypothesis draws.
ROLLOVER = Recording(
    features={
        "observation.state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        "action": {"dtype": "float64", "shape": (2, 2), "names": None},
        "count": {"dtype": "int32", "shape": (1,), "names": None},
        "flags": {"dtype": "bool", "shape": (4,), "names": None},
        "step": {"dtype": "int64", "shape": (1,), "names": None},
        "language": {"dtype": "string", "shape": (1,), "names": None},
        "observation.images.cam0": {"dtype": "video", "shape": (16, 24, 3), "names": ["height", "width", "channels"]},
        "observation.images.cam1": {"dtype": "image", "shape": (8, 16, 3), "names": ["height", "width", "channels"]},
        "observation.images.cam2": {"dtype": "video", "shape": (8, 8, 3), "names": ["height", "width", "channels"]},
    },
    episodes=[
        Episode(n, task, seed)
        for n, task, seed in [(1, "pick", 1), (5, "place", 2), (1, "ü", 3), (8, "pick", 4), (3, "place", 5)]
    ],
    chunks_size=2,
    data_files_size_in_mb=0.002,
    video_files_size_in_mb=0.002,
)

COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=25, **COMMON)
@given(cases(max_episodes=4, max_length=6))
@example((ROLLOVER, "local", [1, 3]))
@example((ROLLOVER, "memory", None))
def test_recorded_values_read_back(case: tuple[Recording, str, list[int] | None]) -> None:
    run_property(*case)


@pytest.mark.slow
@settings(max_examples=300, **COMMON)
@given(cases(max_episodes=7, max_length=25))
def test_recorded_values_read_back_many(case: tuple[Recording, str, list[int] | None]) -> None:
    run_property(*case)
