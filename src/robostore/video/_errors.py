"""Turning PyAV/FFmpeg failures into :class:`robostore.errors.VideoError`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

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


@contextlib.contextmanager
def wrap_av_errors(name: str, what: str | Callable[[], str], hint: str = "") -> Iterator[None]:
    """Re-raise PyAV/IO failures inside the block as VideoError naming ``name``.

    ``what`` says what was being done ("opening", "decoding t=1.2s of episode 3"), or
    is a function that says it (for hot paths: formatted only on failure);
    ``hint`` tells the user what to do.
    """
    try:
        yield
    except RobostoreError:
        raise
    except _WRAPPED as exc:
        msg = f"{name}: error while {what if isinstance(what, str) else what()}: {type(exc).__name__}: {exc}"
        if hint:
            msg += f". {hint}"
        raise VideoError(msg) from exc
