"""Hit/miss counters, persisted per process and merged when read.

Each process (each DataLoader worker, each ``cache warm`` worker) counts in memory and
writes its own totals to ``stats/<host>-<pid>-<random>.json`` every few seconds, at
exit and on :meth:`StatsRecorder.flush`. No file is ever written by two processes, so
no update is lost; :func:`read_stats` sums them. A forked child starts from zero in a
file of its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import secrets
import socket
import threading
import time
import weakref
from collections import Counter

from robostore.errors import RobostoreError
from robostore.forks import current_pid
from robostore.store import Store

log = logging.getLogger(__name__)

STATS_DIR = "stats"
#: The counters, in frames (hits, misses) or shards (the others).
FIELDS = ("hits", "misses", "filled_shards", "filled_bytes", "corrupt_chunks", "evicted_shards", "evicted_bytes")


class StatsRecorder:
    """Counts for one process, flushed to its own stats file at most every ``interval`` s."""

    def __init__(self, store: Store, interval: float = 5.0) -> None:
        self.store = store
        self.interval = interval
        self._lock = threading.Lock()
        self._reset()
        ref = weakref.ref(self)
        atexit.register(_flush_ref, ref)

    def _reset(self) -> None:
        self._pid = current_pid()
        self._counts: Counter[str] = Counter()
        self._dirty = False
        self._last_flush = time.monotonic()
        self._path = f"{STATS_DIR}/{socket.gethostname()}-{self._pid}-{secrets.token_hex(4)}.json"
        if multiprocessing.parent_process() is not None:
            # multiprocessing children leave through os._exit: atexit does not run there.
            multiprocessing.util.Finalize(self, _flush_ref, args=(weakref.ref(self),), exitpriority=10)

    def add(self, **counts: int) -> None:
        """Add to the counters (names from :data:`FIELDS`)."""
        with self._lock:
            if self._pid != current_pid():
                self._reset()
            self._counts.update(counts)
            self._dirty = True
            due = time.monotonic() - self._last_flush >= self.interval
        if due:
            self.flush()

    @property
    def counts(self) -> dict[str, int]:
        """This process's counters so far."""
        with self._lock:
            return {f: int(self._counts[f]) for f in FIELDS}

    def flush(self) -> None:
        """Write this process's counters now (if they changed)."""
        with self._lock:
            if not self._dirty or self._pid != current_pid():
                return
            payload = json.dumps({f: int(self._counts[f]) for f in FIELDS}).encode()
            self._dirty = False
            self._last_flush = time.monotonic()
            path = self._path
        try:
            self.store.write(path, payload)
        except RobostoreError as exc:
            log.warning("frame cache: cannot write hit/miss counters to %s: %s", self.store.describe(path), exc)


def _flush_ref(ref: weakref.ref[StatsRecorder]) -> None:
    recorder = ref()
    if recorder is not None:
        recorder.flush()


def read_stats(store: Store) -> dict[str, int]:
    """The counters of every process that used the cache at ``store``, summed."""
    total: Counter[str] = Counter()
    files = [f.path for f in store.list_info(STATS_DIR) if f.path.endswith(".json")]
    for path, raw in store.read_many(files).items():
        try:
            counts = json.loads(raw)
            total.update({f: int(counts.get(f, 0)) for f in FIELDS})
        except (ValueError, TypeError, AttributeError):
            log.warning("frame cache: ignoring unreadable counters %s", store.describe(path))
    return {f: int(total[f]) for f in FIELDS}
