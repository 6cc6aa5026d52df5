"""A test hook: kill the process with SIGKILL at a named step of a recording.

``ROBOSTORE_RECORD_CRASH_AT=<step>[:<n>]`` kills the process the ``n``-th time (default
the first) it reaches ``step``. The crash tests use it to check that a dataset stays
valid whatever instant a writer dies at. Unset, it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "ROBOSTORE_RECORD_CRASH_AT"
_seen: Counter[str] = Counter()
_lock = threading.Lock()


def crashpoint(step: str) -> None:
    """Die here if the environment asks for a crash at ``step``."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != step:
        return
    with _lock:
        _seen[step] += 1
        hit = _seen[step] == int(nth or 1)
    if hit:
        os.kill(os.getpid(), signal.SIGKILL)
