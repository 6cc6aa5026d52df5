"""``robostore.convert``: a LeRobot v2.1 dataset to v3.0, from any backend to any backend.

The conversion is a :func:`robostore.mirror` run whose source is
:class:`~robostore.convert.source.ConvertSource`: the same plan from listings and the
destination's manifest (a second run writes only what is missing or changed, so a killed
conversion continues where it stopped), the same write order (data and videos, then
``meta/``, then ``meta/info.json`` last), verification and report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from robostore.backends import open_store
from robostore.convert.source import ConvertSource
from robostore.errors import RobostoreError
from robostore.mirror.copy import MEMORY_LIMIT, WHOLE_FILE_MAX, ByteBudget, Limits
from robostore.mirror.core import transfer
from robostore.mirror.report import MirrorReport
from robostore.schema.info import (
    DEFAULT_DATA_FILES_SIZE_IN_MB,
    DEFAULT_VIDEO_FILES_SIZE_IN_MB,
)
from robostore.store import Store

__all__ = ["ConvertSource", "convert"]


def convert(
    src_url: str | Store,
    dst_url: str | Store,
    *,
    data_mb: float = DEFAULT_DATA_FILES_SIZE_IN_MB,
    video_mb: float = DEFAULT_VIDEO_FILES_SIZE_IN_MB,
    workers: int = 8,
    verify: bool = True,
    check: bool = True,
    dry_run: bool = False,
    src_options: Mapping[str, Any] | None = None,
    dst_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> MirrorReport:
    """Convert the LeRobot v2.1 dataset at ``src_url`` into a v3.0 dataset at ``dst_url``.

    Data files hold consecutive episodes until the next one would bring a file to
    ``data_mb`` (measured as lerobot's converter does: the episode parquets'
    uncompressed size); each camera's mp4s likewise up to ``video_mb`` (size on disk),
    joined by stream copy, never re-encoded. The episodes table, tasks, stats and
    info.json are what lerobot's converter writes, with every episode filed under the
    data file that holds it. The source is not changed.

    Args:
        src_url, dst_url: dataset roots on any backend, or open stores.
        data_mb, video_mb: file size limits of the output (info.json records them).
        workers: files written at the same time.
        verify: read every written file back and compare sha256 (see :func:`robostore.mirror`).
        check: validate the source first (``robostore validate``) and raise the typed
            error of its first problem before anything is written.
        dry_run: plan only.
        src_options, dst_options: fsspec storage options of each side.
        progress: show a progress bar.

    Returns:
        A :class:`~robostore.mirror.report.MirrorReport`; files that could not be
        written are in ``failed`` and then no metadata was written.

    Raises:
        NotFound: no dataset at ``src_url``, or a file its metadata lists is missing.
        SchemaError: the source is not v2.1 (a v3.0 dataset is copied with ``mirror``).
        CorruptDataset, VideoError: with ``check`` (and for what the plan reads anyway),
            the source's first problem, naming the file.
    """
    start = time.monotonic()
    src = open_store(src_url, src_options)
    dst = open_store(dst_url, dst_options)
    if type(src) is type(dst) and src.url == dst.url:
        raise RobostoreError(
            f"{src.url}: the source and the destination are the same dataset; convert into a new place"
        )
    limits = Limits(whole_max=WHOLE_FILE_MAX, budget=ByteBudget(MEMORY_LIMIT))
    source = ConvertSource(src, data_mb, video_mb, limits, check=check)
    report = MirrorReport(source=src.url, destination=dst.url, dry_run=dry_run)
    return transfer(
        source,
        dst,
        report,
        workers=workers,
        verify=verify,
        dry_run=dry_run,
        progress=progress,
        start=start,
        label="convert",
    )
