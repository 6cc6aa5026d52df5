"""The exception hierarchy of robostore.

Every error raised for bad input or a failing backend is a :class:`RobostoreError`.
Messages say *what* is wrong, *where* (dataset URL and path) and, where it helps,
*what to do*.
"""

from __future__ import annotations

import threading
import warnings


class RobostoreError(Exception):
    """Base class of every error robostore raises on purpose."""


class SchemaError(RobostoreError, ValueError):
    """Metadata or a frame does not match the LeRobot v3.0 schema."""


class StoreError(RobostoreError, OSError):
    """A storage backend failed: connection, credentials, permissions, timeouts."""


class NotFound(StoreError, FileNotFoundError):  # noqa: N818 - public name since 0.1
    """A file or object does not exist on the backend."""


class PathError(SchemaError):
    """A path would leave the dataset root (``..``, absolute paths, NUL bytes)."""


class CorruptDataset(RobostoreError):  # noqa: N818 - public name since 0.1
    """Files exist but their content is inconsistent or unreadable."""


class VideoError(CorruptDataset):
    """A video file cannot be decoded, or its frames do not match the metadata."""


class LeaseError(RobostoreError):
    """Another live writer holds the dataset (a second Recorder on the same URL)."""


class DatasetWarning(UserWarning):
    """A dataset deviates from the layout lerobot writes in a way that changes no value read.

    Examples: an episodes table whose ``to_timestamp`` is its last frame's time, an episode
    filed under the wrong data file. Readers go on with the same values lerobot returns;
    ``robostore validate`` lists these under "warnings" (exit 1 only with ``--strict``).
    Turn them into errors with ``warnings.simplefilter("error", DatasetWarning)``.
    """


_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def warn_dataset(url: str, message: str) -> None:
    """Issue a :class:`DatasetWarning` about the dataset at ``url``, once per process."""
    with _warned_lock:
        if (url, message) in _warned:
            return
        _warned.add((url, message))
    warnings.warn(f"{url}: {message}", DatasetWarning, stacklevel=3)
