"""Episode selections: the one parser of ``--episodes`` for every command and API.

``"0-99,200"`` and ``[200, 3, 3]`` both become sorted, unique, non-negative indices.
Strict: a backwards range (``5-3``), an empty part (``1,,2``), a negative or non-integer
index and an empty selection are :class:`~robostore.errors.SchemaError`, never a
silently empty or surprising selection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from robostore.errors import SchemaError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
#: Most indices one selection may name (a typo like ``0-9999999999`` is not a plan).
MAX_SELECTED = 10_000_000


def parse_episodes(episodes: Iterable[int] | str) -> list[int]:
    """``"0-99,200"`` or an iterable of ints → sorted unique episode indices."""
    if isinstance(episodes, str):
        out: set[int] = set()
        for part in episodes.split(","):
            match = _RANGE.match(part)
            if not match:
                raise SchemaError(f"episodes {episodes!r}: {part!r} is not an index or a range like 3-7")
            lo, hi = int(match[1]), int(match[2] if match[2] is not None else match[1])
            if hi < lo:
                raise SchemaError(f"episodes {episodes!r}: range {part.strip()!r} runs backwards")
            if hi - lo + 1 + len(out) > MAX_SELECTED:
                raise SchemaError(f"episodes {episodes!r}: more than {MAX_SELECTED} episodes selected")
            out.update(range(lo, hi + 1))
        chosen = sorted(out)
    else:
        chosen = sorted(set(episodes))
        if any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0 for e in chosen):
            raise SchemaError(f"episodes must be non-negative integers, got {chosen}")
        chosen = [int(e) for e in chosen]
    if not chosen:
        raise SchemaError("episodes: the selection is empty")
    return chosen
