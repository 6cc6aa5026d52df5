"""The Store's behaviour, the same on every backend: local, memory, s3, gcs, hf.

Remote backends run against real servers on 127.0.0.1 started by the fixtures in
backends/pytest_plugin.py; each test gets a fresh, empty dataset root.
"""

from __future__ import annotations

import io
import logging
import pickle
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fsspec.asyn import AsyncFileSystem

from robostore.backends import open_store
from robostore.errors import NotFound, PathError, StoreError
from robostore.store import Store

MakeStore = Callable[..., Store]


def seed(store: Store, files: dict[str, bytes]) -> None:
    """Write many files quickly: one concurrent batch on object stores, one commit on the Hub."""
    if isinstance(store.fs, AsyncFileSystem):
        store.fs.pipe({store.full_path(p): data for p, data in files.items()})
    else:
        for path, data in files.items():
            store.write(path, data)
    store.commit("seed")


# ---------------------------------------------------------------------- writes
def test_write_read_overwrite(make_store: MakeStore) -> None:
    store = make_store()
    store.write("meta/info.json", b'{"fps": 30, "long": "' + b"x" * 1000 + b'"}')
    store.commit()
    store.write("meta/info.json", b'{"fps": 10}')
    store.commit()
    assert store.read("meta/info.json") == b'{"fps": 10}'
    assert store.list() == ["meta/info.json"]
    assert store.exists("meta/info.json")
    assert not store.exists("meta/other.json")


def test_write_local_file(make_store: MakeStore, tmp_path: Any) -> None:
    store = make_store()
    local = tmp_path / "episode.bin"
    payload = bytes(range(256)) * 4096  # 1 MiB
    local.write_bytes(payload)
    store.write("videos/file-000.mp4", local)
    local.write_bytes(b"changed after write")  # the store keeps what was written
    store.commit()
    assert store.read("videos/file-000.mp4") == payload
    assert store.info("videos/file-000.mp4").size == len(payload)


def test_local_writes_are_atomic(tmp_path: Any) -> None:
    """A reader during a rewrite sees the old or the new content, never a mix; no temp file is listed."""
    store = open_store(str(tmp_path / "ds"))
    old, new = b"a" * (4 << 20), b"b" * (3 << 20)
    store.write("data/file.parquet", old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = store.read("data/file.parquet")
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())
            assert store.list() == ["data/file.parquet"]

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(20):
        store.write("data/file.parquet", new if i % 2 == 0 else old)
    stop.set()
    thread.join()
    assert seen <= {b"aa" + str(len(old)).encode(), b"bb" + str(len(new)).encode()}


# ---------------------------------------------------------------------- reads
def test_range_and_suffix_reads(make_store: MakeStore) -> None:
    store = make_store()
    data = bytes(range(256)) * 10
    store.write("v.mp4", data)
    store.commit()
    assert store.read_range("v.mp4", 10, 20) == data[10:20]
    assert store.read_range("v.mp4", 2000) == data[2000:]
    assert store.read_range("v.mp4", -100) == data[-100:]
    assert store.read_range("v.mp4", 2500, 9999) == data[2500:]
    assert store.read_range("v.mp4", 5, 5) == b""
    with pytest.raises(ValueError, match="end 10 < start 20"):
        store.read_range("v.mp4", 20, 10)


def test_open_is_seekable(make_store: MakeStore) -> None:
    store = make_store()
    data = bytes(range(256)) * 40_000  # ~10 MB: several blocks of the remote caches
    store.write("videos/ep.mp4", data)
    store.commit()
    with store.open("videos/ep.mp4") as fh:
        fh.seek(5_000_000)
        assert fh.read(100) == data[5_000_000:5_000_100]
        fh.seek(-10, io.SEEK_END)
        assert fh.read() == data[-10:]
        fh.seek(3)
        assert fh.tell() == 3
        assert fh.read(5) == data[3:8]


