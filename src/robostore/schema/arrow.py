"""Arrow types of data files, and the ``huggingface`` schema metadata lerobot writes.

lerobot reads data parquet files through the ``datasets`` library, which takes the
column types from the ``huggingface`` key of the parquet schema metadata. Files written
by robostore carry the same JSON so lerobot reads them value for value.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from robostore.errors import SchemaError
from robostore.schema.features import Feature

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def scalar_type(dtype: str) -> pa.DataType:
    """Arrow type of one element of a feature of ``dtype``."""
    if dtype == "string":
        return pa.string()
    if dtype == "bool":
        return pa.bool_()
    try:
        return pa.from_numpy_dtype(np.dtype(dtype))
    except TypeError as exc:
        raise SchemaError(f"dtype {dtype!r} has no Arrow type") from exc


def arrow_type(feature: Feature) -> pa.DataType:
    """Arrow type of a data-file column: scalars for shape [1], fixed-size lists otherwise."""
    if feature.is_image:
        return IMAGE_TYPE
    if feature.is_video:
        raise SchemaError("video features are stored in mp4 files, not in data parquet files")
    out = scalar_type(feature.dtype)
    if feature.shape == (1,):
        return out
    for size in reversed(feature.shape):
        out = pa.list_(out, size)
    return out


def hf_feature(feature: Feature) -> dict[str, Any]:
    """The ``datasets`` Features entry lerobot writes for ``feature``."""
    if feature.is_image:
        return {"_type": "Image"}
    value = {"dtype": feature.dtype, "_type": "Value"}
    if feature.shape == (1,):
        return value
    if len(feature.shape) == 1:
        return {"feature": value, "length": feature.shape[0], "_type": "List"}
    return {"shape": list(feature.shape), "dtype": feature.dtype, "_type": f"Array{len(feature.shape)}D"}


def data_schema(features: dict[str, Feature]) -> pa.Schema:
    """Schema of data parquet files: every non-video feature in info.json order."""
    fields = [pa.field(key, arrow_type(f)) for key, f in features.items() if not f.is_video]
    hf = {"info": {"features": {key: hf_feature(f) for key, f in features.items() if not f.is_video}}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})
