"""``meta/stats.json`` and the per-episode ``stats/<feature>/<stat>`` columns."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

#: The statistics lerobot keeps per feature, in its order.
STAT_NAMES = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")

Nested = list[Any]


class FeatureStats(BaseModel):
    """Statistics of one feature (nested lists: cameras are [3][1][1]).

    Every field is optional because datasets in the wild carry subsets of them.
    """

    model_config = ConfigDict(extra="allow")

    min: Nested | None = None
    max: Nested | None = None
    mean: Nested | None = None
    std: Nested | None = None
    count: Nested | None = None
    q01: Nested | None = None
    q10: Nested | None = None
    q50: Nested | None = None
    q90: Nested | None = None
    q99: Nested | None = None

    @field_validator(*STAT_NAMES)
    @classmethod
    def _numbers(cls, value: Nested | None) -> Nested | None:
        if value is not None and not _all_numbers(value):
            raise ValueError("must be a (nested) list of numbers")
        return value

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump(mode="json").items() if v is not None}


def _all_numbers(value: Any) -> bool:
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return isinstance(value, (int, float))


class DatasetStats(BaseModel):
    """The content of ``meta/stats.json``: feature name → :class:`FeatureStats`."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, FeatureStats]

    @classmethod
    def from_raw(cls, raw: Any) -> DatasetStats:
        return cls.model_validate({"features": raw})

    def to_json_dict(self) -> dict[str, Any]:
        return {k: v.to_json() for k, v in self.features.items()}
