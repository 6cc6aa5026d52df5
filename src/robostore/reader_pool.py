"""A per-process pool of open video readers, safe across fork.

Readers (PyAV containers and decoders) are kept open and reused, least recently used
first out. A process forked from one that held readers must neither use nor free the
parent's: freeing them makes FFmpeg join helper threads that do not exist in the child,
which hangs. The pool notices the fork and starts empty, keeping the inherited readers
referenced for good.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from robostore.forks import current_pid


class Closeable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=Closeable)

_INHERITED: list[Any] = []


class ReaderPool(Generic[R]):
    """Up to ``max_open`` readers keyed by path, for the current process only."""

    def __init__(self, max_open: int) -> None:
        self.max_open = max(1, max_open)
        self._readers: collections.OrderedDict[str, R] = collections.OrderedDict()
        self._pid = current_pid()
        self._lock = threading.Lock()

    def get(self, path: str, opener: Callable[[], R]) -> R:
        """The open reader of ``path``, opened with ``opener()`` when there is none."""
        with self._lock:
            self._forget_if_forked()
            reader = self._readers.get(path)
            if reader is not None:
                self._readers.move_to_end(path)
                return reader
        reader = opener()
        with self._lock:
            self._readers[path] = reader
            while len(self._readers) > self.max_open:
                self._readers.popitem(last=False)[1].close()
        return reader

    def evict(self, path: str) -> None:
        """Close and forget the reader of ``path`` (its decoder state is unknown after a failure)."""
        with self._lock:
            self._forget_if_forked()
            reader = self._readers.pop(path, None)
        if reader is not None:
            reader.close()

    def close(self) -> None:
        """Close every reader this process opened."""
        with self._lock:
            self._forget_if_forked()
            readers, self._readers = list(self._readers.values()), collections.OrderedDict()
        for reader in readers:
            reader.close()

    def _forget_if_forked(self) -> None:
        if self._pid != current_pid():
            _INHERITED.extend(self._readers.values())
            self._readers = collections.OrderedDict()
            self._pid = current_pid()
