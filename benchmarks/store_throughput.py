"""Store throughput per backend on loopback: large ranged reads, open(), read_many.

    PYTHONPATH=src python benchmarks/store_throughput.py [--backends local,s3,gcs,hf]
        [--size-mb 64] [--range-mb 8] [--files 500] [--file-kb 4] [--repeats 5] [--latency-ms 0]

Starts each server itself (moto, fake-gcs-server, the Hub emulator; see backends/) and
prints markdown tables:

1. a large object read in ranges with ``Store.read_range`` (MB/s);
2. the same object read front to back through ``Store.open`` in 1 MB reads, for several
   block sizes of the block cache, and 200 random 64 KB reads (the video access patterns);
3. ``Store.read_many`` on many small files against a plain sequential loop of
   ``fs.cat_file`` in the same run (files/s and the ratio).

Every figure is the median of ``--repeats`` runs. On bare loopback the figures measure
client overhead and server CPU (the local servers share the machine's cores with the
client); ``--latency-ms`` puts a proxy in front of each server that delays every request,
which is what makes concurrency pay off against a real service.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from fsspec.asyn import AsyncFileSystem

from robostore.backends import open_store
from robostore.store import Store

MB = 2**20


@contextmanager
def backend_root(name: str, tmp: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh dataset root on ``name``, with its server running: ``(url, storage_options)``."""
    if name == "local":
        yield str(tmp / f"ds-{uuid.uuid4().hex[:8]}"), {}
        return
    from backends.gcs import GCSServer
    from backends.hf import HfServer
    from backends.s3 import S3Server

    server_cls = {"s3": S3Server, "gcs": GCSServer, "hf": HfServer}[name]
    with server_cls() as server:
        url = (
            f"hf://datasets/{server.new_repo()}"
            if name == "hf"
            else f"{'s3' if name == 's3' else 'gs'}://{server.new_bucket()}/ds"
        )
        yield url, {**server.storage_options(), **({"commit_every_files": 100_000} if name == "hf" else {})}


@contextmanager
def through_proxy(name: str, options: dict[str, Any], latency_ms: float) -> Iterator[dict[str, Any]]:
    """``options`` with the endpoint behind a :class:`LatencyProxy` (unchanged when no latency)."""
    key = {"s3": "endpoint_url", "gcs": "endpoint_url", "hf": "endpoint"}.get(name)
    if not latency_ms or key is None:
        yield options
        return
    from urllib.parse import urlsplit

    from backends.latency_proxy import LatencyProxy

    target = urlsplit(options[key])
    with LatencyProxy(target.hostname or "127.0.0.1", target.port or 80, latency_ms / 1000) as proxy:
        yield {**options, key: f"http://127.0.0.1:{proxy.port}"}


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seed(store: Store, files: dict[str, bytes]) -> None:
    if isinstance(store.fs, AsyncFileSystem):
        store.fs.pipe({store.full_path(p): d for p, d in files.items()})
    else:
        for path, data in files.items():
            store.write(path, data)
    store.commit("seed benchmark files")


def run_backend(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    size, step = args.size_mb * MB, args.range_mb * MB
    big = os.urandom(size)
    small = {f"data/chunk-{i // 100:03d}/file-{i:04d}.bin": os.urandom(args.file_kb * 1024) for i in range(args.files)}
    with backend_root(name, tmp) as (url, options), through_proxy(name, options, args.latency_ms) as measured:
        writer = open_store(url, options)
        writer.write("videos/big.mp4", big)
        seed(writer, small)
        writer.close()
        store = open_store(url, measured)
        assert store.read_range("videos/big.mp4", 0, step) == big[:step]
        out: dict[str, Any] = {"backend": name}

        def ranged() -> None:
            for start in range(0, size, step):
                store.read_range("videos/big.mp4", start, start + step)

        out["range_mbps"] = size / MB / median_time(ranged, args.repeats)

        for block in (1, 4, 16):

            def sequential(block: int = block) -> None:
                with store.open("videos/big.mp4", block_size=block * MB) as fh:
                    while fh.read(MB):
                        pass

            out[f"open_{block}mb_mbps"] = size / MB / median_time(sequential, args.repeats)
            offsets = [random.Random(i).randrange(0, size - 65536) for i in range(200)]

            def scattered(block: int = block, offsets: list[int] = offsets) -> None:
                with store.open("videos/big.mp4", block_size=block * MB) as fh:
                    for offset in offsets:
                        fh.seek(offset)
                        fh.read(65536)

            out[f"random_{block}mb_s"] = median_time(scattered, args.repeats)

        paths = list(small)
        fs = store.fs
        full = [store.full_path(p) for p in paths]
        got = store.read_many(paths)
        assert got == small

        def loop() -> None:
            for f in full:
                fs.cat_file(f)

        out["loop_fps"] = len(paths) / median_time(loop, args.repeats)
        out["many_fps"] = len(paths) / median_time(lambda: store.read_many(paths), args.repeats)
        store.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="local,s3,gcs,hf")
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--range-mb", type=int, default=8)
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--file-kb", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="add this much latency per request (a proxy in front of each server)",
    )
    args = parser.parse_args()
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.backends.split(","):
            print(f"... {name}", file=sys.stderr, flush=True)
            rows.append(run_backend(name, args, Path(tmp)))

    print(f"\n### Ranged read: {args.size_mb} MB object in {args.range_mb} MB ranges (`read_range`)\n")
    print("| backend | MB/s |\n|---|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['range_mbps']:.0f} |")

    print(f"\n### `open()` of a {args.size_mb} MB file: sequential 1 MB reads (MB/s), 200 random 64 KB reads (s)\n")
    print("| backend | block 1 MB | block 4 MB | block 16 MB | random, 1 MB | random, 4 MB | random, 16 MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['open_1mb_mbps']:.0f} | {r['open_4mb_mbps']:.0f} | {r['open_16mb_mbps']:.0f} "
            f"| {r['random_1mb_s']:.2f} | {r['random_4mb_s']:.2f} | {r['random_16mb_s']:.2f} |"
        )

    print(f"\n### `read_many` of {args.files} files of {args.file_kb} KB vs a sequential `fs.cat_file` loop\n")
    print("| backend | loop files/s | read_many files/s | ratio |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['backend']} | {r['loop_fps']:.0f} | {r['many_fps']:.0f} | {r['many_fps'] / r['loop_fps']:.1f}x |")


if __name__ == "__main__":
    main()
