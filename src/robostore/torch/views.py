"""Read-only views that the map-style and the streaming dataset both offer."""

from __future__ import annotations

from robostore.meta import DatasetMeta
from robostore.schema import Feature
from robostore.torch.tabular import EpisodeIndex


class SelectedEpisodes:
    """What a dataset over some episodes of ``meta`` tells about itself.

    Mixed into :class:`~robostore.torch.Dataset` and
    :class:`~robostore.torch.StreamingDataset`, which set ``meta`` and ``_index``.
    """

    meta: DatasetMeta
    _index: EpisodeIndex

    @property
    def fps(self) -> int:
        """Frames per second of the dataset."""
        return self.meta.fps

    @property
    def features(self) -> dict[str, Feature]:
        """The features of info.json."""
        return self.meta.features

    @property
    def num_episodes(self) -> int:
        """Number of selected episodes."""
        return len(self._index.episodes)

    @property
    def num_frames(self) -> int:
        """Frames of the selected episodes: ``len(dataset)``, and the samples of one
        streaming epoch over all ranks and workers."""
        return len(self._index)
