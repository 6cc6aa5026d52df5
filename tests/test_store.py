"""The Store's behaviour, the same on every backend: local, memory, s3, gcs, the Hub's
repos and buckets — the conformance suite of ``tests/store_conformance.py``, one class
per backend, each with out-of-band access to the bytes — then what is particular to a
backend (Hub commits and revisions, local atomicity) and how failures look.

Remote backends run against real servers on 127.0.0.1 started by the fixtures in
backends/pytest_plugin.py; each test gets a fresh, empty dataset root.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from robostore.backends import open_store
from robostore.errors import StoreError
from robostore.store import Store
from store_conformance import Raw, StoreTests, UrlAndOptions


# ---------------------------------------------------------------------- out-of-band access
def _http(
    url: str, data: bytes | None = None, method: str = "GET", headers: dict[str, str] | None = None
) -> bytes | None:
    """One HTTP request on loopback; None for a 404."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


class LocalRaw(Raw):
    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def get(self, path: str) -> bytes | None:
        file = self.root / path
        return file.read_bytes() if file.is_file() else None

    def put(self, path: str, data: bytes) -> None:
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_bytes(data)


class MemoryRaw(Raw):
    """fsspec's process-global dict of memory files."""

    def __init__(self, url: str) -> None:
        self.root = "/" + url.removeprefix("memory://").strip("/")

    def get(self, path: str) -> bytes | None:
        entry = MemoryFileSystem.store.get(f"{self.root}/{path}")
        return None if entry is None else bytes(entry.getbuffer())

    def put(self, path: str, data: bytes) -> None:
        key = f"{self.root}/{path}"
        MemoryFileSystem.store[key] = MemoryFile(None, key, data)


class S3Raw(Raw):
    """boto3 against the S3 server (not s3fs, which the store uses)."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        import boto3

        self.bucket, _, self.prefix = url.removeprefix("s3://").partition("/")
        self.client = boto3.client(
            "s3",
            endpoint_url=options["endpoint_url"],
            aws_access_key_id=options["key"],
            aws_secret_access_key=options["secret"],
            region_name="us-east-1",
        )

    def get(self, path: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{path}")["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def put(self, path: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{path}", Body=data)

    def put_many(self, files: dict[str, bytes]) -> None:
        with ThreadPool(16) as pool:
            list(pool.map(lambda item: self.put(*item), files.items()))


class GCSRaw(Raw):
    """The JSON API of the GCS server, over plain HTTP (not gcsfs, which the store uses)."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.endpoint = options["endpoint_url"].rstrip("/")
        self.bucket, _, self.prefix = url.removeprefix("gs://").partition("/")

    def _name(self, path: str) -> str:
        return urllib.parse.quote(f"{self.prefix}/{path}", safe="")

    def get(self, path: str) -> bytes | None:
        return _http(f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{self._name(path)}?alt=media")

    def put(self, path: str, data: bytes) -> None:
        _http(
            f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o?uploadType=media&name={self._name(path)}",
            data,
            "POST",
        )

    def put_many(self, files: dict[str, bytes]) -> None:
        with ThreadPool(16) as pool:
            list(pool.map(lambda item: self.put(*item), files.items()))


class HfRepoRaw(Raw):
    """The Hub's HTTP API: files resolved by URL, written by a commit of huggingface_hub's
    own (not through the store)."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        from huggingface_hub import HfApi

        self.endpoint = options["endpoint"].rstrip("/")
        self.headers = {"Authorization": f"Bearer {options['token']}"}
        self.repo_id = url.removeprefix("hf://datasets/")
        self.api = HfApi(endpoint=self.endpoint, token=options["token"])

    def get(self, path: str) -> bytes | None:
        return _http(f"{self.endpoint}/datasets/{self.repo_id}/resolve/main/{path}", headers=self.headers)

    def put(self, path: str, data: bytes) -> None:
        self.put_many({path: data})

    def put_many(self, files: dict[str, bytes]) -> None:
        from huggingface_hub import CommitOperationAdd

        operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=d) for p, d in files.items()]
        self.api.create_commit(self.repo_id, operations=operations, commit_message="raw", repo_type="dataset")


class HfBucketRaw(Raw):
    """The emulator's bucket files: written through its admin route, read by URL."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.endpoint = options["endpoint"].rstrip("/")
        self.bucket, self.prefix = url.removeprefix("hf://buckets/").split("/", 2)[:2], url.split("/", 5)[5]

    def get(self, path: str) -> bytes | None:
        namespace, name = self.bucket
        return _http(f"{self.endpoint}/buckets/{namespace}/{name}/resolve/{self.prefix}/{path}")

    def put(self, path: str, data: bytes) -> None:
        namespace, name = self.bucket
        _http(f"{self.endpoint}/_emulator/buckets/{namespace}/{name}/{self.prefix}/{path}", data, "PUT")


# ---------------------------------------------------------------------- one class per backend
class TestLocalStore(StoreTests):
    backend = "local"

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return LocalRaw(url)

    def test_adopted_file_is_linked_not_copied(self, store: Store, tmp_path: Path) -> None:
        local = tmp_path / "staged.bin"
        local.write_bytes(b"payload")
        store.adopt_file("data/file.bin", str(local))
        assert os.stat(store.local_path("data/file.bin") or "").st_ino == local.stat().st_ino


class TestMemoryStore(StoreTests):
    backend = "memory"

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return MemoryRaw(url)


@pytest.mark.remote
class TestS3Store(StoreTests):
    backend = "s3"

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return S3Raw(url, options)


@pytest.mark.remote
class TestGCSStore(StoreTests):
    backend = "gcs"

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return GCSRaw(url, options)


@pytest.mark.remote
class TestHfRepoStore(StoreTests):
    backend = "hf"

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return HfRepoRaw(url, options)


@pytest.mark.remote
class TestHfBucketStore(StoreTests):
    backend = "hf-bucket"
    # The emulator holds bucket files but takes no writes through HfFileSystem (the Hub
    # stores them in xet storage), so only reads are checked here.
    writable = False

    @pytest.fixture
    def url(self, hf_server: Any) -> UrlAndOptions:
        bucket = f"robostore/bucket-{uuid.uuid4().hex[:12]}"
        _http(f"{hf_server.url}/_emulator/buckets/{bucket}/elsewhere/keep", b"", "PUT")  # the bucket exists
        return f"hf://buckets/{bucket}/dataset", hf_server.storage_options()

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        return HfBucketRaw(url, options)

    def test_not_found_is_typed(self, store: Store, raw: Raw) -> None:
        super().test_not_found_is_typed(store, raw)
        assert not store.transactional


# ---------------------------------------------------------------------- local disk
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
