"""Cleaning up after a writer that died mid-publish (run by ``Recorder.resume``).

info.json is written last, so it says what was committed. A publish cut off earlier
can leave, beyond it: rows in the newest episodes file or a new episodes file,
rows of uncommitted episodes at the end of the newest data file, new data or video
files no committed episode names, tasks past ``total_tasks`` and a stats.json that
already counts the lost episodes. Readers ignore all of that (see
:meth:`DatasetMeta.open`), but lerobot reads every data file it finds, so resume
removes it. Each step only removes uncommitted things, so a crash during repair is
repaired by the next resume.

Repair removes only what a crashed append leaves, nothing it cannot tell apart from
user data: data and video files are deleted only when they are named like the
dataset's own files (the info.json templates) and numbered past the newest file a
committed episode uses. Other files no episode names are kept (and logged). Damage
to committed episodes is not repair's business: ``Recorder.resume`` validates the
dataset first and refuses a broken one (``robostore validate --repair`` fixes that).
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from robostore.layout import (
    DATA_DIR,
    STATS_PATH,
    TASKS_PATH,
    VIDEOS_DIR,
    write_episodes,
    write_stats,
    write_tasks,
)
from robostore.meta import DatasetMeta
from robostore.parquet import read_parquet
from robostore.record._crash import crashpoint
from robostore.schema.episodes import video_column
from robostore.stats import aggregate_stats, episode_stats_dicts
from robostore.store import Store

log = logging.getLogger(__name__)


def repair(store: Store) -> DatasetMeta:
    """Remove what an interrupted publish left past info.json; return the metadata."""
    meta = DatasetMeta.open(store)
    meta.require_v3("resume recording into")
    total = meta.info.total_episodes
    removed: list[str] = []

    lost_rows = False
    for path in meta.episode_files:
        ids = read_parquet(store, path, columns=["episode_index"]).column(0)
        extra = pc.greater_equal(ids, total)
        if not pc.any(extra).as_py():
            continue
        lost_rows = True
        if pc.all(extra).as_py():
            store.delete(path)
            removed.append(path)
        else:
            table = read_parquet(store, path)
            write_episodes(store, path, table.filter(pc.less(table.column("episode_index"), total)))
            removed.append(f"rows of {path}")
        crashpoint("repair_step")

    for path in leftover_files(meta):
        store.delete(path)
        removed.append(path)
        crashpoint("repair_step")
    data_files = meta.data_files()
    if data_files and trim_data_file(store, data_files[-1], total):
        removed.append(f"rows of {data_files[-1]}")

    if store.exists(TASKS_PATH) and read_parquet(store, TASKS_PATH).num_rows > len(meta.tasks):
        write_tasks(store, meta.tasks)
        removed.append(f"tasks past {len(meta.tasks)}")

    no_stats = meta.stats is None and meta.num_episodes > 0
    if lost_rows or no_stats:
        # stats.json is written between the episodes table and info.json (or, by
        # another writer, not at all: new episodes must not be aggregated alone).
        if no_stats:
            log.warning("%s: meta/stats.json is missing; rebuilt from the episodes table", store.url)
        meta = DatasetMeta.open(store)
        per_episode = episode_stats_dicts(meta.episode_stats())
        if per_episode:
            write_stats(store, aggregate_stats(per_episode))
        else:
            store.delete(STATS_PATH, missing_ok=True)

    if removed:
        log.warning("%s: removed what an interrupted recording left uncommitted: %s", store.url, ", ".join(removed))
        store.commit("robostore: remove an interrupted recording's uncommitted files")
    elif no_stats:
        store.commit("robostore: rebuild meta/stats.json from the episodes table")
    if removed or no_stats:
        meta = DatasetMeta.open(store)
    return meta


def leftover_files(meta: DatasetMeta) -> list[str]:
    """Data and video files past the newest committed file of their series (see the module doc)."""
    cols = meta.columns

    def newest(chunk_col: str, file_col: str) -> tuple[int, int] | None:
        return max(zip(cols[chunk_col].tolist(), cols[file_col].tolist(), strict=True), default=None)

    def past(found: dict[str, int | str], last: tuple[int, int] | None) -> bool:
        return last is None or (int(found["chunk_index"]), int(found["file_index"])) > last

    referenced = set(meta.data_files()) | set(meta.video_files())
    data_last = newest("data/chunk_index", "data/file_index")
    video_last = {k: newest(video_column(k, "chunk_index"), video_column(k, "file_index")) for k in meta.video_keys}
    leftovers: list[str] = []
    kept: list[str] = []
    for path in meta.store.list(DATA_DIR):
        if path in referenced:
            continue
        found = meta.info.data_template.match(path)
        (leftovers if found is not None and past(found, data_last) else kept).append(path)
    if meta.video_keys:
        for path in meta.store.list(VIDEOS_DIR):
            if path in referenced:
                continue
            found = meta.info.video_template.match(path)
            key = found.get("video_key") if found is not None else None
            newer = found is not None and isinstance(key, str) and key in video_last and past(found, video_last[key])
            (leftovers if newer else kept).append(path)
    if kept:
        log.warning("%s: files no episode names, left as they are: %s", meta.url, ", ".join(kept[:10]))
    return leftovers


def trim_data_file(store: Store, path: str, total: int) -> bool:
    """Drop rows of uncommitted episodes from the end of ``path``, keeping row groups."""
    ids = read_parquet(store, path, columns=["episode_index"]).column(0).to_numpy()
    if not (ids >= total).any():
        return False
    with store.open(path) as fh:
        pf = pq.ParquetFile(fh)
        groups = [pf.read_row_group(i) for i in range(pf.num_row_groups)]
    schema = groups[0].schema
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, schema, compression="snappy", use_dictionary=True) as writer:
        for group in groups:
            keep = group.filter(pc.less(group.column("episode_index"), np.int64(total)))
            if keep.num_rows:
                writer.write_table(keep)
    store.write(path, sink.getvalue().to_pybytes())
    return True
