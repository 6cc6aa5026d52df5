"""Turning PyAV/FFmpeg failures into :class:`robostore.errors.VideoError`."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import av

from robostore.errors import RobostoreError, VideoError

# Exceptions PyAV may raise for bad bytes or a failing file object. OSError covers
# av.error.FFmpegError subclasses that double as OSError and errors re-raised from a
# Python file object's read/seek; ValueError/IndexError/EOFError come from PyAV
# itself on some malformed containers.
_WRAPPED: tuple[type[BaseException], ...] = (
    av.FFmpegError,
    OSError,
    ValueError,
    IndexError,
    EOFError,
    RuntimeError,
)


class wrap_av_errors:  # noqa: N801  (used like a function: ``with wrap_av_errors(...)``)
    """Re-raise PyAV/IO failures inside the block as VideoError naming ``name``.

    ``what`` says what was being done ("opening", "decoding t=1.2s of episode 3"), or
    is a function that says it (for hot paths: formatted only on failure);
    ``hint`` tells the user what to do. A class rather than a generator context
    manager: it wraps every decoded frame, where entering one costs several times more.
    """

    __slots__ = ("hint", "name", "what")

    def __init__(self, name: str, what: str | Callable[[], str], hint: str = "") -> None:
        self.name, self.what, self.hint = name, what, hint

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is None or isinstance(exc, RobostoreError) or not isinstance(exc, _WRAPPED):
            return
        what = self.what if isinstance(self.what, str) else self.what()
        msg = f"{self.name}: error while {what}: {type(exc).__name__}: {exc}"
        if self.hint:
            msg += f". {self.hint}"
        raise VideoError(msg) from exc
