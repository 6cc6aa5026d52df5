"""PyTorch datasets over LeRobot v3.0 data (needs the ``torch`` extra).

- :class:`Dataset` — map-style, random access, any sampler and DataLoader workers.

The pieces a sample is made of are shared between datasets: :mod:`.tabular`
(tabular data of selected episodes), :mod:`.deltas` (``delta_timestamps``),
:mod:`.frames` (video/image frames, per-process readers), :mod:`.sample` (the dict).
"""

from robostore.torch.dataset import Dataset

__all__ = ["Dataset"]
