"""Reading, streaming, mirroring and recording through a faulty network (S3 on loopback).

Two halves:

* **Faults that retries absorb** (latency, TCP resets, a bandwidth cap): Dataset
  reads, StreamingDataset epochs and mirror() through :class:`FaultProxy` complete with
  the same data as without faults.
* **A server that stops answering** (the proxy's ``stall``): with short client timeouts
  in the storage options, each of Dataset, StreamingDataset, mirror() and the Recorder's
  background publisher ends with a typed :class:`StoreError` in bounded time, never a
  hang, and a failed upload is never silently dropped. Each such case waits out real
  timeouts (s3fs retries a timed-out read 5 times), so only the Recorder's runs by
  default; the rest are marked slow.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import robostore
from backends.pytest_plugin import upload_folder
from faultproxy import FaultProxy
from recording import Episode, Recording, record_episode
from robostore import Recorder
from robostore.backends import open_store
from robostore.errors import StoreError
from robostore.meta import DatasetMeta
from robostore.mirror import MANIFEST_PATH
from robostore.torch import Dataset, StreamingDataset
from robostore.validate import validate
from roundtrip import check_dataset

pytest.importorskip("av")
pytestmark = [pytest.mark.remote, pytest.mark.timeout(300)]

DATA = Path(__file__).parent / "data"
#: Client timeouts for the "stops answering" cases: 2 s of silence, one attempt.
SHORT = {"connect_timeout": 2, "read_timeout": 2, "retries": {"max_attempts": 1}}
#: What "bounded" means: s3fs still retries a timed-out call a few times by itself.
BOUND_S = 30.0

FEATURES: dict[str, dict[str, Any]] = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": None},
    "observation.images.front": {"dtype": "video", "shape": [16, 24, 3], "names": ["height", "width", "channels"]},
    "observation.images.wrist": {"dtype": "image", "shape": [8, 8, 3], "names": ["height", "width", "channels"]},
}


def via(proxy: FaultProxy, options: dict[str, Any], **config: Any) -> dict[str, Any]:
    """``options`` with the endpoint behind ``proxy`` (and botocore ``config`` merged in)."""
    out = {**options, "endpoint_url": proxy.url}
    if config:
        out["config_kwargs"] = {**(options.get("config_kwargs") or {}), **config}
    return out


def silent(proxy: FaultProxy, options: dict[str, Any]) -> dict[str, Any]:
    """Options for the "stops answering" cases: short botocore timeouts, one attempt."""
    return via(proxy, options, **SHORT)


def samples(ds: Any) -> dict[int, dict[str, Any]]:
    """Every sample of a dataset (map-style or iterable), by global index."""
    items = ds if isinstance(ds, StreamingDataset) else (ds[i] for i in range(len(ds)))
    return {int(item["index"]): item for item in items}


def assert_same(got: dict[int, dict[str, Any]], want: dict[int, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    for index, item in want.items():
        for key, value in item.items():
            other = got[index][key]
            if isinstance(value, torch.Tensor):
                assert torch.equal(other, value), f"index {index} {key}"
            else:
                assert other == value, f"index {index} {key}"


def hashes(url: str, options: dict[str, Any]) -> dict[str, str]:
    with open_store(url, options) as store:
        return {
            p: hashlib.sha256(b).hexdigest() for p, b in store.read_many(store.list()).items() if p != MANIFEST_PATH
        }


@pytest.fixture
def s3_dataset(backend_url: Callable[..., tuple[str, dict[str, Any]]]) -> tuple[str, dict[str, Any]]:
    """tests/data/multi_chunk (rolled-over data and video files) on S3."""
    url, options = backend_url("s3")
    upload_folder(DATA / "multi_chunk", url, options)
    return url, options


def bounded(what: str, call: Callable[[], Any], answered_s: float = 0.0) -> StoreError:
    """Run ``call``; it must raise a StoreError within :data:`BOUND_S`, plus ten times
    ``answered_s`` (how long the same call took while the server answered, measured just
    before: a loaded machine stretches both, so the bound scales with it). Returns the error."""
    bound = BOUND_S + 10 * answered_s
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        call()
    elapsed = time.monotonic() - start
    assert elapsed < bound, f"{what}: StoreError after {elapsed:.1f} s (bound {bound:.1f} s)"
    return caught.value


# ---------------------------------------------------------------------- faults retries absorb
FAULTS: dict[str, dict[str, Any]] = {
    "latency": {"latency": 0.01},
    "bandwidth": {"bandwidth": 4 * 2**20},
    "resets": {"reset_every": 96 * 1024},
}


def configure(proxy: FaultProxy, faults: dict[str, Any]) -> None:
    for name, value in faults.items():
        setattr(proxy, name, value)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_dataset_and_streaming_read_correct_data_through_faults(
    fault: str, s3_dataset: tuple[str, dict[str, Any]]
) -> None:
    url, options = s3_dataset
    want = samples(Dataset(str(DATA / "multi_chunk")))
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        configure(proxy, FAULTS[fault])
        faulty = via(proxy, options, retries={"max_attempts": 5, "mode": "standard"})
        assert_same(samples(Dataset(url, storage_options=faulty)), want)
        assert_same(samples(StreamingDataset(url, storage_options=faulty, seed=1, shuffle_buffer=8)), want)
        if fault == "resets":
            assert proxy.resets >= 1, "no connection was reset: the fault was not exercised"


@pytest.mark.parametrize("fault", list(FAULTS))
def test_mirror_copies_correct_data_through_faults(fault: str, backend_url: Callable[..., Any]) -> None:
    dst, options = backend_url("s3")
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        configure(proxy, FAULTS[fault])
        faulty = via(proxy, options, retries={"max_attempts": 5, "mode": "standard"})
        report = robostore.mirror(str(DATA / "multi_chunk"), dst, dst_options=faulty, progress=False)
        assert report.ok, report.failed
        back = robostore.mirror(dst, f"memory://fault-back-{fault}-{id(proxy)}/ds", src_options=faulty, progress=False)
        assert back.ok, back.failed
    assert hashes(dst, options) == hashes(str(DATA / "multi_chunk"), {})
    assert validate(dst, options).ok


def test_recording_through_faults_publishes_every_episode(backend_url: Callable[..., Any], tmp_path: Path) -> None:
    url, options = backend_url("s3")
    rec = Recording(
        FEATURES,
        [Episode(n, "pick", 40 + n) for n in (3, 1, 6, 2)],
        data_files_size_in_mb=0.004,
        video_files_size_in_mb=0.004,
    )
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        proxy.latency, proxy.bandwidth, proxy.reset_every = 0.005, 2 * 2**20, 64 * 1024
        faulty = via(proxy, options, retries={"max_attempts": 5, "mode": "standard"})
        with Recorder.create(url, storage_options=faulty, staging_dir=tmp_path, **rec.create_kwargs()) as recorder:
            for episode in rec.episodes:
                record_episode(recorder, rec.features, episode)
    assert validate(url, options).ok
    check_dataset(Dataset(url, storage_options=options, return_uint8=True), rec)


# ---------------------------------------------------------------------- a server that stops answering
def test_s3_upload_to_a_silent_server_fails_within_its_deadline(
    backend_url: Callable[..., Any], tmp_path: Path
) -> None:
    """botocore PUTs with ``Expect: 100-continue`` and aiohttp waits for the 100 with no
    timeout: writes to a silent server hung forever whatever ``read_timeout`` said."""
    url, options = backend_url("s3")
    local = tmp_path / "blob"
    local.write_bytes(b"x" * 5000)
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        store = open_store(url, silent(proxy, options))
        start = time.monotonic()
        store.write("before", b"ok")
        answered_s = time.monotonic() - start
        proxy.stall = True
        deadline = store.upload_deadline(5000)  # type: ignore[attr-defined]
        assert deadline < BOUND_S
        for data in (b"y" * 5000, local):
            error = bounded("Store.write on a silent server", lambda data=data: store.write("blob", data), answered_s)
            assert "blob" in str(error) and "did not finish" in str(error)


@pytest.mark.slow
def test_dataset_open_and_read_fail_typed_and_bounded(s3_dataset: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_dataset
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        short = silent(proxy, options)
        ds = Dataset(url, storage_options=short)  # opens while the server answers
        proxy.stall = True
        bounded("Dataset(...) on a silent server", lambda: Dataset(url, storage_options=short))
        bounded("ds[i] on a silent server", lambda: ds[len(ds) - 1])
        proxy.stall = False
        assert int(ds[len(ds) - 1]["index"]) == len(ds) - 1  # and it recovers


@pytest.mark.slow
def test_streaming_fails_typed_and_bounded(s3_dataset: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_dataset
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        stream = StreamingDataset(url, storage_options=silent(proxy, options), seed=0)
        proxy.stall = True
        bounded("StreamingDataset iteration on a silent server", lambda: next(iter(stream)))


@pytest.mark.slow
def test_streaming_stall_mid_epoch_fails_typed_and_bounded(s3_dataset: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_dataset
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        stream = StreamingDataset(url, storage_options=silent(proxy, options), seed=0, prefetch=1, interleave=1)
        it = iter(stream)
        next(it)
        proxy.stall = True
        bounded("StreamingDataset mid-epoch on a silent server", lambda: [None for _ in it])


@pytest.mark.slow
@pytest.mark.parametrize("side", ["source", "destination"])
def test_mirror_fails_typed_and_bounded(side: str, s3_dataset: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_dataset
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        short = silent(proxy, options)
        proxy.stall = True
        if side == "source":

            def call():
                return robostore.mirror(url, f"memory://fault-stall-{id(proxy)}/ds", src_options=short, progress=False)
        else:

            def call():
                return robostore.mirror(str(DATA / "multi_chunk"), url + "-copy", dst_options=short, progress=False)

        bounded(f"mirror with a silent {side}", call)


def stalled_after_one_episode(
    url: str, options: dict, proxy: FaultProxy, tmp_path: Path, rec: Recording
) -> tuple[Recorder, float]:
    """A recorder through ``proxy`` whose first episode is published and whose second is
    recorded after the server went silent, and how long the first flush took."""
    recorder = Recorder.create(url, storage_options=silent(proxy, options), staging_dir=tmp_path, **rec.create_kwargs())
    record_episode(recorder, rec.features, rec.episodes[0])
    start = time.monotonic()
    recorder.flush()
    flushed_s = time.monotonic() - start
    proxy.stall = True
    record_episode(recorder, rec.features, rec.episodes[1])
    return recorder, flushed_s


def test_recorder_surfaces_a_stalled_upload_and_keeps_it(backend_url: Callable[..., Any], tmp_path: Path) -> None:
    """flush() raises a StoreError in bounded time; the episode is kept and published once
    the server answers again."""
    url, options = backend_url("s3")
    rec = Recording(FEATURES, [Episode(n, "pick", n) for n in (2, 3)])
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        recorder, flushed_s = stalled_after_one_episode(url, options, proxy, tmp_path, rec)
        bounded("Recorder.flush on a silent server", recorder.flush, flushed_s)
        assert DatasetMeta.open(url, options).total_episodes == 1
        proxy.stall = False
        recorder.close()
    assert validate(url, options).ok
    check_dataset(Dataset(url, storage_options=options, return_uint8=True), rec)


@pytest.mark.slow
def test_recorder_close_on_a_silent_server_fails_typed_and_bounded(
    backend_url: Callable[..., Any], tmp_path: Path
) -> None:
    """close() tries the failed publish once more, then releases the lease: two bounded
    waits on the silent server, then a StoreError; the dataset keeps what was published."""
    url, options = backend_url("s3")
    rec = Recording(FEATURES, [Episode(n, "pick", n) for n in (2, 3)])
    with FaultProxy.for_url(options["endpoint_url"]) as proxy:
        recorder, flushed_s = stalled_after_one_episode(url, options, proxy, tmp_path, rec)
        start = time.monotonic()
        with pytest.raises(StoreError):
            recorder.close()
        assert time.monotonic() - start < 2 * (BOUND_S + 10 * flushed_s)
    assert DatasetMeta.open(url, options).total_episodes == 1
    assert validate(url, options).ok
