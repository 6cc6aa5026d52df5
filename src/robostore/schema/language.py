"""lerobot 0.6's language annotation columns: ``language_persistent`` and ``language_events``.

A feature of dtype ``"language"`` (shape ``[1]``) holds, per frame, a list of message
rows: ``{"role", "content", "style", "timestamp", "camera", "tool_calls"}`` for the
persistent column (every frame of an episode carries the rows in force, each with the
time it started), the same without ``timestamp`` for the events column (a row sits on
the frame it happened at). ``tool_calls`` is a list of JSON values or null.

lerobot reads these columns through ``datasets`` with the types below (timestamps as
float32, tool calls decoded from JSON), whatever the file stores: its own annotation
writer lets pyarrow infer the types (float64 timestamps, tool calls as structs, null
columns). :func:`language_values` gives what lerobot returns, value for value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from robostore.errors import SchemaError

PERSISTENT = "language_persistent"
EVENTS = "language_events"
COLUMNS = (PERSISTENT, EVENTS)
PERSISTENT_FIELDS = ("role", "content", "style", "timestamp", "camera", "tool_calls")
EVENT_FIELDS = ("role", "content", "style", "camera", "tool_calls")
_TIMESTAMP = "timestamp"
_TOOL_CALLS = "tool_calls"


def _json_type() -> pa.DataType:
    return pa.json_() if hasattr(pa, "json_") else pa.string()  # pyarrow < 19 has no JSON type


def fields_of(key: str) -> tuple[str, ...]:
    """The row fields of language column ``key``."""
    if key not in COLUMNS:
        raise SchemaError(f"language features are named {list(COLUMNS)} (lerobot's columns), got {key!r}")
    return PERSISTENT_FIELDS if key == PERSISTENT else EVENT_FIELDS


def row_type(key: str, json_as: pa.DataType | None = None) -> pa.StructType:
    """Arrow type of one row of column ``key``, as lerobot declares it."""
    types = {
        "role": pa.string(),
        "content": pa.string(),
        "style": pa.string(),
        _TIMESTAMP: pa.float32(),
        "camera": pa.string(),
        _TOOL_CALLS: pa.list_(json_as or _json_type()),
    }
    return pa.struct(
        [pa.field(name, types[name], nullable=name not in ("role", _TIMESTAMP)) for name in fields_of(key)]
    )


def column_type(key: str) -> pa.DataType:
    """Arrow type of language column ``key`` in data files robostore writes."""
    return pa.list_(row_type(key))


def hf_feature(key: str) -> dict[str, Any]:
    """The ``datasets`` Features entry lerobot declares for column ``key``."""
    values = {"role": "string", "content": "string", "style": "string", _TIMESTAMP: "float32", "camera": "string"}
    row: dict[str, Any] = {}
    for name in fields_of(key):
        if name == _TOOL_CALLS:
            row[name] = {"feature": {"_type": "Json"}, "_type": "List"}
        else:
            row[name] = {"dtype": values[name], "_type": "Value"}
    return {"feature": row, "_type": "List"}


def column_mismatch(column: pa.DataType) -> str | None:
    """Why a data-file column cannot hold language rows, or None if it can."""
    if pa.types.is_list(column) or pa.types.is_large_list(column):
        row = column.value_type
        if pa.types.is_null(row):  # a column with no rows at all
            return None
        if pa.types.is_struct(row) and row.get_field_index("role") >= 0:
            return None
    return f"holds {column}, not language rows (a list of structs with a 'role')"


def language_values(array: pa.Array, key: str) -> np.ndarray:
    """Per frame, the rows of a language column as lerobot returns them: an object array
    of lists of dicts (fields in lerobot's order, timestamps as float32 values,
    ``tool_calls`` decoded from JSON)."""
    fields = fields_of(key)
    decode_json = _stores_json_text(array.type)
    out = np.empty(len(array), dtype=object)
    for i, rows in enumerate(array.to_pylist()):
        out[i] = [_row(row, fields, decode_json) for row in rows or ()]
    return out


def _stores_json_text(column: pa.DataType) -> bool:
    row = column.value_type
    if not pa.types.is_struct(row) or row.get_field_index(_TOOL_CALLS) < 0:
        return False
    calls = row.field(_TOOL_CALLS).type
    if not (pa.types.is_list(calls) or pa.types.is_large_list(calls)):
        return False
    item = calls.value_type
    storage = getattr(item, "storage_type", item)  # JSON extension type: strings underneath
    return bool(pa.types.is_string(storage) or pa.types.is_large_string(storage))


def _row(row: dict[str, Any], fields: Sequence[str], decode_json: bool) -> dict[str, Any]:
    out = {name: row.get(name) for name in fields}
    for name, value in row.items():  # fields lerobot does not declare stay, after its own
        out.setdefault(name, value)
    if out.get(_TIMESTAMP) is not None:
        out[_TIMESTAMP] = float(np.float32(out[_TIMESTAMP]))
    calls = out.get(_TOOL_CALLS)
    if decode_json and calls is not None:
        out[_TOOL_CALLS] = [None if c is None else json.loads(c) for c in calls]
    return out


def rows_array(frames: Sequence[Sequence[dict[str, Any]] | None], key: str) -> pa.Array:
    """The Arrow column of language rows for ``frames`` (one list of row dicts per frame)."""
    fields = fields_of(key)
    plain = []
    for rows in frames:
        plain.append(
            [
                {
                    name: (
                        [json.dumps(c) for c in row[name]]
                        if name == _TOOL_CALLS and row.get(name) is not None
                        else row.get(name)
                    )
                    for name in fields
                }
                for row in rows or ()
            ]
        )
    text = pa.array(plain, type=pa.list_(row_type(key, pa.string())))
    return text.cast(column_type(key))
