"""The open files of a recording, with rollover: appended to in memory, built when published.

Each series owns one kind of file (the data parquet files, one camera's mp4s, the
episodes parquet files). Only the newest file of a series is open; a new one starts
when adding an episode would take it past the size limit, and file indices run
``0..chunks_size-1`` inside a chunk folder before the chunk index moves on — as
lerobot does.

Appending an episode costs the same whatever the file holds: the open parquet file is
a list of per-episode Arrow tables, the open mp4 a list of encoded segments. What the
publisher gets is a :class:`FileVersion`: the file as of that episode, built into the
staging folder only when it is published (parquet: one write of the parts; mp4: the
file as last published plus the segments since, in one stream-copy pass). Publishes
coalesce, so a file is built once per publish, not once per episode. The saved
episodes themselves are durable in the journal (:mod:`robostore.record.journal`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from robostore.video import Segment, concat_segments, mp4_header_size

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


@dataclass
class FileVersion:
    """A staged file as of one episode; :meth:`build` writes it to the staging folder."""

    path: str
    local: Path
    _build: Callable[[], None]

    def build(self) -> Path:
        self._build()
        return self.local


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
        self.bytes = 0  # estimated size of the open file
        self.last: FileVersion | None = None  # the open file's newest version
        self.closed: list[Path] = []  # staged copies of files rolled over, to delete once published

    @property
    def path(self) -> str:
        """Dataset-relative path of the open file."""
        return self.path_of(self.index)

    @property
    def local(self) -> Path:
        """Where the open file is built in the staging folder."""
        return self.staging / self.path

    def _roll_if_full(self, incoming_bytes: float) -> str | None:
        """Start the next file when ``incoming_bytes`` would take the open one past the limit."""
        if not self.units or self.bytes + incoming_bytes < self.limit_bytes:
            return None
        return self.close_file()

    def close_file(self) -> str | None:
        """Go on in the next file (if the open one holds anything); returns the closed path."""
        if not self.units:
            return None
        closed = self.path
        self.closed.append(self.local)
        self.last = None
        self.index = self.index.next(self.chunks_size)
        self.units = 0
        self.bytes = 0
        self._reset()
        log.debug("rolled %s over to %s", closed, self.path)
        return closed

    def _reset(self) -> None:
        raise NotImplementedError


class ParquetSeries(_Series):
    """Data or episodes parquet files.

    As lerobot writes them: with ``group_per_append`` (data files) one row group per
    episode, else (episodes files) one row group per file.
    """

    def __init__(self, *args: Any, group_per_append: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_per_append = group_per_append
        self.parts: list[pa.Table] = []
        self._fixed: int | None = None

    def _reset(self) -> None:
        self.parts = []
        self._fixed = None

    def append(self, make_table: Callable[[FileIndex], pa.Table], rows: int) -> FileIndex:
        """Add the ``rows`` rows ``make_table(index)`` builds to the open file; returns its index.

        The file rolls over first when its average bytes per row times ``rows`` would
        take it past the limit (lerobot's estimate). ``make_table`` gets the index the
        rows land in (the episodes table stores its own file index in each row). The
        file's size is estimated without building it: each part's size as a file of
        its own, less what every parquet file holds once (magic, schema, metadata).
        """
        per_row = self.bytes / self.units if self.units else 0.0
        self._roll_if_full(per_row * rows)
        table = make_table(self.index)
        self.parts.append(table)
        self.units += table.num_rows
        if self._fixed is None:
            self._fixed = _parquet_size(table.slice(0, 0))
            self.bytes = self._fixed
        self.bytes += _parquet_size(table) - self._fixed
        parts, local, grouped = tuple(self.parts), self.local, self.group_per_append
        self.last = FileVersion(self.path, local, lambda: _write_parts(parts, local, grouped))
        return self.index


def _parquet_size(table: pa.Table) -> int:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", use_dictionary=True)
    return int(sink.tell())


def _write_parts(parts: tuple[pa.Table, ...], dst: Path, group_per_part: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    schema = parts[-1].schema
    tables = [part if part.schema.equals(schema) else part.cast(schema) for part in parts]
    with pq.ParquetWriter(tmp, schema, compression="snappy", use_dictionary=True) as writer:
        if group_per_part:
            for table in tables:
                writer.write_table(table)
        else:
            whole = pa.concat_tables(tables)
            writer.write_table(whole, row_group_size=max(1, whole.num_rows))
    _fsync_replace(tmp, dst)


@dataclass
class _Mp4:
    """One mp4 being appended to: its segments, and how many the built file holds."""

    local: Path
    label: str
    segments: list[Segment] = field(default_factory=list)
    built: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def build(self, upto: int) -> None:
        """Make the staged file hold the first ``upto`` segments (once built, kept)."""
        with self.lock:
            if upto <= self.built:
                return
            new = self.segments[self.built : upto]
            concat_segments(self.local, new, base=self.local if self.built else None, name=self.label)
            for segment in new:
                segment.path.unlink(missing_ok=True)
            self.built = upto


class VideoSeries(_Series):
    """One camera's mp4 files; episodes are appended by stream copy when published."""

    def __init__(self, *args: Any, name: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name
        self._mp4 = _Mp4(self.local, f"{name} ({self.path})")
        self._fixed: int | None = None

    def _reset(self) -> None:
        self._mp4 = _Mp4(self.local, f"{self.name} ({self.path})")
        self._fixed = None

    def append(self, segment: Segment) -> tuple[FileIndex, float, float]:
        """Append an encoded episode (the series takes its file); returns ``(index, from_s, to_s)``.

        Timestamps follow from the frame counts: every segment starts at pts 0 with one
        frame per ``1 / fps``, and the stream copy continues each after the last.
        """
        size = segment.size_bytes
        self._roll_if_full(size)
        start = self.units / segment.fps
        mp4 = self._mp4
        mp4.segments.append(segment)
        self.units += segment.n_frames
        # The file's size without building it: each segment's, less the header every
        # mp4 holds once (the sample tables grow per frame and stay in).
        if self._fixed is None:
            self._fixed = mp4_header_size(segment)
            self.bytes = self._fixed
        self.bytes += size - self._fixed
        upto = len(mp4.segments)
        self.last = FileVersion(self.path, self.local, lambda: mp4.build(upto))
        return self.index, start, start + segment.n_frames / segment.fps
