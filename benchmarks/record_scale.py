"""Recording at scale: cost per episode from the first episode to the n-th, and opening big datasets.

    PYTHONPATH=src python benchmarks/record_scale.py [--episodes 10000] [--backends local,s3]
        [--open 100,10000,100000] [--skip-record] [--skip-open]

Part 1 (recording): 3-frame episodes (state, action, one 64x48 h264 camera),
``publish_every=1``, recorded as fast as the recorder takes them. Prints the rate
(episodes/s, by the time ``save_episode`` returns) over episodes 100-1,000 (the
baseline) and over the last 1,000, and their ratio (flat = 1.0), then ``close``.

Part 2 (opening): datasets of 100 / 10,000 / 100,000 episodes on S3 (moto, on
loopback) whose metadata are written directly through the project's writers (not
recorded: one data file and one mp4 shared by all episodes, episodes table and stats
as the recorder writes them). For each: ``DatasetMeta.open`` plus the first sample of
``Dataset``, and ``robostore info``, each in a fresh process (imports excluded), median
of 3, and the ratio to the 100-episode time.

Reports ``uptime``'s load average: figures taken on a loaded machine are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robostore import Recorder, VideoOptions

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [6], "names": None},
    "action": {"dtype": "float32", "shape": [6], "names": None},
    "observation.images.cam": {"dtype": "video", "shape": [48, 64, 3], "names": ["height", "width", "channels"]},
}


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def record(url: str, options: dict[str, Any], episodes: int, staging: str) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(8, 48, 64, 3), dtype=np.uint8)
    done = np.zeros(episodes + 1)
    rec = Recorder.create(
        url,
        fps=30,
        features=FEATURES,
        storage_options=options,
        video=VideoOptions.h264(),
        staging_dir=staging,
        publish_every=1,
    )
    t0 = time.perf_counter()
    for e in range(episodes):
        for i in range(3):
            rec.add_frame(
                {
                    "observation.state": np.full(6, e + i, np.float32),
                    "action": np.full(6, -e, np.float32),
                    "observation.images.cam": images[(e + i) % 8],
                    "task": f"task {e % 5}",
                }
            )
        rec.save_episode()
        done[e + 1] = time.perf_counter() - t0
        if (e + 1) % 1000 == 0:
            print(f"  {e + 1} episodes, {done[e + 1]:.1f} s, load {load()}", file=sys.stderr)
    t1 = time.perf_counter()
    rec.close()
    close_s = time.perf_counter() - t1

    def rate(a: int, b: int) -> float:
        return (b - a) / (done[b] - done[a])

    base = (min(100, episodes // 10), min(1000, episodes))
    last = (max(base[0], episodes - 1000), episodes)
    return {
        "base": base,
        "last": last,
        "base_rate": rate(*base),
        "last_rate": rate(*last),
        "overall": episodes / done[-1],
        "close_s": close_s,
    }


OPEN_SNIPPET = """
import sys, time, json
sys.path.insert(0, {src!r})
from robostore.meta import DatasetMeta
from robostore.torch import Dataset
t = time.perf_counter()
meta = DatasetMeta.open({url!r}, {options!r})
sample = Dataset({url!r}, storage_options={options!r})[0]
print(time.perf_counter() - t)
"""

INFO_SNIPPET = """
import sys, time
sys.path.insert(0, {src!r})
from typer.testing import CliRunner
from robostore.cli import app
t = time.perf_counter()
result = CliRunner().invoke(app, ["info", {url!r}, *{args!r}])
assert result.exit_code == 0, result.output
print(time.perf_counter() - t)
"""


def make_big(template: str, url: str, options: dict[str, Any], episodes: int) -> None:
    """A dataset of ``episodes`` copies of ``template``'s first episode, written through the layout writers.

    One data file (every episode's rows, indices renumbered) and the template's mp4
    (every episode spans its first episode's frames); episodes table, tasks, stats and
    info as the recorder writes them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from robostore.backends import open_store
    from robostore.layout import write_episodes, write_info, write_stats, write_tasks
    from robostore.meta import DatasetMeta

    src = DatasetMeta.open(template)
    store = open_store(url, options)
    first = src.episode(0)
    length = first.length
    data = pq.read_table(f"{template}/{src.data_files()[0]}")
    data = data.filter(pc.equal(data["episode_index"], 0))
    big = data.take(pa.array(np.tile(np.arange(length), episodes)))
    renumbered = {
        "frame_index": np.tile(np.arange(length, dtype=np.int64), episodes),
        "episode_index": np.repeat(np.arange(episodes, dtype=np.int64), length),
        "index": np.arange(episodes * length, dtype=np.int64),
    }
    for name, values in renumbered.items():
        big = big.set_column(big.schema.get_field_index(name), name, pa.array(values, big.schema.field(name).type))
    store.write(src.data_files()[0], to_parquet(big))
    for path in src.video_files():
        store.write(path, f"{template}/{path}")
    row = src.episodes.slice(0, 1)
    table = row.take(pa.array(np.zeros(episodes, dtype=np.int64)))
    for name, values in (
        ("episode_index", np.arange(episodes)),
        ("dataset_from_index", np.arange(episodes) * length),
        ("dataset_to_index", (np.arange(episodes) + 1) * length),
    ):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.int64()))
    write_episodes(store, "meta/episodes/chunk-000/file-000.parquet", table)
    write_tasks(store, src.tasks)
    if src.stats is not None:
        write_stats(store, src.stats)
    info = src.info.model_copy(deep=True)
    info.total_episodes, info.total_frames = episodes, episodes * length
    info.splits = {"train": f"0:{episodes}"}
    write_info(store, info)
    store.commit("benchmark dataset")


