"""Per-process handles: what a forked DataLoader worker must not share with its parent."""

from __future__ import annotations

import threading
from typing import Any

from robostore.forks import current_pid
from robostore.store import Store


class PerProcessStore:
    """A :class:`Store` rebuilt from its URL in each process that uses it.

    Async filesystems (s3fs, gcsfs, the Hub) own an event loop and connections that a
    forked child cannot use; fsspec refuses them there. After a fork, :meth:`get`
    builds a fresh store (pickling already does the same for spawn).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pid = current_pid()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self._store}

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(self, state["store"])

    @property
    def url(self) -> str:
        return self._store.url

    def get(self) -> Store:
        """The store for the calling process."""
        if self._pid != current_pid():
            with self._lock:
                if self._pid != current_pid():
                    self._store = self._store.reopen()
                    self._pid = current_pid()
        return self._store
