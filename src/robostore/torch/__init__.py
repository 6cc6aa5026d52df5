"""PyTorch datasets over LeRobot v3.0 data (needs the ``torch`` extra).

- :class:`Dataset` — map-style, random access, any sampler and DataLoader workers.
- :class:`StreamingDataset` — iterable, shards episodes across ranks and workers,
  decodes each episode once in order, resumable mid-epoch.

The pieces a sample is made of are shared between datasets: :mod:`.tabular`
(tabular data of selected episodes), :mod:`.deltas` (``delta_timestamps``),
:mod:`.frames` (video/image frames, per-process readers), :mod:`.sample` (the dict).
The streaming dataset adds :mod:`.sharding`, :mod:`.shuffle` and :mod:`.prefetch`.
"""

from __future__ import annotations

import importlib
from typing import Any

# The datasets import torch; served lazily so the torch-free pieces (:mod:`.tabular`,
# used by the web viewer too) import without it.
_LAZY = {"Dataset": "robostore.torch.dataset", "StreamingDataset": "robostore.torch.streaming"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'robostore.torch' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["Dataset", "StreamingDataset"]
