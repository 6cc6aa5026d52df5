"""Mirror throughput against a naive copy and the servers' own ceiling, and no-op re-mirror time.

Run from the repository root::

    PYTHONPATH=src python benchmarks/mirror.py [--mb 500] [--files 25] [--repeat 3] [--noop-files 10000] [--s3-noop]

Throughput: a synthetic dataset (the multi_chunk fixture's metadata plus ``--files``
files of random bytes named like mp4s; random bytes are fine for throughput, the
files are not decodable video) is copied local→S3 (moto) and S3→GCS
(fake-gcs-server) by ``robostore.mirror`` (default settings) and by a naive loop of
``fs.put_file`` / ``fs.get_file`` + ``fs.put_file`` per file, interleaved, each run
into a fresh bucket; medians of ``--repeat`` runs. Two network cases:

* loopback: the servers on 127.0.0.1. The same run measures each server's ceiling:
  the most any client gets from raw concurrent PUTs / GETs of the same payload from
  memory (1, 4 or 16 in flight, no hashing, nothing else);
* modelled link: every connection to a server goes through ``tests/faultproxy.py``
  (in a process of its own) holding each forwarded chunk ``--link-latency`` seconds,
  which makes a small request take ~25 ms and caps one connection at ~40 MB/s per
  direction — what one connection to a cloud bucket gets. The run prints both.

No-op: a dataset of ``--noop-files`` small files is mirrored once, then the unchanged
re-mirror is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import fsspec.asyn
from fsspec.implementations.local import LocalFileSystem

import robostore
from backends.gcs import GCSServer
from backends.s3 import S3Server
from robostore.backends import open_store
from robostore.store import Store

log = logging.getLogger("bench.mirror")
FIXTURE = REPO / "tests" / "data" / "multi_chunk"
#: Forwarded chunks of up to this size (the proxy's reads return ~256 KiB in practice).
LINK_CHUNK = 2**20
STREAMS = (1, 4, 16)


def make_dataset(root: Path, files: int, size: int) -> int:
    shutil.copytree(FIXTURE, root)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    for i in range(files):
        path = root / f"videos/synthetic/chunk-{i // 100:03d}/file-{i % 100:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        total += size
    return total


# ---------------------------------------------------------------------- what is compared
def naive(src_url: str, src_opts: dict, dst_url: str, dst_opts: dict) -> float:
    """Sequential per-file copy with the filesystems' own get/put."""
    src, dst = open_store(src_url, src_opts), open_store(dst_url, dst_opts)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rel in src.list():
            local = src.full_path(rel)
            if not isinstance(src.fs, LocalFileSystem):
                local = os.path.join(tmp, "f")
                src.fs.get_file(src.full_path(rel), local)
            dst.fs.put_file(local, dst.full_path(rel))
    return time.perf_counter() - start


def timed_mirror(src: str, src_opts: dict, dst: str, dst_opts: dict, **kw: Any) -> tuple[float, robostore.MirrorReport]:
    start = time.perf_counter()
    report = robostore.mirror(src, dst, src_options=src_opts, dst_options=dst_opts, progress=False, **kw)
    assert report.ok, report.failed
    return time.perf_counter() - start, report


def _on_loop(store: Store, streams: int, jobs: list[Callable[[], Any]]) -> float:
    """Seconds to run the coroutine ``jobs`` on the store's event loop, ``streams`` at a time."""

    async def run() -> None:
        gate = asyncio.Semaphore(streams)

        async def one(job: Callable[[], Any]) -> None:
            async with gate:
                await job()

        await asyncio.gather(*(one(j) for j in jobs))

    start = time.perf_counter()
    fsspec.asyn.sync(store.fs.loop, run)
    return time.perf_counter() - start


def rates(store: Store, mb: float, jobs: list[Callable[[], Any]]) -> dict[int, float]:
    """MB/s with each of :data:`STREAMS` requests in flight."""
    return {streams: mb / _on_loop(store, streams, jobs) for streams in STREAMS}


def puts(dst: Store, blobs: dict[str, bytes]) -> list[Callable[[], Any]]:
    return [functools.partial(dst.fs._pipe_file, dst.full_path(rel), data) for rel, data in blobs.items()]


def _get(src: Store, rel: str, size: int) -> Any:
    # A ranged GET: without a range s3fs first asks for the size (one more request).
    return src.fs._cat_file(src.full_path(rel), start=0, end=size)


