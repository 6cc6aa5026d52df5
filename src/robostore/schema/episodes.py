"""One row of ``meta/episodes/*.parquet``: where an episode's frames live."""

from __future__ import annotations

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


class VideoSpan(BaseModel):
    """Where one episode's frames sit inside one camera's mp4."""

    model_config = ConfigDict(frozen=True)

    path: str
    chunk_index: int = Field(ge=0)
    file_index: int = Field(ge=0)
    from_timestamp: float = Field(ge=0)
    to_timestamp: float = Field(ge=0)


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