def test_read_many(make_store: MakeStore) -> None:
    store = make_store()
    files = {f"data/chunk-{i % 3:03d}/file-{i:03d}.parquet": f"payload {i}".encode() * (i + 1) for i in range(60)}
    seed(store, files)
    order = list(reversed(files))
    got = store.read_many(order)
    assert list(got) == order
    assert got == files
    assert store.read_many([]) == {}
    with pytest.raises(NotFound, match=r"missing\.parquet"):
        store.read_many([order[0], "data/missing.parquet", order[1]])


def test_concurrent_reads(make_store: MakeStore) -> None:
    store = make_store()
    files = {f"f{i}.bin": bytes([i]) * (1000 + i) for i in range(16)}
    seed(store, files)

    def check(i: int) -> None:
        path = f"f{i % 16}.bin"
        assert store.read(path) == files[path]
        assert store.read_range(path, -7) == files[path][-7:]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(64)))


# ---------------------------------------------------------------------- listings
def test_list_2000_files(make_store: MakeStore, store_url: tuple[str, dict[str, Any]]) -> None:
    # On the Hub the 2,001 files go in one commit.
    store = make_store(commit_every_files=5000) if store_url[0].startswith("hf://") else make_store()
    files = {f"data/chunk-{i // 500:03d}/file-{i:04d}.bin": str(i).encode() for i in range(2000)}
    files["meta/info.json"] = b"{}"
    seed(store, files)
    listed = store.list_info()
    assert [f.path for f in listed] == sorted(files)
    assert all(f.size == len(files[f.path]) and f.token for f in listed)
    assert store.list("data/chunk-001") == sorted(p for p in files if p.startswith("data/chunk-001/"))
    assert store.list("meta") == ["meta/info.json"]
    assert store.list("nothing/here") == []


def test_info_token_changes_with_content(make_store: MakeStore) -> None:
    store = make_store()
    store.write("meta/stats.json", b"first version")
    store.commit()
    first = store.info("meta/stats.json")
    store.write("meta/stats.json", b"other version")  # same size, new content
    store.commit()
    second = store.info("meta/stats.json")
    assert first.size == second.size == 13
    assert first.token and second.token and first.token != second.token
    assert store.list_info("meta") == [second]


# ---------------------------------------------------------------------- errors
def test_not_found_is_typed(make_store: MakeStore) -> None:
    store = make_store()
    store.write("present.txt", b"x")
    store.commit()
    for call in (
        lambda: store.read("absent.txt"),
        lambda: store.read_range("absent.txt", 0, 1),
        lambda: store.info("absent.txt"),
        lambda: store.open("absent.txt").read(),
        lambda: store.delete("absent.txt"),
    ):
        with pytest.raises(NotFound, match=r"absent\.txt"):
            call()
    store.delete("absent.txt", missing_ok=True)
    assert not store.exists("absent.txt")


def test_delete(make_store: MakeStore) -> None:
    store = make_store()
    seed(store, {"a/1.bin": b"1", "a/2.bin": b"2"})
    store.delete("a/1.bin")
    store.commit()
    assert store.list() == ["a/2.bin"]
    assert not store.exists("a/1.bin")
    with pytest.raises(NotFound):
        store.read("a/1.bin")


@pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\b", "nul\x00byte", "s3://x/y"])
def test_paths_escaping_the_root_are_rejected(make_store: MakeStore, bad: str) -> None:
    store = make_store()
    for call in (lambda: store.read(bad), lambda: store.write(bad, b"x"), lambda: store.list(bad)):
        with pytest.raises(PathError):
            call()


def test_pickle_round_trip(make_store: MakeStore) -> None:
    store = make_store()
    store.write("meta/info.json", b"{}")
    store.commit()
    clone = pickle.loads(pickle.dumps(store))
    assert type(clone) is type(store) and clone.url == store.url
    assert clone.read("meta/info.json") == b"{}"


