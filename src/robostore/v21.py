"""The LeRobot v2.1 layout: one parquet and one mp4 per episode, metadata in JSON lines.

```
meta/info.json                  codebase_version "v2.1", per-episode path templates
meta/episodes.jsonl             {"episode_index", "tasks", "length"} per line
meta/tasks.jsonl                {"task_index", "task"} per line
meta/episodes_stats.jsonl       {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet
videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4
```

:class:`robostore.DatasetMeta` reads it through :func:`read_meta`, which turns these files
into the v3.0 shapes the readers already use: an episodes table whose
``data/chunk_index``/``data/file_index`` are the episode's ``episode_chunk`` and
``episode_index`` (so ``info.data_file`` names the episode's own file), whose frame ranges
are the running sum of the lengths (as lerobot 0.3 computes them), and whose videos span
``[0, length / fps)`` of the episode's own mp4; and the dataset statistics aggregated from
the per-episode ones, as lerobot 0.3 does on load (v2.1 has no ``meta/stats.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from robostore.errors import CorruptDataset, NotFound, warn_dataset
from robostore.schema import DatasetInfo, DatasetStats
from robostore.schema.episodes import STATS_PREFIX, video_column
from robostore.schema.info import load_json_object
from robostore.stats import aggregate_stats
from robostore.store import Store

EPISODES_JSONL = "meta/episodes.jsonl"
TASKS_JSONL = "meta/tasks.jsonl"
EPISODES_STATS_JSONL = "meta/episodes_stats.jsonl"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


@dataclass
class V21Meta:
    """What the v2.1 ``meta/`` files say, in the v3.0 shapes :class:`DatasetMeta` holds."""

    tasks: list[str]
    episodes: pa.Table
    stats: DatasetStats | None


def read_lines(store: Store, path: str, check: Callable[[dict[str, Any], str], None]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file, each passed through ``check(row, where)``."""
    try:
        raw = store.read(path)
    except NotFound as exc:
        raise NotFound(f"{store.describe(path)}: missing; a v2.1 dataset needs it (info.json says v2.1)") from exc
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{store.describe(path)} line {number}"
        row = load_json_object(line, where, f"a {path} line", error=CorruptDataset)
        check(row, where)
        yield row


def _int_field(row: dict[str, Any], name: str, where: str) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CorruptDataset(f"{where}: {name} must be a non-negative integer, got {value!r}")
    return value


def _episode_row(row: dict[str, Any], where: str) -> None:
    _int_field(row, "episode_index", where)
    _int_field(row, "length", where)
    tasks = row.get("tasks")
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise CorruptDataset(f"{where}: tasks must be a list of strings, got {tasks!r}")


def _task_row(row: dict[str, Any], where: str) -> None:
    _int_field(row, "task_index", where)
    if not isinstance(row.get("task"), str):
        raise CorruptDataset(f"{where}: task must be a string, got {row.get('task')!r}")


def _stats_row(row: dict[str, Any], where: str) -> None:
    _int_field(row, "episode_index", where)
    stats = row.get("stats")
    if not isinstance(stats, dict) or not all(isinstance(v, dict) for v in stats.values()):
        raise CorruptDataset(f"{where}: stats must map each feature to its statistics")


def _unique(rows: list[dict[str, Any]], key: str, where: str) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: r[key])
    for a, b in itertools.pairwise(rows):
        if a[key] == b[key]:
            raise CorruptDataset(f"{where}: {key} {a[key]} appears more than once")
    return rows


def read_tasks(store: Store) -> list[str]:
    """``meta/tasks.jsonl`` as a list indexed by task_index."""
    rows = _unique(list(read_lines(store, TASKS_JSONL, _task_row)), "task_index", store.describe(TASKS_JSONL))
    if [r["task_index"] for r in rows] != list(range(len(rows))):
        raise CorruptDataset(f"{store.describe(TASKS_JSONL)}: task_index values are not 0..{len(rows) - 1}")
    return [r["task"] for r in rows]


def read_episodes(store: Store) -> list[dict[str, Any]]:
    """``meta/episodes.jsonl`` rows, sorted by episode_index."""
    return _unique(
        list(read_lines(store, EPISODES_JSONL, _episode_row)), "episode_index", store.describe(EPISODES_JSONL)
    )


