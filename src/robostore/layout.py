"""The LeRobot v3.0 layout of a dataset root: where each file lives, and how the
metadata files are serialised. The one home of that knowledge: readers, the recorder,
mirror, repair, convert and editing tools all take paths and bytes from here.

Paths (dataset-relative, for :class:`~robostore.store.Store`)::

    META_DIR       meta
    INFO_PATH      meta/info.json         the commit point: written last by every writer
    STATS_PATH     meta/stats.json
    TASKS_PATH     meta/tasks.parquet
    EPISODES_DIR   meta/episodes          one row per episode, in numbered parquet files
    episodes_file(chunk, file)            meta/episodes/chunk-CCC/file-FFF.parquet
    DATA_DIR       data                   frame parquet files (paths: info.data_file(...))
    VIDEOS_DIR     videos                 mp4 files (paths: info.video_file(...))

The data and video paths come from info.json's ``data_path``/``video_path`` templates
(checked by :mod:`robostore.schema.templates`), so they are
:meth:`~robostore.schema.DatasetInfo.data_file` / ``video_file``, not constants here.

Serialisers (bytes exactly as lerobot writes them)::

    info_json(info)         -> bytes      meta/info.json (indent 4, unknown fields kept)
    stats_json(stats)       -> bytes      meta/stats.json (indent 4)
    tasks_table(tasks)      -> pa.Table   meta/tasks.parquet: task_index + the text as pandas index
    tasks_parquet(tasks)    -> bytes
    episodes_parquet(table) -> bytes      one meta/episodes file (snappy parquet)

Writers (one ``Store.write`` each; the caller orders them: payload, episodes, tasks,
stats, info last)::

    write_info(store, info)       write_stats(store, stats)       write_tasks(store, tasks)
    write_episodes(store, path, table)
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from robostore.parquet import to_parquet_bytes
from robostore.schema import DatasetInfo, DatasetStats
from robostore.store import Store

META_DIR = "meta"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_DIR = "data"
VIDEOS_DIR = "videos"
#: The metadata files other than the episodes table, in the order a commit writes them.
META_FILES = (TASKS_PATH, STATS_PATH, INFO_PATH)


def episodes_file(chunk_index: int, file_index: int) -> str:
    """Dataset-relative path of one episodes parquet file."""
    return EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def info_json(info: DatasetInfo) -> bytes:
    """The bytes of ``meta/info.json``."""
    return info.to_json()


def stats_json(stats: DatasetStats) -> bytes:
    """The bytes of ``meta/stats.json``."""
    return json.dumps(stats.to_json_dict(), indent=4).encode()


def tasks_table(tasks: Sequence[str]) -> pa.Table:
    """``meta/tasks.parquet`` as lerobot writes it: task_index + the text as pandas index."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "str",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "object",
                "numpy_type": "str",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "3.1.1",
    }
    schema = pa.schema(
        [("task_index", pa.int64()), ("__index_level_0__", pa.large_string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.table([pa.array(range(len(tasks)), pa.int64()), pa.array(list(tasks), pa.large_string())], schema=schema)


def tasks_parquet(tasks: Sequence[str]) -> bytes:
    """The bytes of ``meta/tasks.parquet`` for ``tasks`` (task_index = position)."""
    return to_parquet_bytes(tasks_table(tasks))


def episodes_parquet(table: pa.Table) -> bytes:
    """The bytes of one ``meta/episodes`` file holding ``table``."""
    return to_parquet_bytes(table)


def write_info(store: Store, info: DatasetInfo) -> None:
    """Write ``meta/info.json`` (the commit point: the last write of every commit)."""
    store.write(INFO_PATH, info_json(info))


def write_stats(store: Store, stats: DatasetStats) -> None:
    """Write ``meta/stats.json``."""
    store.write(STATS_PATH, stats_json(stats))


def write_tasks(store: Store, tasks: Sequence[str]) -> None:
    """Write ``meta/tasks.parquet``."""
    store.write(TASKS_PATH, tasks_parquet(tasks))


def write_episodes(store: Store, path: str, table: pa.Table) -> None:
    """Write ``table`` as the episodes file ``path`` (see :func:`episodes_file`)."""
    store.write(path, episodes_parquet(table))
