"""One row of ``meta/episodes/*.parquet``: where an episode's frames live."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Columns every episodes table has (besides per-video and ``stats/`` columns).
REQUIRED_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)
VIDEO_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
STATS_PREFIX = "stats/"


def video_column(video_key: str, field: str) -> str:
    """Name of a per-video column, e.g. ``videos/<key>/from_timestamp``."""
    return f"videos/{video_key}/{field}"


Times = TypeVar("Times", float, np.ndarray)


def span_agrees(from_timestamp: Times, to_timestamp: Times, length: Times, fps: int) -> Times:
    """``to_timestamp - from_timestamp`` is ``length / fps`` within half a frame (as lerobot
    writes it); False for NaN. Works on floats and numpy arrays."""
    return np.abs((to_timestamp - from_timestamp) - length / fps) <= 0.5 / fps  # type: ignore[no-any-return]  # Times is float or array: numpy types the result Any


def span_at_last_frame(from_timestamp: Times, to_timestamp: Times, length: Times, fps: int) -> Times:
    """``to_timestamp`` is the time of the episode's last frame (one frame short), as
    other writers store it. Nothing reads it for values (see :func:`frames_end`)."""
    return np.logical_and(length > 0, span_agrees(from_timestamp, to_timestamp, length - 1, fps))  # type: ignore[no-any-return]  # as above


def frames_end(from_timestamp: Times, to_timestamp: Times, length: Times, fps: int) -> Times:
    """Where an episode's frames end in its mp4 (seconds, exclusive).

    ``to_timestamp`` when it agrees with ``from_timestamp + length / fps`` (see
    :func:`span_agrees`), else ``from_timestamp + length / fps``. lerobot never reads
    ``to_timestamp`` (frames are at ``from_timestamp + timestamp``), so neither does
    anything that decides which frames are read or copied.
    """
    out = np.where(span_agrees(from_timestamp, to_timestamp, length, fps), to_timestamp, from_timestamp + length / fps)
    return out if out.ndim else float(out)  # type: ignore[return-value]  # an array stays an array, a 0-d one becomes a float


class VideoSpan(BaseModel):
    """Where one episode's frames sit inside one camera's mp4.

    ``to_timestamp`` is the episodes table's value; ``end_timestamp`` where the frames
    end (see :func:`frames_end`) — use it for anything that decides what is read.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    chunk_index: int = Field(ge=0)
    file_index: int = Field(ge=0)
    from_timestamp: float = Field(ge=0)
    to_timestamp: float
    end_timestamp: float = Field(ge=0)


class Episode(BaseModel):
    """One episode: its tasks, length, data file, global frame range and videos."""

    model_config = ConfigDict(frozen=True)

    episode_index: int = Field(ge=0)
    tasks: list[str]
    length: int = Field(ge=0)
    data_chunk_index: int = Field(ge=0)
    data_file_index: int = Field(ge=0)
    data_path: str
    dataset_from_index: int = Field(ge=0)
    dataset_to_index: int = Field(ge=0)
    videos: dict[str, VideoSpan] = Field(default_factory=dict)
