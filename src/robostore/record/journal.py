"""The recording journal: every saved episode, durable on local disk before ``save_episode`` returns.

Each saved episode is one file ``journal/<episode index>.episode`` in its session's
staging folder, holding what it takes to add the episode to the dataset again,
independent of where in the dataset's files it lands: a JSON header (episode and
frame indices, task texts by ``task_index``, the video segments' frame counts and
sizes, a CRC-32 of the rest) followed by its data rows (parquet, ``task_index`` as the
recorder numbered the tasks), its one-row ``stats/<feature>/<stat>`` table (parquet)
and one encoded mp4 segment per video feature. It is written beside its final name,
fsync'ed, renamed, and the folder fsync'ed: two fsyncs per episode, and a file that
has its name is complete.

The publisher deletes an episode's file once a published info.json counts it;
:func:`recover` reads back what a crashed recorder left, checking each episode
against the dataset, so that ``Recorder.resume`` can publish it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zlib
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


@dataclass
class StagedEpisode:
    """One saved episode, position-independent (see the module doc)."""

    episode_index: int
    first_frame: int
    data: pa.Table
    stats: pa.Table
    tasks: dict[int, str]
    segments: dict[str, Segment]
    journaled: Path | None = None

    @property
    def length(self) -> int:
        return int(self.data.num_rows)

    def stats_dict(self) -> dict[str, dict[str, Any]]:
        """feature → stat → array, as :func:`robostore.stats.aggregate_stats` takes them."""
        return episode_stats_dicts(self.stats)[0]


SUFFIX = ".episode"
MAGIC = b"robostore-episode-1\n"


def episode_file(journal: Path, episode_index: int) -> Path:
    return journal / f"{episode_index:012d}{SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return bytes(sink.getvalue())


def write(journal: Path, episode: StagedEpisode) -> None:
    """Make ``episode`` durable in ``journal``; sets ``episode.journaled`` to its file."""
    blobs = {"data": _parquet(episode.data), "stats": _parquet(episode.stats)}
    videos = {}
    for n, (key, segment) in enumerate(episode.segments.items()):
        blobs[f"video-{n}"] = segment.path.read_bytes()
        videos[key] = {
            "blob": f"video-{n}",
            "frames": segment.n_frames,
            "fps": segment.fps,
            "width": segment.width,
            "height": segment.height,
            "codec": segment.codec,
        }
    body = b"".join(blobs.values())
    header = {
        "episode_index": episode.episode_index,
        "first_frame": episode.first_frame,
        "length": episode.length,
        "tasks": {str(k): v for k, v in episode.tasks.items()},
        "videos": videos,
        "blobs": {name: len(blob) for name, blob in blobs.items()},
        "crc32": zlib.crc32(body),
    }
    head = json.dumps(header).encode()
    path = episode_file(journal, episode.episode_index)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(MAGIC + len(head).to_bytes(8, "little") + head)
        crashpoint("journal_write")
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(journal)
    episode.journaled = path


def read(path: Path, info: DatasetInfo, episode_index: int, first_frame: int, tmp: Path) -> StagedEpisode:
    """Read back and check one journaled episode as the ``episode_index``-th of the dataset.

    Its video segments are written to ``tmp``.

    Raises:
        CorruptDataset: it is damaged or does not fit (naming what and where).
    """

    def bad(what: str) -> CorruptDataset:
        return CorruptDataset(f"{path}: staged episode {episode_index}: {what}")

    try:
        raw = path.read_bytes()
        if not raw.startswith(MAGIC):
            raise ValueError("not a robostore journal file")
        at = len(MAGIC) + 8
        size = int.from_bytes(raw[len(MAGIC) : at], "little")
        header = json.loads(raw[at : at + size])
        body = raw[at + size :]
        if zlib.crc32(body) != header["crc32"] or len(body) != sum(header["blobs"].values()):
            raise ValueError("its content does not match its checksum")
        blobs, offset = {}, 0
        for name, length in header["blobs"].items():
            blobs[name] = body[offset : offset + length]
            offset += length
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise bad(f"unreadable: {exc}") from exc
    if header.get("episode_index") != episode_index or header.get("first_frame") != first_frame:
        raise bad(
            f"is episode {header.get('episode_index')} from frame {header.get('first_frame')}, "
            f"but the dataset continues with episode {episode_index} at frame {first_frame}"
        )
    length = header.get("length")
    try:
        data = pq.read_table(pa.BufferReader(blobs["data"]))
        stats = pq.read_table(pa.BufferReader(blobs["stats"]))
    except (KeyError, pa.ArrowException) as exc:
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
    tasks = {int(k): str(v) for k, v in header.get("tasks", {}).items()}
    if not set(data.column("task_index").to_pylist()) <= set(tasks):
        raise bad("its task_index column names tasks it does not list")
    videos = header.get("videos", {})
    if set(videos) != set(info.video_keys):
        raise bad(f"holds videos of {sorted(videos)}, the dataset's are {sorted(info.video_keys)}")
    segments = {}
    for key, video in videos.items():
        height, width, _ = info.features[key].shape
        if (video["frames"], video["fps"], video["width"], video["height"]) != (length, info.fps, width, height):
            raise bad(
                f"{key}: {video['frames']} frames {video['width']}x{video['height']} at {video['fps']} fps do not fit"
            )
        blob = blobs.get(video["blob"], b"")
        if _packets(blob) != length:
            raise bad(f"{key}: its mp4 segment does not hold {length} frames")
        segment_path = tmp / f"recovered-{episode_index}-{video['blob']}.mp4"
        segment_path.write_bytes(blob)
        segments[key] = Segment(segment_path, length, info.fps, width, height, str(video["codec"]))
    return StagedEpisode(episode_index, first_frame, data, stats, tasks, segments, path)


def _packets(mp4: bytes) -> int:
    try:
        with av.open(io.BytesIO(mp4), "r") as container:
            stream = container.streams.video[0]
            return sum(1 for pkt in container.demux(stream) if pkt.size)
    except (av.FFmpegError, IndexError, OSError):
        return -1


def recover(sessions: list[Path], info: DatasetInfo, tmp: Path) -> tuple[list[StagedEpisode], list[str]]:
    """The complete episodes the crashed ``sessions`` journaled past ``info``'s, in order.

    Episodes the dataset already counts are skipped; reading stops at the first
    episode that is missing, damaged or does not fit (nothing after it can be
    added). Returns the episodes to publish (their video segments written to
    ``tmp``) and why the rest were given up. Half-written files (killed before
    ``save_episode`` returned) are not episodes: they are left to be deleted.
    """
    files: dict[int, Path] = {}
    for session in sessions:
        journal = session / JOURNAL
        if not journal.is_dir():
            continue
        for path in journal.iterdir():
            stem = path.name.removesuffix(SUFFIX)
            if path.name.endswith(SUFFIX) and stem.isdigit():
                files[int(stem)] = path
    found: list[StagedEpisode] = []
    given_up: list[str] = []
    index, frame = info.total_episodes, info.total_frames
    for episode_index in sorted(i for i in files if i >= info.total_episodes):
        path = files[episode_index]
        if given_up:
            given_up.append(f"{path}: staged episode {episode_index}: comes after one that cannot be recovered")
            continue
        try:
            if episode_index != index:
                raise CorruptDataset(f"{path}: staged episode {episode_index}: episode {index} is missing before it")
            episode = read(path, info, index, frame, tmp)
        except CorruptDataset as exc:
            given_up.append(str(exc))
            continue
        found.append(episode)
        index += 1
        frame += episode.length
    return found, given_up