def to_parquet(table: Any) -> bytes:
    from robostore.parquet import to_parquet_bytes

    return to_parquet_bytes(table, row_group_size=3 * 1000)


def timed(snippet: str, **fields: Any) -> float:
    """Median of 3 runs of ``snippet`` in fresh processes (each prints its own time, imports excluded)."""
    code = snippet.format(src=str(ROOT / "src"), **fields)
    runs = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        runs.append(float(out.strip().splitlines()[-1]))
    return statistics.median(runs)


def open_times(sizes: list[int]) -> list[tuple[int, float, float]]:
    from backends.s3.server import S3Server

    with tempfile.TemporaryDirectory(prefix="robostore-open-") as tmp:
        template = os.path.join(tmp, "template")
        record(template, {}, 2, os.path.join(tmp, "staging"))
        with S3Server() as server:
            options = server.storage_options()
            args = [f"--storage-option={k}={v}" for k, v in options.items()]
            out = []
            for n in sizes:
                url = f"s3://{server.new_bucket('open')}/ds"
                t = time.perf_counter()
                make_big(template, url, options, n)
                print(f"  made {n} episodes in {time.perf_counter() - t:.1f} s", file=sys.stderr)
                out.append((n, timed(OPEN_SNIPPET, url=url, options=options), timed(INFO_SNIPPET, url=url, args=args)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--backends", default="local,s3")
    parser.add_argument("--open", default="100,10000,100000")
    parser.add_argument("--skip-record", action="store_true")
    parser.add_argument("--skip-open", action="store_true")
    args = parser.parse_args()
    print(f"load average before: {load()}")
    if not args.skip_record:
        rows = []
        for backend in args.backends.split(","):
            with tempfile.TemporaryDirectory(prefix="robostore-scale-") as tmp:
                if backend == "local":
                    result = record(os.path.join(tmp, "ds"), {}, args.episodes, os.path.join(tmp, "staging"))
                else:
                    from backends.s3.server import S3Server

                    with S3Server() as server:
                        url = f"s3://{server.new_bucket('bench')}/ds"
                        result = record(url, server.storage_options(), args.episodes, os.path.join(tmp, "staging"))
            rows.append((backend, result))
            print(f"{backend}: done, load {load()}", file=sys.stderr)
        print(f"\n{args.episodes} episodes of 3 frames, publish_every=1; load average after: {load()}\n")
        print(
            "| backend | episodes/s overall | rate over episodes a-b (baseline) | rate over the last 1,000 | ratio | close s |"
        )
        print("|---|---|---|---|---|---|")
        for backend, r in rows:
            print(
                f"| {backend} | {r['overall']:.1f} | {r['base_rate']:.1f} ({r['base'][0]}-{r['base'][1]}) | "
                f"{r['last_rate']:.1f} ({r['last'][0]}-{r['last'][1]}) | {r['last_rate'] / r['base_rate']:.2f}x | {r['close_s']:.2f} |"
            )
    if not args.skip_open:
        sizes = [int(n) for n in args.open.split(",")]
        rows_open = open_times(sizes)
        base = rows_open[0]
        print(
            f"\nS3 (moto): open + first sample, robostore info; median of 3 fresh processes; load average after: {load()}\n"
        )
        print(f"| episodes | open + first sample s | x {base[0]} episodes | robostore info s | x {base[0]} episodes |")
        print("|---|---|---|---|---|")
        for n, open_s, info_s in rows_open:
            print(f"| {n} | {open_s:.2f} | {open_s / base[1]:.2f}x | {info_s:.2f} | {info_s / base[2]:.2f}x |")


if __name__ == "__main__":
    main()