def gets(src: Store, blobs: dict[str, bytes]) -> list[Callable[[], Any]]:
    return [functools.partial(_get, src, rel, len(data)) for rel, data in blobs.items()]


def gets_then_puts(src: Store, dst: Store, blobs: dict[str, bytes]) -> list[Callable[[], Any]]:
    async def copy(rel: str, size: int) -> None:
        await dst.fs._pipe_file(dst.full_path(rel), await _get(src, rel, size))

    return [functools.partial(copy, rel, len(data)) for rel, data in blobs.items()]


def ceilings(s3_src: Store, s3_dst: Store, gcs_dst: Store, blobs: dict[str, bytes]) -> dict[str, dict[int, float]]:
    """What the servers take at all: raw requests for the payload files, no hashing, from
    memory (``blobs``, also on ``s3_src`` under the same names)."""
    mb = sum(len(b) for b in blobs.values()) / 1e6
    return {
        "moto PUT": rates(s3_dst, mb, puts(s3_dst, blobs)),
        "moto GET": rates(s3_src, mb, gets(s3_src, blobs)),
        "fake-gcs PUT": rates(gcs_dst, mb, puts(gcs_dst, blobs)),
        "moto GET then fake-gcs PUT": rates(gcs_dst, mb, gets_then_puts(s3_src, gcs_dst, blobs)),
    }


def describe(tops: dict[str, dict[int, float]]) -> str:
    streams = "/".join(map(str, STREAMS))
    return "; ".join(f"{name} {'/'.join(f'{r:.0f}' for r in by.values())}" for name, by in tops.items()) + (
        f" MB/s with {streams} in flight"
    )


# ---------------------------------------------------------------------- the modelled link
#: Runs a fault proxy until its stdin closes; prints its URL.
_LINK_PROCESS = """
import sys
sys.path.insert(0, sys.argv[1])
from faultproxy import FaultProxy
with FaultProxy.for_url(sys.argv[2], chunk_size=int(sys.argv[4])) as proxy:
    proxy.latency = float(sys.argv[3])
    print(proxy.url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def link(target_url: str, latency: float) -> Iterator[str]:
    """A fault proxy in front of ``target_url``, in its own process so that forwarding the
    bytes competes for the CPU like a network stack would, not for the client's GIL."""
    args = [sys.executable, "-c", _LINK_PROCESS, str(REPO / "tests"), target_url, str(latency), str(LINK_CHUNK)]
    # Its stderr would only carry asyncio's complaints about connections cut at shutdown.
    with subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            url = proc.stdout.readline().strip()
            if not url:
                raise RuntimeError(f"the link proxy in front of {target_url} did not start")
            yield url
        finally:
            proc.stdin.close()
            proc.wait(10)


def link_profile(dst: Store, size: int) -> tuple[float, float]:
    """(ms per small PUT, MB/s of one ``size``-byte PUT) through one connection to ``dst``."""
    dst.write("probe/small", b"x")  # opens the connection
    start = time.perf_counter()
    dst.write("probe/small", b"x")
    small = time.perf_counter() - start
    start = time.perf_counter()
    dst.write("probe/large", os.urandom(size))
    return small * 1000, size / 1e6 / (time.perf_counter() - start)


# ---------------------------------------------------------------------- runs
class Pair:
    """One source→destination pair: fresh destination buckets, timed runs kept for medians."""

    def __init__(self, name: str, src: str, src_opts: dict, new_dst: Callable[[], str], dst_opts: dict) -> None:
        self.name, self.src, self.src_opts, self.new_dst, self.dst_opts = name, src, src_opts, new_dst, dst_opts
        self.naive: list[float] = []
        self.mirror: list[float] = []

    def run_once(self) -> None:
        for times, copy in ((self.naive, naive), (self.mirror, lambda *a: timed_mirror(*a)[0])):
            dst = self.new_dst()
            times.append(copy(self.src, self.src_opts, dst, self.dst_opts))
            drop(dst, self.dst_opts)

    def row(self, mb: float, ceiling: float | None = None) -> str:
        t_naive, t_mirror = statistics.median(self.naive), statistics.median(self.mirror)
        cells = [self.name, f"{mb / t_naive:.0f}", f"{mb / t_mirror:.0f}", f"**{t_naive / t_mirror:.2f}x**"]
        if ceiling is not None:
            cells[1:1] = [f"{ceiling:.0f}"]
            cells.append(f"{100 * mb / t_mirror / ceiling:.0f}%")
        return "| " + " | ".join(cells) + " |"