# ---------------------------------------------------------------------- the Hub
@pytest.mark.remote
def test_hf_batch_of_writes_is_one_commit(backend_url: Callable[..., Any], hf_server: Any) -> None:
    url, options = backend_url("hf")
    repo_id = url.removeprefix("hf://datasets/")
    before = hf_server.commit_count(repo_id)
    store = open_store(url, options)
    for i in range(25):
        store.write(f"data/file-{i:03d}.parquet", f"rows {i}".encode())
    store.write("meta/info.json", b"{}")
    assert store.read("meta/info.json") == b"{}"  # read-your-writes before the commit
    assert len(store.list("data")) == 25
    assert open_store(url, options).list() == []  # others see nothing yet
    assert hf_server.commit_count(repo_id) == before
    store.commit("add 26 files")
    assert hf_server.commit_count(repo_id) == before + 1
    store.delete("meta/info.json")
    store.write("meta/info.json.new", b"{}")
    store.close()
    assert hf_server.commit_count(repo_id) == before + 2
    assert open_store(url, options).list("meta") == ["meta/info.json.new"]


@pytest.mark.remote
def test_hf_flushes_by_count_and_bytes(backend_url: Callable[..., Any], hf_server: Any) -> None:
    url, options = backend_url("hf", commit_every_files=10, commit_every_bytes=1000)
    repo_id = url.removeprefix("hf://datasets/")
    before = hf_server.commit_count(repo_id)
    with open_store(url, options) as store:
        for i in range(25):  # flushes at 10 and 20 files
            store.write(f"small/{i}.bin", b"s")
        assert hf_server.commit_count(repo_id) == before + 2
        store.write("big.bin", b"b" * 2000)  # flushes by bytes
        assert hf_server.commit_count(repo_id) == before + 3
    assert hf_server.commit_count(repo_id) == before + 3
    assert len(open_store(url, options).list()) == 26


@pytest.mark.remote
def test_hf_revisions(backend_url: Callable[..., Any]) -> None:
    from huggingface_hub import HfApi

    url, options = backend_url("hf")
    with open_store(url, options) as store:
        store.write("meta/info.json", b"v1")
    api = HfApi(endpoint=options["endpoint"], token=options["token"])
    repo_id = url.removeprefix("hf://datasets/")
    first = api.repo_info(repo_id, repo_type="dataset").sha
    with open_store(url, options) as store:
        store.write("meta/info.json", b"v2")
    assert open_store(f"hf://datasets/{repo_id}@{first}", options).read("meta/info.json") == b"v1"
    assert open_store(url, options).read("meta/info.json") == b"v2"


