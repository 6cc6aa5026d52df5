"""``delta_timestamps``: validation and neighbour queries, with lerobot's semantics.

A delta is a time offset relative to the current frame. It must lie within
``tolerance_s`` of a multiple of ``1/fps``; it then becomes an integer frame offset.
Neighbours outside the episode are clamped to its first/last frame (the edge value
repeats) and flagged in ``<key>_is_pad``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from robostore.errors import SchemaError
from robostore.schema import Feature

TIMESTAMP_KEY = "timestamp"
#: Suffix of the padding mask returned beside each key with deltas.
PAD_SUFFIX = "_is_pad"


def delta_indices(
    delta_timestamps: Mapping[str, Iterable[float]],
    fps: int,
    tolerance_s: float,
    features: Mapping[str, Feature],
    where: str = "",
) -> dict[str, np.ndarray]:
    """Check ``delta_timestamps`` and turn them into integer frame offsets per key.

    Raises:
        SchemaError: a key is not a feature of the dataset, a delta list is empty or
            not numbers, or a delta is not within ``tolerance_s`` of a multiple of
            ``1/fps``; ``"timestamp"`` is a key of a dataset with video features
            (video frames are found by the sample's own timestamp: lerobot fails on
            every sample of such a dataset).
    """
    prefix = f"{where}: " if where else ""
    known = set(features)
    out: dict[str, np.ndarray] = {}
    for key, deltas in delta_timestamps.items():
        if key not in known:
            raise SchemaError(
                f"{prefix}delta_timestamps key {key!r} is not a feature of the dataset (features: {sorted(known)})"
            )
        if key == TIMESTAMP_KEY and any(f.is_video for f in features.values()):
            raise SchemaError(
                f"{prefix}delta_timestamps cannot have the key 'timestamp' in a dataset with video features "
                "(each sample's timestamp locates its video frames); ask for the neighbours of another feature"
            )
        try:
            values = [float(d) for d in deltas]
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{prefix}delta_timestamps[{key!r}] must be a list of seconds, got {deltas!r}") from exc
        if not values:
            raise SchemaError(f"{prefix}delta_timestamps[{key!r}] is empty")
        offsets = []
        for value in values:
            if not math.isfinite(value) or abs(value * fps - round(value * fps)) / fps > tolerance_s:
                raise SchemaError(
                    f"{prefix}delta_timestamps[{key!r}] has {value!r}, which is not within "
                    f"tolerance_s={tolerance_s} of a multiple of 1/fps (fps={fps}); use k/{fps} seconds"
                )
            offsets.append(round(value * fps))
        out[key] = np.asarray(offsets, dtype=np.int64)
    return out


@dataclass(frozen=True)
class Neighbours:
    """The frames a key needs for one sample: global indices (clamped) and pad mask."""

    indices: np.ndarray  # int64 [T], global frame indices inside the episode
    is_pad: np.ndarray  # bool [T], True where the wanted frame lies outside the episode


def neighbours(index: int, offsets: np.ndarray, episode_from: int, episode_to: int) -> Neighbours:
    """Global frame ``index + offsets`` clamped to ``[episode_from, episode_to)``."""
    wanted = index + offsets
    return Neighbours(
        indices=np.clip(wanted, episode_from, episode_to - 1),
        is_pad=(wanted < episode_from) | (wanted >= episode_to),
    )
