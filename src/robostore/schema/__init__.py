"""Pydantic models of the LeRobot v3.0 metadata, and checked path templates.

- :class:`DatasetInfo` — ``meta/info.json``
- :class:`Feature` — one entry of its ``features``
- :class:`Episode`, :class:`VideoSpan` — one row of ``meta/episodes/*.parquet``
- :class:`FeatureStats`, :class:`DatasetStats` — ``meta/stats.json``
- :class:`PathTemplate` — ``data_path`` / ``video_path``, parsed and checked
- :mod:`robostore.schema.arrow` — Arrow types and the ``huggingface`` metadata of data files
"""

from robostore.schema.episodes import Episode, VideoSpan
from robostore.schema.features import DEFAULT_FEATURE_KEYS, DTYPES, Feature, default_features
from robostore.schema.info import CODEBASE_VERSION, DatasetInfo, parse_model
from robostore.schema.stats import STAT_NAMES, DatasetStats, FeatureStats
from robostore.schema.templates import ALLOWED_FIELDS, PathTemplate, check_key

__all__ = [
    "ALLOWED_FIELDS",
    "CODEBASE_VERSION",
    "DEFAULT_FEATURE_KEYS",
    "DTYPES",
    "STAT_NAMES",
    "DatasetInfo",
    "DatasetStats",
    "Episode",
    "Feature",
    "FeatureStats",
    "PathTemplate",
    "VideoSpan",
    "check_key",
    "default_features",
    "parse_model",
]
