"""Turning user data (Arrow, pandas, Python objects, streams) into Arrow streams.

Only conversion lives here: the data keeps its own column order and types. Checking it
against a table's schema, reordering and casting is the C++ write path's job (one check,
one message; see ``docs/tables.md``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import pyarrow as pa


class Stream(NamedTuple):
    """Data ready for the native write path.

    Attributes:
        data: An object with ``__arrow_c_stream__``, or None for data that holds no rows
            and no types (an empty list or iterator).
        from_rows: Whether the data were rows given as dicts, where a row that omits a
            key holds null there: the write then fills a nullable table column that no
            row names with nulls instead of rejecting the data.
    """

    data: Any
    from_rows: bool


def _is_pandas(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and type(data).__name__ == "DataFrame"


def _from_pandas(frame) -> pa.Table:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata.pop(b"pandas", None)  # pandas' own bookkeeping, not the user's metadata
    return table.replace_schema_metadata(metadata or None)


def _infer(values: Any) -> Any:
    """``values`` as an Arrow array; integers beyond int64 are retried as uint64."""
    try:
        return pa.array(values)
    except OverflowError:
        # Inference stops at int64; Python integers beyond it fit only a uint64 column.
        return pa.array(values, pa.uint64())


def _from_columns(columns: Mapping) -> pa.Table:
    try:
        return pa.Table.from_pydict(dict(columns))
    except OverflowError:
        return pa.Table.from_pydict({key: _infer(v) for key, v in columns.items()})


def _from_rows(rows: list) -> pa.Table:
    # Inferred as one struct array: Arrow takes the fields from the keys of all rows, in
    # order of first appearance, in C++ (pa.Table.from_pylist takes the keys of the first
    # row only, dropping a key that only later rows have), and a row without a key holds
    # null there.
    try:
        return pa.Table.from_struct_array(pa.array(rows))
    except OverflowError:
        keys = dict.fromkeys(key for row in rows for key in row)
        return _from_columns({key: [row.get(key) for row in rows] for key in keys})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for position, row in enumerate(rows):  # error path only
            if not isinstance(row, Mapping):
                raise TypeError(
                    "A list of rows must hold only dicts, got "
                    f"{type(row).__name__} at position {position}"
                ) from None
        raise


def _as_batches(item: Any, position: int) -> list[pa.RecordBatch]:
    if isinstance(item, pa.RecordBatch):
        return [item]
    if isinstance(item, pa.Table):
        return item.to_batches()
    raise TypeError(
        "An iterable of data must yield pyarrow RecordBatches or Tables, got "
        f"{type(item).__name__} at position {position}"
    )


def _from_iterable(data: Iterable) -> pa.RecordBatchReader | None:
    items = iter(data)
    first = next(items, None)
    if first is None:
        return None
    if not isinstance(first, (pa.RecordBatch, pa.Table)):
        _as_batches(first, 0)  # raises, naming the type
    schema = first.schema

    def batches():
        for position, item in enumerate(itertools.chain([first], items)):
            yield from _as_batches(item, position)

    return pa.RecordBatchReader.from_batches(schema, batches())


def to_arrow_stream(data: Any) -> Stream:
    """Returns ``data`` as an Arrow stream for the native write path.

    Anything with ``__arrow_c_stream__`` (pyarrow tables, batches and readers, polars,
    DuckDB, ...) is returned as is, so the native side pulls it directly (a reader is
    streamed batch by batch, never materialised, and never passes through Python). A
    pandas DataFrame loses its index and pandas metadata; lists of row dicts and dicts of
    columns are converted with inferred types; an iterable of record batches becomes a
    reader with the first batch's schema.

    Raises:
        TypeError: data of an unsupported kind (naming it).
    """
    if _is_pandas(data):
        # Before __arrow_c_stream__: pandas' own export keeps the index as a column.
        return Stream(_from_pandas(data), False)
    if hasattr(data, "__arrow_c_stream__"):
        return Stream(data, False)
    if isinstance(data, Mapping):
        return Stream(_from_columns(data), False)
    if isinstance(data, list):
        if not data:
            return Stream(None, True)
        if isinstance(data[0], Mapping):
            return Stream(_from_rows(data), True)
        if isinstance(data[0], (pa.RecordBatch, pa.Table)):
            return Stream(_from_iterable(data), False)
        raise TypeError(
            "A list of data must hold dicts (one per row) or record batches, "
            f"got {type(data[0]).__name__} at position 0"
        )
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        return Stream(_from_iterable(data), False)
    raise TypeError(
        f"Unsupported data of type {type(data).__name__}: pass a pyarrow Table, "
        "RecordBatch or RecordBatchReader, a pandas DataFrame, a list of dicts, a dict "
        "of lists, an iterable of record batches, or an object with __arrow_c_stream__"
    )
