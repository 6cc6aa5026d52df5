"""The Store conformance suite, in the style of zarr's ``zarr.testing.store.StoreTests``.

:class:`StoreTests` holds the behaviour every backend must have. A backend's test class
subclasses it, names the backend (a root from ``backends/pytest_plugin.new_root``) and
supplies a :class:`Raw`: out-of-band ``get``/``put`` that reach the bytes directly —
the local folder, fsspec's memory dict, boto3 against the S3 server, the GCS JSON API,
the Hub's HTTP API — never through the Store, so a bug that is symmetric in the
Store's reads and writes (a wrong key, a lost prefix, a double encoding) cannot pass.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fsspec.asyn import AsyncFileSystem

from robostore.backends import open_store
from robostore.errors import NotFound, PathError
from robostore.store import Store

UrlAndOptions = tuple[str, dict[str, Any]]


class Raw:
    """Out-of-band access to one dataset root: bytes as the backend holds them."""

    def get(self, path: str) -> bytes | None:
        """The bytes at dataset-relative ``path``, or None when there is no such file."""
        raise NotImplementedError

    def put(self, path: str, data: bytes) -> None:
        """Store ``data`` at ``path``, visible to any new reader."""
        raise NotImplementedError

    def put_many(self, files: dict[str, bytes]) -> None:
        for path, data in files.items():
            self.put(path, data)


class StoreTests:
    """Behaviour of every Store. Subclasses set :attr:`backend` and implement :meth:`make_raw`."""

    #: The backend name given to ``backend_url``.
    backend: ClassVar[str]
    #: False for a store robostore can read but the test server cannot take writes for.
    writable: ClassVar[bool] = True

    @pytest.fixture
    def url(self, backend_url: Any) -> UrlAndOptions:
        return backend_url(self.backend)

    @pytest.fixture
    def store(self, url: UrlAndOptions) -> Iterator[Store]:
        with open_store(*url) as store:
            yield store

    @pytest.fixture
    def raw(self, request: pytest.FixtureRequest, url: UrlAndOptions) -> Raw:
        return self.make_raw(request, *url)

    def make_raw(self, request: pytest.FixtureRequest, url: str, options: dict[str, Any]) -> Raw:
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _writes(self, request: pytest.FixtureRequest) -> None:
        if request.node.get_closest_marker("writes") and not self.writable:
            pytest.skip(f"the {self.backend} test server takes no writes through the store")

    # ------------------------------------------------------------------ writes
    @pytest.mark.writes
    def test_write_lands_as_written(self, store: Store, raw: Raw) -> None:
        data = b'{"fps": 30, "long": "' + b"x" * 1000 + b'"}'
        store.write("meta/info.json", data)
        store.commit()
        assert raw.get("meta/info.json") == data
        store.write("meta/info.json", b'{"fps": 10}')
        store.commit()
        assert raw.get("meta/info.json") == b'{"fps": 10}'
        assert store.read("meta/info.json") == b'{"fps": 10}'
        assert store.list() == ["meta/info.json"]
        assert store.exists("meta/info.json") and not store.exists("meta/other.json")

    @pytest.mark.writes
    def test_write_local_file(self, store: Store, raw: Raw, tmp_path: Path) -> None:
        local = tmp_path / "episode.bin"
        payload = bytes(range(256)) * 4096  # 1 MiB
        local.write_bytes(payload)
        store.write("videos/file-000.mp4", local)
        local.write_bytes(b"changed after write")  # the store keeps what was written
        store.commit()
        assert raw.get("videos/file-000.mp4") == payload
        assert store.info("videos/file-000.mp4").size == len(payload)

    @pytest.mark.writes
    def test_commit_makes_writes_visible(self, store: Store, raw: Raw) -> None:
        store.write("meta/tasks.parquet", b"tasks")
        if store.transactional:
            assert raw.get("meta/tasks.parquet") is None  # staged, not committed
            assert store.read("meta/tasks.parquet") == b"tasks"  # but the writer reads it
        else:
            assert raw.get("meta/tasks.parquet") == b"tasks"
        store.commit()
        assert raw.get("meta/tasks.parquet") == b"tasks"

    @pytest.mark.writes
    def test_write_parts(self, store: Store, raw: Raw) -> None:
        parts = [b"head", memoryview(b"-middle-"), b"tail" * 1000]
        store.write_parts("cache/shard.bin", parts, durable=False)
        store.write_parts("cache/durable.bin", parts)
        store.commit()
        assert raw.get("cache/shard.bin") == raw.get("cache/durable.bin") == b"head-middle-" + b"tail" * 1000

    @pytest.mark.writes
    def test_adopt_file(self, store: Store, raw: Raw, tmp_path: Path) -> None:
        local = tmp_path / "snapshot.parquet"
        local.write_bytes(b"episode rows" * 100)
        store.adopt_file("data/chunk-000/file-000.parquet", str(local))
        store.commit()
        local.unlink()  # handed over: the caller may delete it
        assert raw.get("data/chunk-000/file-000.parquet") == b"episode rows" * 100

    @pytest.mark.writes
    def test_scratch_file_is_adopted_and_never_listed(self, store: Store, raw: Raw) -> None:
        local = store.scratch_file("videos/cam/file-000.mp4")
        try:
            assert os.path.getsize(local) == 0 and local.endswith(".mp4")
            assert store.list("videos") == []  # a scratch file beside the target stays out of listings
            with open(local, "wb") as fh:
                fh.write(b"built locally")
            store.adopt_file("videos/cam/file-000.mp4", local)
        finally:
            os.unlink(local)
        store.commit()
        assert raw.get("videos/cam/file-000.mp4") == b"built locally"
        assert store.list("videos") == ["videos/cam/file-000.mp4"]

    @pytest.mark.writes
    def test_open_writer_commit_and_abort(self, store: Store, raw: Raw) -> None:
        part = 5 * 2**20  # S3's smallest multipart part
        chunks = [bytes([i]) * part for i in range(2)] + [b"end"]
        writer = store.open_writer("videos/big.mp4", part)
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()
        store.commit()
        assert raw.get("videos/big.mp4") == b"".join(chunks)
        expected = _checksums(store, b"".join(chunks), part)
        if expected:
            assert store.info("videos/big.mp4").token in expected
        aborted = store.open_writer("videos/big.mp4", part)
        aborted.write(b"x" * part)
        aborted.write(b"never")
        aborted.abort()
        fresh = store.open_writer("videos/other.mp4", part)
        fresh.write(b"half")
        fresh.abort()
        store.commit()
        assert raw.get("videos/big.mp4") == b"".join(chunks)
        assert raw.get("videos/other.mp4") is None

    @pytest.mark.writes
    def test_upload_checksum_is_the_token(self, store: Store, raw: Raw) -> None:
        data = b"some bytes of a parquet file" * 50
        store.write("data/f.parquet", data)
        store.commit()
        expected = _checksums(store, data)
        if expected:
            assert store.info("data/f.parquet").token in expected
        assert raw.get("data/f.parquet") == data

    # ------------------------------------------------------------------ reads
    def test_read_what_the_backend_holds(self, store: Store, raw: Raw) -> None:
        raw.put("meta/info.json", b'{"fps": 30}')
        raw.put("data/chunk-000/file-000.parquet", b"PAR1" + bytes(range(256)) + b"PAR1")
        assert store.read("meta/info.json") == b'{"fps": 30}'
        assert store.list() == ["data/chunk-000/file-000.parquet", "meta/info.json"]
        assert store.info("data/chunk-000/file-000.parquet").size == 264
        assert store.exists("meta/info.json") and not store.exists("meta/stats.json")

    def test_range_and_suffix_reads(self, store: Store, raw: Raw) -> None:
        data = bytes(range(256)) * 10
        raw.put("v.mp4", data)
        assert store.read_range("v.mp4", 10, 20) == data[10:20]
        assert store.read_range("v.mp4", 2000) == data[2000:]
        assert store.read_range("v.mp4", -100) == data[-100:]
        assert store.read_range("v.mp4", 2500, 9999) == data[2500:]
        assert store.read_range("v.mp4", 5, 5) == b""
        with pytest.raises(ValueError, match="end 10 < start 20"):
            store.read_range("v.mp4", 20, 10)

    def test_read_into(self, store: Store, raw: Raw) -> None:
        data = bytes(range(256)) * 8
        raw.put("cache/shard", data)
        first, second = bytearray(100), memoryview(bytearray(50))
        assert store.read_into("cache/shard", [first, second], 1000) == 150
        assert bytes(first) + bytes(second) == data[1000:1150]
        tail = bytearray(100)
        assert store.read_into("cache/shard", [tail], len(data) - 30) == 30  # short at the end
        assert bytes(tail[:30]) == data[-30:]
        with pytest.raises(NotFound):
            store.read_into("cache/absent", [bytearray(4)], 0)

    def test_open_is_seekable(self, store: Store, raw: Raw) -> None:
        data = bytes(range(256)) * 40_000  # ~10 MB: several blocks of the remote caches
        raw.put("videos/ep.mp4", data)
        with store.open("videos/ep.mp4") as fh:
            fh.seek(5_000_000)
            assert fh.read(100) == data[5_000_000:5_000_100]
            fh.seek(-10, io.SEEK_END)
            assert fh.read() == data[-10:]
            fh.seek(3)
            assert fh.tell() == 3
            assert fh.read(5) == data[3:8]

    def test_read_many(self, store: Store, raw: Raw) -> None:
        files = {f"data/chunk-{i % 3:03d}/file-{i:03d}.parquet": f"payload {i}".encode() * (i + 1) for i in range(60)}
        raw.put_many(files)
        order = list(reversed(files))
        got = store.read_many(order)
        assert list(got) == order
        assert got == files
        assert store.read_many([]) == {}
        with pytest.raises(NotFound, match=r"missing\.parquet"):
            store.read_many([order[0], "data/missing.parquet", order[1]])

    def test_concurrent_reads(self, store: Store, raw: Raw) -> None:
        files = {f"f{i}.bin": bytes([i]) * (1000 + i) for i in range(16)}
        raw.put_many(files)

        def check(i: int) -> None:
            path = f"f{i % 16}.bin"
            assert store.read(path) == files[path]
            assert store.read_range(path, -7) == files[path][-7:]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(check, range(64)))

    def test_local_path(self, store: Store, raw: Raw) -> None:
        raw.put("meta/info.json", b"{}")
        local = store.local_path("meta/info.json")
        if local is None:
            assert store.local_path() is None
        else:
            assert Path(local).read_bytes() == b"{}"
            assert Path(store.local_path() or "", "meta", "info.json") == Path(local)

    # ------------------------------------------------------------------ listings
    def test_list_2000_files(self, url: UrlAndOptions, raw: Raw) -> None:
        files = {f"data/chunk-{i // 500:03d}/file-{i:04d}.bin": str(i).encode() for i in range(2000)}
        files["meta/info.json"] = b"{}"
        raw.put_many(files)
        with open_store(*url) as store:
            listed = store.list_info()
            assert [f.path for f in listed] == sorted(files)
            assert all(f.size == len(files[f.path]) and f.token for f in listed)
            assert store.list("data/chunk-001") == sorted(p for p in files if p.startswith("data/chunk-001/"))
            assert store.list("meta") == ["meta/info.json"]
            assert store.list("nothing/here") == []

    def test_info_token_changes_with_content(self, store: Store, raw: Raw) -> None:
        raw.put("meta/stats.json", b"first version")
        first = store.info("meta/stats.json")
        raw.put("meta/stats.json", b"other version")  # same size, new content
        second = store.info("meta/stats.json")
        assert first.size == second.size == 13
        assert first.token and second.token and first.token != second.token
        assert store.list_info("meta") == [second]

    # ------------------------------------------------------------------ errors
    def test_not_found_is_typed(self, store: Store, raw: Raw) -> None:
        raw.put("present.txt", b"x")
        for call in (
            lambda: store.read("absent.txt"),
            lambda: store.read_range("absent.txt", 0, 1),
            lambda: store.info("absent.txt"),
            lambda: store.open("absent.txt").read(),
        ):
            with pytest.raises(NotFound, match=r"absent\.txt"):
                call()
        assert not store.exists("absent.txt")

    @pytest.mark.writes
    def test_delete(self, store: Store, raw: Raw) -> None:
        raw.put_many({"a/1.bin": b"1", "a/2.bin": b"2"})
        store.delete("a/1.bin")
        store.commit()
        assert raw.get("a/1.bin") is None and raw.get("a/2.bin") == b"2"
        assert store.list() == ["a/2.bin"]
        assert not store.exists("a/1.bin")
        with pytest.raises(NotFound):
            store.read("a/1.bin")
        with pytest.raises(NotFound, match=r"absent\.txt"):
            store.delete("absent.txt")
        store.delete("absent.txt", missing_ok=True)

    @pytest.mark.parametrize("bad", ["../escape.txt", "/etc/passwd", "a/../../b", "a\\b", "nul\x00byte", "s3://x/y"])
    def test_paths_escaping_the_root_are_rejected(self, store: Store, bad: str) -> None:
        for call in (
            lambda: store.read(bad),
            lambda: store.write(bad, b"x"),
            lambda: store.list(bad),
            lambda: store.read_into(bad, [bytearray(1)], 0),
            lambda: store.local_path(bad),
        ):
            with pytest.raises(PathError):
                call()

    def test_pickle_round_trip_and_reopen(self, store: Store, raw: Raw) -> None:
        raw.put("meta/info.json", b"{}")
        for clone in (pickle.loads(pickle.dumps(store)), store.reopen()):  # spawned / forked workers
            assert type(clone) is type(store) and clone.url == store.url and clone is not store
            assert clone.transactional == store.transactional
            assert clone.read("meta/info.json") == b"{}"


def _checksums(store: Store, data: bytes, part_size: int | None = None) -> set[str]:
    """The tokens ``store.upload_checksum`` promises for ``data``, computed here with hashlib."""
    checksum = store.upload_checksum(part_size=part_size)
    out: set[str] = set()
    if checksum.md5:
        digest = hashlib.md5(data).digest()
        out |= {digest.hex(), base64.b64encode(digest).decode()}
    if checksum.etag_part_size:
        size = checksum.etag_part_size
        parts = [hashlib.md5(data[i : i + size]).digest() for i in range(0, len(data), size)]
        out.add(f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}")
    return out


def seed(store: Store, files: dict[str, bytes]) -> None:
    """Write many files quickly: one concurrent batch on object stores, one commit on the Hub."""
    if isinstance(store.fs, AsyncFileSystem):
        store.fs.pipe({store.full_path(p): data for p, data in files.items()})
    else:
        for path, data in files.items():
            store.write(path, data)
    store.commit("seed")


__all__ = ["Raw", "StoreTests", "seed"]