def load() -> str:
    """The host's load averages: other work on the machine moves these numbers a lot."""
    return "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


def say(*lines: str) -> None:
    print(*lines, sep="\n", flush=True)


def drop(url: str, options: dict) -> None:
    """Delete a destination bucket's objects so the servers do not fill up across runs."""
    store = open_store(url, options)
    store.fs.rm(store.root.split("/", 1)[0], recursive=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="synthetic payload size in MB")
    parser.add_argument("--files", type=int, default=25, help="number of payload files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    parser.add_argument("--link-latency", type=float, default=0.005, help="modelled link: seconds per forwarded chunk")
    parser.add_argument("--noop-files", type=int, default=10_000)
    parser.add_argument("--s3-noop", action="store_true", help="also time a no-op re-mirror of the 10k files on S3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = args.mb * 10**6 // args.files
    say(f"machine: {os.cpu_count()} CPUs shared by the client, the servers and the link proxies; {load()}")
    with tempfile.TemporaryDirectory() as tmp, S3Server() as s3, GCSServer() as gcs:
        root = Path(tmp) / "src"
        mb = make_dataset(root, args.files, size) / 1e6
        s3_url = f"s3://{s3.new_bucket()}/ds"
        robostore.mirror(str(root), s3_url, dst_options=s3.storage_options(), progress=False)  # the s3→gcs source
        say(f"dataset: {mb:.0f} MB in {sum(1 for p in root.rglob('*') if p.is_file())} files, {size / 1e6:.0f} MB each")
        blobs = {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "videos/synthetic").rglob("*.mp4"))}

        def section(title: str, s3o: dict, gcso: dict) -> None:
            tops = ceilings(
                open_store(s3_url, s3o),
                open_store(f"s3://{s3.new_bucket()}/top", s3o),
                open_store(f"gs://{gcs.new_bucket()}/top", gcso),
                blobs,
            )
            pairs = [
                (Pair("local→s3", str(root), {}, lambda: f"s3://{s3.new_bucket()}/ds", s3o), tops["moto PUT"]),
                (
                    Pair("s3→gcs", s3_url, s3o, lambda: f"gs://{gcs.new_bucket()}/ds", gcso),
                    tops["moto GET then fake-gcs PUT"],
                ),
            ]
            for _ in range(args.repeat):
                for pair, _ in pairs:
                    pair.run_once()
            say(
                "",
                f"{title}, medians of {args.repeat}",
                f"server ceilings (raw requests for the payload, no hashing): {describe(tops)}",
                "| pair | server ceiling MB/s | naive MB/s | mirror MB/s | mirror ÷ naive | mirror ÷ ceiling |",
                "|---|---|---|---|---|---|",
                *(pair.row(mb, max(top.values())) for pair, top in pairs),
            )

        s3o, gcso = s3.storage_options(), gcs.storage_options()
        section("loopback", s3o, gcso)
        with link(s3.url, args.link_latency) as s3_link, link(gcs.url, args.link_latency) as gcs_link:
            s3l, gcsl = {**s3o, "endpoint_url": s3_link}, {**gcso, "endpoint_url": gcs_link}
            small_ms, one_mb_s = link_profile(open_store(f"s3://{s3.new_bucket()}/probe", s3l), size)
            section(
                f"modelled link ({args.link_latency * 1000:g} ms per forwarded chunk: a small PUT took {small_ms:.0f} ms, "
                f"one connection carried {one_mb_s:.0f} MB/s)",
                s3l,
                gcsl,
            )

        noop_root = Path(tmp) / "many"
        shutil.copytree(FIXTURE, noop_root)
        for i in range(args.noop_files):
            path = noop_root / f"data/chunk-{i // 1000:03d}/file-{i % 1000:03d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(64))
        say("", "| no-op re-mirror | first copy | no-op |", "|---|---|---|")
        targets = [("local→local", str(Path(tmp) / "many-copy"), {})]
        if args.s3_noop:
            targets.append(("local→s3", f"s3://{s3.new_bucket()}/many", s3o))
        for name, dst, opts in targets:
            # The small files are random bytes, not parquet: the seeding copy skips validation.
            t_first, _ = timed_mirror(str(noop_root), {}, dst, opts, check=False)
            t_noop, report = timed_mirror(str(noop_root), {}, dst, opts)
            assert not report.copied
            say(f"| {len(report.skipped)} files, {name} | {t_first:.1f} s | **{t_noop:.2f} s** |")
    say("", f"at the end: {load()}")


if __name__ == "__main__":
    main()