def read_episode_stats(store: Store) -> dict[int, dict[str, dict[str, Any]]]:
    """``meta/episodes_stats.jsonl``: episode_index → feature → stat → value (nested lists)."""
    rows = _unique(
        list(read_lines(store, EPISODES_STATS_JSONL, _stats_row)), "episode_index", store.describe(EPISODES_STATS_JSONL)
    )
    return {r["episode_index"]: r["stats"] for r in rows}


def episodes_table(info: DatasetInfo, rows: list[dict[str, Any]]) -> pa.Table:
    """The v3.0-shaped episodes table of the v2.1 ``rows`` (see the module docstring)."""
    index = np.array([r["episode_index"] for r in rows], dtype=np.int64)
    lengths = np.array([r["length"] for r in rows], dtype=np.int64)
    ends = np.cumsum(lengths)
    chunks = index // info.chunks_size
    columns: dict[str, pa.Array] = {
        "episode_index": pa.array(index),
        "tasks": pa.array([r["tasks"] for r in rows], pa.list_(pa.string())),
        "length": pa.array(lengths),
        "data/chunk_index": pa.array(chunks),
        "data/file_index": pa.array(index),
        "dataset_from_index": pa.array(ends - lengths),
        "dataset_to_index": pa.array(ends),
    }
    for key in info.video_keys:
        columns[video_column(key, "chunk_index")] = pa.array(chunks)
        columns[video_column(key, "file_index")] = pa.array(index)
        columns[video_column(key, "from_timestamp")] = pa.array(np.zeros(len(rows)))
        columns[video_column(key, "to_timestamp")] = pa.array(lengths / info.fps)
    return pa.table(columns)


def episode_stats_table(store: Store, episode_indices: list[int]) -> pa.Table:
    """``episodes_stats.jsonl`` as ``stats/<feature>/<stat>`` columns, one row per episode."""
    stats = read_episode_stats(store)
    missing = [e for e in episode_indices if e not in stats]
    if missing:
        raise CorruptDataset(f"{store.describe(EPISODES_STATS_JSONL)}: no statistics for episodes {missing[:10]}")
    names = list(
        dict.fromkeys(f"{STATS_PREFIX}{f}/{s}" for e in episode_indices for f, d in stats[e].items() for s in d)
    )
    columns = {"episode_index": pa.array(episode_indices, pa.int64())}
    for name in names:
        feature, stat = name[len(STATS_PREFIX) :].rsplit("/", 1)
        columns[name] = pa.array([stats[e].get(feature, {}).get(stat) for e in episode_indices])
    return pa.table(columns)


def read_meta(store: Store, info: DatasetInfo) -> V21Meta:
    """Read a v2.1 dataset's ``meta/`` (info.json already parsed) into :class:`V21Meta`.

    Episode rows beyond ``total_episodes`` are left out, as for v3.0 (info.json is the
    commit point); the statistics are lerobot 0.3's aggregate of the per-episode ones.
    """
    rows = [r for r in read_episodes(store) if r["episode_index"] < info.total_episodes]
    tasks = read_tasks(store)[: info.total_tasks]
    stats = None
    if rows:
        per_episode = read_episode_stats(store)
        present = [per_episode[r["episode_index"]] for r in rows if r["episode_index"] in per_episode]
        if len(present) < len(rows):
            # lerobot 0.3 aggregates whatever episodes_stats.jsonl holds; so do we.
            warn_dataset(
                store.url,
                f"{EPISODES_STATS_JSONL}: {len(rows) - len(present)} episodes have no statistics; "
                "the dataset statistics are aggregated from the others, as lerobot 0.3 does",
            )
        try:
            stats = aggregate_stats(present) if present else None
        except (ValueError, TypeError) as exc:
            raise CorruptDataset(
                f"{store.describe(EPISODES_STATS_JSONL)}: statistics that cannot be combined ({exc})"
            ) from exc
    return V21Meta(tasks=tasks, episodes=episodes_table(info, rows), stats=stats)
