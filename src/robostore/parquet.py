"""Reading and writing parquet files through a Store, with typed errors."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from robostore.errors import CorruptDataset, RobostoreError
from robostore.store import Store


def to_parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> bytes:
    """Serialise ``table`` as lerobot does: snappy-compressed parquet."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy", row_group_size=row_group_size)
    return sink.getvalue()


def parse_parquet(data: bytes, where: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Parse parquet bytes; damage becomes :class:`CorruptDataset` naming ``where``."""
    try:
        return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataset(f"{where}: not a readable parquet file ({exc}); re-copy or repair it") from exc


def read_parquet(store: Store, path: str, columns: Sequence[str] | Callable[[str], bool] | None = None) -> pa.Table:
    """Read ``path`` from ``store``, optionally only some columns.

    ``columns`` is a list of names or a predicate on names. With columns, only the
    footer and those column chunks are fetched (ranged reads on remote backends).
    """
    where = store.describe(path)
    if columns is None:
        return parse_parquet(store.read(path), where)
    try:
        with store.open(path) as fh:
            pf = pq.ParquetFile(fh)
            names = [n for n in pf.schema_arrow.names if columns(n)] if callable(columns) else list(columns)
            return pf.read(columns=names)
    except RobostoreError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataset(f"{where}: not a readable parquet file ({exc}); re-copy or repair it") from exc


def read_parquet_schema(store: Store, path: str) -> pa.Schema:
    """The Arrow schema of ``path`` from its footer alone."""
    where = store.describe(path)
    try:
        with store.open(path) as fh:
            return pq.ParquetFile(fh).schema_arrow
    except RobostoreError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptDataset(f"{where}: not a readable parquet file ({exc}); re-copy or repair it") from exc
