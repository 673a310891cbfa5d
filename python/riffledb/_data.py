"""Turning user data (Arrow, pandas, Python objects, streams) into Arrow streams."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa


def _is_pandas(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and type(data).__name__ == "DataFrame"


def _schema_difference(data: pa.Schema, target: pa.Schema) -> str:
    for field in target:
        index = data.get_field_index(field.name)
        if index < 0:
            return f"column '{field.name}' is missing from the data"
        other = data.field(index)
        if other.type != field.type:
            return (
                f"column '{field.name}' is {other.type} in the data "
                f"but {field.type} in the table"
            )
    for field in data:
        if target.get_field_index(field.name) < 0:
            return f"column '{field.name}' is not in the table"
    return "the columns differ"


def _mismatch(data: pa.Schema, target: pa.Schema) -> ValueError:
    return ValueError(
        "Data schema does not match the table schema: "
        f"{_schema_difference(data, target)}.\n"
        f"Data schema:\n{data}\nTable schema:\n{target}"
    )


def align(data, target: pa.Schema):
    """Reorders and safely casts a ``pa.Table`` or ``pa.RecordBatch`` to ``target``.

    Raises:
        ValueError: the schemas do not fit (naming both).
    """
    if data.schema.equals(target, check_metadata=False):
        return data
    if sorted(data.schema.names) != sorted(target.names):
        raise _mismatch(data.schema, target)
    if data.schema.names != target.names:
        data = data.select(target.names)
    try:
        return data.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise _mismatch(data.schema, target) from error


def _aligned_reader(
    reader: pa.RecordBatchReader, target: pa.Schema
) -> pa.RecordBatchReader:
    if reader.schema.equals(target, check_metadata=False):
        return reader
    if sorted(reader.schema.names) != sorted(target.names):
        raise _mismatch(reader.schema, target)

    def batches():
        for batch in reader:
            yield align(batch, target)

    return pa.RecordBatchReader.from_batches(target, batches())


def to_arrow_stream(data: Any, schema: pa.Schema | None = None):
    """Returns an object with ``__arrow_c_stream__`` for ``data`` and its schema.

    Arrow tables, batches and readers pass through without copying; a reader (or any
    ``__arrow_c_stream__`` producer) is streamed batch by batch, never materialised.
    With ``schema``, the data is reordered and safely cast to it.
    """
    if schema is not None and not isinstance(schema, pa.Schema):
        schema = pa.schema(schema)
    if isinstance(data, pa.Table):
        table = data if schema is None else align(data, schema)
        return table, table.schema
    if isinstance(data, pa.RecordBatch):
        batch = data if schema is None else align(data, schema)
        return pa.Table.from_batches([batch]), batch.schema
    if isinstance(data, pa.RecordBatchReader):
        reader = data if schema is None else _aligned_reader(data, schema)
        return reader, reader.schema
    if _is_pandas(data):
        table = pa.Table.from_pandas(data, schema=schema, preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata.pop(b"pandas", None)  # pandas' own bookkeeping, not the user's metadata
        table = table.replace_schema_metadata(metadata or None)
        return table, table.schema
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        if schema is not None:
            reader = _aligned_reader(reader, schema)
        return reader, reader.schema
    if isinstance(data, Mapping):
        table = pa.Table.from_pydict(dict(data), schema=schema)
        return table, table.schema
    if isinstance(data, list):
        if not data and schema is None:
            raise ValueError("Cannot infer a schema from an empty list: pass schema=")
        if data and not isinstance(data[0], Mapping):
            if isinstance(data[0], (pa.RecordBatch, pa.Table)):
                tables = [
                    pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
                    for b in data
                ]
                table = pa.concat_tables(tables)
                if schema is not None:
                    table = align(table, schema)
                return table, table.schema
            raise TypeError(
                "A list of data must hold dicts (one per row) or record batches, "
                f"got {type(data[0]).__name__} at position 0"
            )
        table = pa.Table.from_pylist(data, schema=schema)
        return table, table.schema
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        if schema is None:
            raise ValueError("An iterator of record batches needs schema=")
        batches = (align(b, schema) for b in data)
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        return reader, schema
    raise TypeError(
        f"Unsupported data of type {type(data).__name__}: pass a pyarrow Table, "
        "RecordBatch or RecordBatchReader, a pandas DataFrame, a list of dicts, a dict "
        "of lists, or an "
        "object with __arrow_c_stream__"
    )
