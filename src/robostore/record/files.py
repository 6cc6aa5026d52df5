"""The open files of a recording, built in the local staging folder, with rollover.

Each writer owns one series of files (the data parquet files, one camera's mp4s, the
episodes parquet files). Only the newest file of a series is open; a new one starts
when adding an episode would take it past the size limit, and file indices run
``0..chunks_size-1`` inside a chunk folder before the chunk index moves on — as
lerobot does. Every change replaces the staged file atomically (write beside it,
then rename), so a hard link taken as a snapshot never changes afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from robostore.video import Segment, append_segment

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class FileIndex:
    """Where a file sits: ``chunk-{chunk:03d}/file-{file:03d}``."""

    chunk: int = 0
    file: int = 0

    def next(self, chunks_size: int) -> FileIndex:
        """The index of the file after this one."""
        if self.file + 1 >= chunks_size:
            return FileIndex(self.chunk + 1, 0)
        return FileIndex(self.chunk, self.file + 1)


def _fsync_replace(tmp: Path, dst: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)


class _Series:
    """Shared rollover bookkeeping of a series of staged files."""

    def __init__(
        self,
        staging: Path,
        path_of: Callable[[FileIndex], str],
        limit_mb: float,
        chunks_size: int,
        start: FileIndex,
    ) -> None:
        self.staging = staging
        self.path_of = path_of
        self.limit_bytes = limit_mb * 1024 * 1024
        self.chunks_size = chunks_size
        self.index = start
        self.units = 0  # rows or frames in the open file

    @property
    def path(self) -> str:
        """Dataset-relative path of the open file."""
        return self.path_of(self.index)

    @property
    def local(self) -> Path:
        """The open file in the staging folder."""
        return self.staging / self.path

    def size(self) -> int:
        try:
            return self.local.stat().st_size
        except FileNotFoundError:
            return 0

    def _roll_if_full(self, incoming_bytes: float) -> str | None:
        """Start the next file when ``incoming_bytes`` would take the open one past the limit.

        Returns the path of the file that was closed, if any. Its last version was
        already snapshotted for upload, so the staged copy is removed.
        """
        size = self.size()
        if not self.units or size + incoming_bytes < self.limit_bytes:
            return None
        return self.close_file()

    def close_file(self) -> str | None:
        """Go on in the next file (if the open one holds anything); returns the closed path."""
        if not self.units:
            return None
        closed = self.path
        self.local.unlink(missing_ok=True)
        self.index = self.index.next(self.chunks_size)
        self.units = 0
        log.debug("rolled %s over to %s", closed, self.path)
        return closed


class ParquetSeries(_Series):
    """Data or episodes parquet files: one row group per episode, like lerobot's."""

    def append(self, make_table: Callable[[FileIndex], pa.Table], rows: int) -> tuple[FileIndex, str | None]:
        """Add the ``rows`` rows ``make_table(index)`` builds to the open file.

        The file rolls over first when its average bytes per row times ``rows`` would
        take it past the limit (lerobot's estimate). ``make_table`` gets the index the
        rows land in (the episodes table stores its own file index in each row).
        Returns that index and the path of a file closed by rollover.
        """
        per_row = self.size() / self.units if self.units else 0.0
        closed = self._roll_if_full(per_row * rows)
        table = make_table(self.index)
        local = self.local
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.tmp")
        with pq.ParquetWriter(tmp, table.schema, compression="snappy", use_dictionary=True) as writer:
            if local.exists():
                old = pq.ParquetFile(local)
                for i in range(old.num_row_groups):
                    writer.write_table(old.read_row_group(i).cast(table.schema))
            writer.write_table(table)
        _fsync_replace(tmp, local)
        self.units += table.num_rows
        return self.index, closed


class VideoSeries(_Series):
    """One camera's mp4 files; episodes are appended by stream copy."""

    def append(self, segment: Segment, name: str) -> tuple[FileIndex, float, float, str | None]:
        """Append an encoded episode (its segment file is kept); returns ``(index, from_s, to_s, closed path)``."""
        closed = self._roll_if_full(segment.size_bytes)
        start, end = append_segment(self.local, segment, name=f"{name} ({self.path})", keep_segment=True)
        self.units += segment.n_frames
        return self.index, start, end, closed
