"""PyTorch datasets over LeRobot v3.0 data (needs the ``torch`` extra).

- :class:`Dataset` — map-style, random access, any sampler and DataLoader workers.
- :class:`StreamingDataset` — iterable, shards episodes across ranks and workers,
  decodes each episode once in order, resumable mid-epoch.

The pieces a sample is made of are shared between datasets: :mod:`.tabular`
(tabular data of selected episodes), :mod:`.deltas` (``delta_timestamps``),
:mod:`.frames` (video/image frames, per-process readers), :mod:`.sample` (the dict).
The streaming dataset adds :mod:`.sharding`, :mod:`.shuffle` and :mod:`.prefetch`.
"""

from robostore.torch.dataset import Dataset
from robostore.torch.streaming import StreamingDataset

__all__ = ["Dataset", "StreamingDataset"]
