"""The writer lease: one live Recorder per dataset URL.

A small JSON object at :data:`LEASE_PATH` names the writer (a random id, host, pid)
and when the lease expires. A Recorder renews it while it runs and deletes it on
close. A lease is *stale* when it has expired or when its writer ran on this host
and that process is gone (a crash); ``force=True`` takes over any lease.

Object stores have no compare-and-swap that every backend offers, so taking a lease
is write-then-read-back: of two writers racing within the same instant, the one whose
write landed last wins and the other sees a foreign id and gives up.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from robostore.errors import LeaseError, NotFound
from robostore.store import Store

log = logging.getLogger(__name__)

LEASE_PATH = ".robostore-lease.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Lease:
    """A lease held on ``store`` by this process.

    Args:
        ttl_s: seconds the lease stays valid without renewal; None = until released
            (used on the Hub, where a renewal would be a commit).
    """

    store: Store
    owner: str
    ttl_s: float | None

    @classmethod
    def acquire(cls, store: Store, *, ttl_s: float | None = 120.0, force: bool = False) -> Lease:
        """Take the lease of ``store`` or raise :class:`LeaseError` if a live writer holds it."""
        current = read_lease(store)
        if current is not None and not force:
            why = stale_reason(current)
            if why is None:
                raise LeaseError(
                    f"{store.describe(LEASE_PATH)}: another Recorder is writing this dataset "
                    f"(host {current.get('host')!r}, pid {current.get('pid')}, since {current.get('acquired_at')}); "
                    "stop it first, or pass force=True if you know it is dead"
                )
            log.warning("%s: taking over a stale lease (%s)", store.url, why)
        elif current is not None:
            log.warning(
                "%s: force=True: taking over the lease of host %s pid %s",
                store.url,
                current.get("host"),
                current.get("pid"),
            )
        lease = cls(store, uuid.uuid4().hex, ttl_s)
        lease._write(acquired=True)
        store.commit("robostore: take the writer lease")
        back = read_lease(store)
        if back is None or back.get("owner") != lease.owner:
            raise LeaseError(f"{store.describe(LEASE_PATH)}: another Recorder took the lease at the same moment; retry")
        return lease

    def _write(self, acquired: bool = False) -> None:
        now = time.time()
        body = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed_at": now,
            "expires_at": None if self.ttl_s is None else now + self.ttl_s,
        }
        if acquired:
            self._acquired_at = now
        body["acquired_at"] = self._acquired_at
        self.store.write(LEASE_PATH, json.dumps(body).encode())

    def renew(self) -> None:
        """Push the expiry forward (written, not committed: transactional stores commit it with data)."""
        self._write()

    def release(self) -> None:
        """Delete the lease if this process still holds it."""
        current = read_lease(self.store)
        if current is not None and current.get("owner") == self.owner:
            self.store.delete(LEASE_PATH, missing_ok=True)


def read_lease(store: Store) -> dict[str, Any] | None:
    """The lease object of ``store``, or None."""
    try:
        raw = store.read(LEASE_PATH)
    except NotFound:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return {"owner": None, "damaged": True}
    return data if isinstance(data, dict) else {"owner": None, "damaged": True}


def stale_reason(lease: dict[str, Any]) -> str | None:
    """Why ``lease`` is stale, or None when its writer may still be alive."""
    if lease.get("damaged"):
        return "the lease object is damaged"
    expires = lease.get("expires_at")
    if isinstance(expires, (int, float)) and expires < time.time():
        return f"it expired {time.time() - expires:.0f} s ago"
    pid = lease.get("pid")
    if lease.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
        return f"its process {pid} on this host is gone"
    return None
