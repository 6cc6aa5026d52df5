"""fsspec's in-process ``memory://`` filesystem (tests, scratch datasets)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from robostore.store import Store, content_hash


class MemoryStore(Store):
    """A dataset in fsspec's process-global memory filesystem.

    Each write replaces the whole object at once, so writes are atomic. Listings carry
    no content token, so the token is a hash of the bytes (cheap: they are in memory).
    """

    schemes = ("memory",)

    def _token(self, path: str, detail: Mapping[str, Any]) -> str | None:
        return content_hash(self.fs.cat_file(self.full_path(path)))
