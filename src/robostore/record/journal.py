"""The recording journal: every saved episode, durable on local disk before ``save_episode`` returns.

Each saved episode gets a folder ``journal/<episode index>/`` in its session's staging
folder, holding what it takes to add the episode to the dataset again, independent of
where in the dataset's files it lands:

* ``data.parquet``: its rows of the data files (``task_index`` as the recorder numbered
  the tasks, see ``tasks`` below);
* ``stats.parquet``: one row of ``stats/<feature>/<stat>`` columns (its episodes-table stats);
* ``video-<n>.mp4``: one encoded segment per video feature;
* ``episode.json`` (written last, by rename, once everything else is on disk): the
  episode and frame indices, the task texts by ``task_index``, and the segments.

An episode folder without ``episode.json`` is incomplete (the recorder died while
writing it; ``save_episode`` had not returned). The publisher deletes an episode's
folder once a published info.json counts it; :func:`recover` reads back what a
crashed recorder left, checking each episode against the dataset, so that
``Recorder.resume`` can publish it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robostore.errors import CorruptDataset
from robostore.record._crash import crashpoint
from robostore.schema import DatasetInfo
from robostore.schema.arrow import data_schema
from robostore.stats import episode_stats_dicts
from robostore.video import Segment

log = logging.getLogger(__name__)

JOURNAL = "journal"
MANIFEST = "episode.json"


@dataclass
class StagedEpisode:
    """One saved episode, position-independent (see the module doc)."""

    episode_index: int
    first_frame: int
    data: pa.Table
    stats: pa.Table
    tasks: dict[int, str]
    segments: dict[str, Segment]
    folder: Path | None = None

    @property
    def length(self) -> int:
        return self.data.num_rows

    def stats_dict(self) -> dict[str, dict[str, Any]]:
        """feature → stat → array, as :func:`robostore.stats.aggregate_stats` takes them."""
        return episode_stats_dicts(self.stats)[0]


def episode_folder(journal: Path, episode_index: int) -> Path:
    return journal / f"{episode_index:012d}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(journal: Path, episode: StagedEpisode) -> None:
    """Make ``episode`` durable in ``journal`` (its segments are moved into it).

    Sets ``episode.folder`` and points the segments at their journal copies.
    """
    folder = episode_folder(journal, episode.episode_index)
    if folder.exists():  # an incomplete try of the same index: start over
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pq.write_table(episode.data, folder / "data.parquet", compression="snappy")
    pq.write_table(episode.stats, folder / "stats.parquet", compression="snappy")
    videos = {}
    for n, (key, segment) in enumerate(list(episode.segments.items())):
        name = f"video-{n}.mp4"
        os.replace(segment.path, folder / name)
        episode.segments[key] = segment = dataclasses.replace(segment, path=folder / name)
        videos[key] = {
            "file": name,
            "frames": segment.n_frames,
            "fps": segment.fps,
            "width": segment.width,
            "height": segment.height,
            "codec": segment.codec,
        }
    for name in ("data.parquet", "stats.parquet", *(v["file"] for v in videos.values())):
        _fsync(folder / name)
    crashpoint("journal_write")
    manifest = {
        "episode_index": episode.episode_index,
        "first_frame": episode.first_frame,
        "length": episode.length,
        "tasks": {str(k): v for k, v in episode.tasks.items()},
        "videos": videos,
    }
    tmp = folder / f".{MANIFEST}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(json.dumps(manifest).encode())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)
    _fsync(folder)
    _fsync(journal)
    episode.folder = folder


def read(folder: Path, info: DatasetInfo, episode_index: int, first_frame: int) -> StagedEpisode:
    """Read back and check one journaled episode as the ``episode_index``-th of the dataset.

    Raises:
        CorruptDataset: it is incomplete or does not fit (naming what and where).
    """

    def bad(what: str) -> CorruptDataset:
        return CorruptDataset(f"{folder}: staged episode {episode_index}: {what}")

    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise bad("incomplete (the recorder died while writing it)") from None
    except (OSError, ValueError) as exc:
        raise bad(f"unreadable {MANIFEST}: {exc}") from exc
    if manifest.get("episode_index") != episode_index or manifest.get("first_frame") != first_frame:
        raise bad(
            f"is episode {manifest.get('episode_index')} from frame {manifest.get('first_frame')}, "
            f"but the dataset continues with episode {episode_index} at frame {first_frame}"
        )
    length = manifest.get("length")
    try:
        data = pq.read_table(folder / "data.parquet")
        stats = pq.read_table(folder / "stats.parquet")
    except (OSError, pa.ArrowException) as exc:
        raise bad(f"unreadable parquet: {exc}") from exc
    schema = data_schema(info.features)
    if not data.schema.equals(schema):
        raise bad("its data columns differ from the dataset's features")
    if data.num_rows != length or not length or stats.num_rows != 1:
        raise bad(f"holds {data.num_rows} rows and {stats.num_rows} stats rows, expected {length} and 1")
    frames = np.arange(length, dtype=np.int64)
    expected = {"episode_index": np.full(length, episode_index), "frame_index": frames, "index": first_frame + frames}
    for column, values in expected.items():
        if not np.array_equal(data.column(column).to_numpy(), values):
            raise bad(f"its {column} column is not {column} of episode {episode_index} from frame {first_frame}")
    tasks = {int(k): str(v) for k, v in manifest.get("tasks", {}).items()}
    if not set(data.column("task_index").to_pylist()) <= set(tasks):
        raise bad("its task_index column names tasks it does not list")
    segments = {}
    videos = manifest.get("videos", {})
    if set(videos) != set(info.video_keys):
        raise bad(f"holds videos of {sorted(videos)}, the dataset's are {sorted(info.video_keys)}")
    for key, video in videos.items():
        path = folder / video["file"]
        segment = Segment(path, int(video["frames"]), int(video["fps"]), int(video["width"]), int(video["height"]), str(video["codec"]))
        height, width, _ = info.features[key].shape
        if (segment.n_frames, segment.fps, segment.width, segment.height) != (length, info.fps, width, height):
            raise bad(f"{key}: {segment.n_frames} frames {segment.width}x{segment.height} at {segment.fps} fps do not fit")
        if _packets(path) != length:
            raise bad(f"{key}: {path.name} does not hold {length} frames")
        segments[key] = segment
    return StagedEpisode(episode_index, first_frame, data, stats, tasks, segments, folder)


def _packets(path: Path) -> int:
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return sum(1 for pkt in container.demux(stream) if pkt.size)
    except (av.FFmpegError, IndexError, OSError):
        return -1


def recover(sessions: list[Path], info: DatasetInfo) -> tuple[list[StagedEpisode], list[str]]:
    """The complete episodes the crashed ``sessions`` journaled past ``info``'s, in order.

    Episodes the dataset already counts are skipped; reading stops at the first
    episode that is missing, incomplete or does not fit (nothing after it can be
    added). Returns the episodes to publish and why the rest were given up.
    """
    folders: dict[int, Path] = {}
    for session in sessions:
        journal = session / JOURNAL
        if not journal.is_dir():
            continue
        for folder in journal.iterdir():
            if folder.name.isdigit():
                folders[int(folder.name)] = folder
    found: list[StagedEpisode] = []
    given_up: list[str] = []
    index, frame = info.total_episodes, info.total_frames
    for episode_index in sorted(i for i in folders if i >= info.total_episodes):
        folder = folders[episode_index]
        if given_up:
            given_up.append(f"{folder}: staged episode {episode_index}: comes after one that cannot be recovered")
            continue
        try:
            if episode_index != index:
                raise CorruptDataset(f"{folder}: staged episode {episode_index}: episode {index} is missing before it")
            episode = read(folder, info, index, frame)
        except CorruptDataset as exc:
            given_up.append(str(exc))
            continue
        found.append(episode)
        index += 1
        frame += episode.length
    return found, given_up
