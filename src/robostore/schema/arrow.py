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
from robostore.schema import language
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
    if feature.is_language:
        raise SchemaError("language columns have a type per column name: use language.column_type(key)")
    out = scalar_type(feature.dtype)
    if feature.shape == (1,):
        return out
    for size in reversed(feature.shape):
        out = pa.list_(out, size)
    return out


def column_mismatch(column: pa.DataType, feature: Feature) -> str | None:
    """Why a data-file column of type ``column`` cannot hold ``feature``, or None if it can.

    Accepts what lerobot and ``datasets`` write: scalars for shape [1] (or one-element
    lists), fixed-size or variable lists for vectors, any numeric type for numeric
    dtypes, struct ``{bytes, path}`` (or plain binary) for images.
    """
    if feature.is_image:
        if pa.types.is_struct(column) and column.get_field_index("bytes") >= 0:
            return None
        return None if pa.types.is_binary(column) or pa.types.is_large_binary(column) else f"holds {column}, not images"
    if feature.is_language:
        return language.column_mismatch(column)
    values, count = column, 1
    while pa.types.is_list(values) or pa.types.is_large_list(values) or pa.types.is_fixed_size_list(values):
        count = count * values.list_size if pa.types.is_fixed_size_list(values) and count else 0
        values = values.value_type
    if feature.dtype == "string":
        ok = pa.types.is_string(values) or pa.types.is_large_string(values)
    else:
        ok = pa.types.is_integer(values) or pa.types.is_floating(values) or pa.types.is_boolean(values)
    if not ok:
        return f"holds {values} values, info.json says {feature.dtype}"
    if count and count != int(np.prod(feature.shape)):
        return f"holds {count} values per frame, info.json says shape {list(feature.shape)}"
    return None


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
    stored = {key: f for key, f in features.items() if not f.is_video}
    fields = [pa.field(key, language.column_type(key) if f.is_language else arrow_type(f)) for key, f in stored.items()]
    hf = {
        "info": {
            "features": {key: language.hf_feature(key) if f.is_language else hf_feature(f) for key, f in stored.items()}
        }
    }
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf)})
