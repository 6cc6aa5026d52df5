"""The current process id, without a system call per query: it changes only in a fork's child."""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """``os.getpid()``, read from memory (per-frame checks made it a measurable cost)."""
    return _pid