@pytest.fixture
def lfs_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An in-process emulator that takes files >= 1 kB through the legacy LFS protocol."""
    from huggingface_hub import constants

    from backends.hf import HubEmulator

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with HubEmulator(lfs_threshold=1000) as hub:
        yield hub


@pytest.mark.remote
def test_hf_lfs_upload(lfs_hub: Any) -> None:
    options = {"endpoint": lfs_hub.url, "token": "t"}
    big = bytes(range(256)) * 20
    with open_store("hf://datasets/org/lfs", options) as store:
        store.write("videos/ep.mp4", big)
        store.write("meta/info.json", b"{}")
    store = open_store("hf://datasets/org/lfs", options)
    assert store.read("videos/ep.mp4") == big
    assert store.read_range("videos/ep.mp4", -16) == big[-16:]
    import hashlib

    assert store.info("videos/ep.mp4").token == hashlib.sha256(big).hexdigest()


@pytest.mark.remote
def test_hf_bucket_reads(hf_server: Any) -> None:
    import urllib.request

    for path, data in {"ds/meta/info.json": b"{}", "ds/data/f.bin": b"0123456789"}.items():
        urllib.request.urlopen(
            urllib.request.Request(f"{hf_server.url}/_emulator/buckets/org/bucket/{path}", data=data, method="PUT")
        ).close()
    store = open_store("hf://buckets/org/bucket/ds", hf_server.storage_options())
    assert store.list() == ["data/f.bin", "meta/info.json"]
    assert store.read("meta/info.json") == b"{}"
    assert store.read_range("data/f.bin", -3) == b"789"
    assert store.info("data/f.bin").token


# ---------------------------------------------------------------------- failures
SECRET = "s3cr3t-DO-NOT-LOG-4f9a"


def _options_for(backend: str, endpoint: str) -> dict[str, Any]:
    """Options that point ``backend`` at ``endpoint`` with a secret and short timeouts."""
    if backend == "s3":
        return {
            "endpoint_url": endpoint,
            "key": "AKIATESTING",
            "secret": SECRET,
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 1, "retries": {"max_attempts": 1}},
        }
    if backend == "gcs":
        import aiohttp

        return {
            "endpoint_url": endpoint,
            "token": "anon",
            "project": "test",
            "session_kwargs": {"headers": {"Authorization": f"Bearer {SECRET}"}},
            "requests_timeout": aiohttp.ClientTimeout(sock_connect=1, sock_read=1),
        }
    return {"endpoint": endpoint, "token": SECRET}


_URLS = {"s3": "s3://bucket/ds", "gcs": "gs://bucket/ds", "hf": "hf://datasets/org/ds"}


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


@pytest.fixture
def refused_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens here any more


@pytest.fixture
def short_hf_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)


# gcsfs retries every failed request 6 times with 31 s of backoff in all (fixed in gcsfs),
# so its cases take ~35 s each: they run with -m slow.
_GCS_SLOW = pytest.param("gcs", id="gcs", marks=pytest.mark.slow)


@pytest.mark.remote
@pytest.mark.parametrize("backend", ["s3", _GCS_SLOW, "hf"])
@pytest.mark.parametrize("fault", ["refused", "silent"])
@pytest.mark.usefixtures("short_hf_timeouts")
def test_unreachable_server_fails_fast_without_leaking_secrets(
    backend: str,
    fault: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = request.getfixturevalue("refused_endpoint" if fault == "refused" else "silent_server")
    url = _URLS[backend]
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(StoreError) as info:
        open_store(url, _options_for(backend, endpoint)).read("meta/info.json")
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"{backend} took {elapsed:.0f}s to give up"
    message = str(info.value)
    assert url in message
    assert SECRET not in message and SECRET not in repr(info.value)
    assert SECRET not in caplog.text


@pytest.mark.remote
def test_missing_bucket_or_repo(backend_url: Callable[..., Any]) -> None:
    for backend in ("s3", "gcs", "hf"):
        _, options = backend_url(backend)
        missing = {"s3": "s3://no-such-bucket-xyz/ds", "gcs": "gs://no-such-bucket-xyz/ds"}.get(
            backend, "hf://datasets/org/no-such-repo-xyz"
        )
        store = open_store(missing, options)
        with pytest.raises(StoreError, match=missing.split("://")[1].split("/")[0]):
            store.read("meta/info.json")
        assert store.list() == []


@pytest.mark.remote
def test_hf_wrong_token(caplog: pytest.LogCaptureFixture) -> None:
    from backends.hf import HubEmulator

    caplog.set_level(logging.DEBUG)
    with HubEmulator(token="the-right-token") as hub:
        store = open_store("hf://datasets/org/ds", {"endpoint": hub.url, "token": SECRET})
        store.write("meta/info.json", b"{}")  # staged until the commit
        with pytest.raises(StoreError) as info:
            store.commit()
    assert "hf://datasets/org/ds" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in caplog.text


# ---------------------------------------------------------------------- the layers above
def test_info_and_validate_on_every_backend(video_basic_url: tuple[str, dict[str, Any]]) -> None:
    """tests/data/video_basic uploaded to the backend opens through DatasetMeta and the CLI."""
    import json

    from typer.testing import CliRunner

    from robostore.cli import app
    from robostore.meta import DatasetMeta

    url, options = video_basic_url
    meta = DatasetMeta.open(url, options)
    assert meta.info.total_episodes > 0
    args = [f"--storage-option={k}={v}" for k, v in options.items()]
    result = CliRunner().invoke(app, ["info", url, "--json", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["episodes"] == meta.info.total_episodes
    result = CliRunner().invoke(app, ["validate", url, *args])
    assert result.exit_code == 0, result.output
