"""Turning user data (Arrow, pandas, Python objects, streams) into Arrow streams."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pyarrow as pa

from ._args import describe
from .errors import InvalidError, RiffledbTypeError

T = TypeVar("T")


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


def _mismatch(data: pa.Schema, target: pa.Schema) -> InvalidError:
    return InvalidError(
        "Data schema does not match the table schema: "
        f"{_schema_difference(data, target)}.\n"
        f"Data schema:\n{data}\nTable schema:\n{target}"
    )


def align(data, target: pa.Schema):
    """Reorders and safely casts a ``pa.Table`` or ``pa.RecordBatch`` to ``target``.

    Raises:
        riffledb.errors.InvalidError: the schemas do not fit (naming both).
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


class _Source:
    """A caller's batches on their way to the native side, keeping aside what they raise.

    Arrow's C stream interface carries only an error's message across, so an exception
    raised by the caller's generator or reader would reach the caller as a riffledb error
    with its text. This iterator stands between the source and pyarrow's exporter and
    keeps the exception object, which :func:`call_with_source` raises again once the
    native call has failed (and written nothing). It costs one Python call per batch, no
    copy.
    """

    def __init__(self, schema: pa.Schema, batches: Iterable[pa.RecordBatch]):
        self.schema = schema
        self.error: BaseException | None = None
        self._batches = iter(batches)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        try:
            return next(self._batches)
        except StopIteration:
            raise
        except BaseException as error:
            self.error = error
            raise

    def __arrow_c_stream__(self, requested_schema=None):
        reader = pa.RecordBatchReader.from_batches(self.schema, self)
        return reader.__arrow_c_stream__(requested_schema)


def call_with_source(stream: Any, call: Callable[[], T]) -> T:
    """Runs the native ``call`` that consumes ``stream`` (from :func:`to_arrow_stream`).

    If it fails because the caller's data source raised, the source's own exception is
    raised (the same object, its traceback extended), not the riffledb error that carried
    its message.
    """
    try:
        return call()
    except Exception:
        source_error = stream.error if isinstance(stream, _Source) else None
        if source_error is None:
            raise
    # Raised outside the except block so that the source's exception keeps its own
    # __context__ rather than gaining the riffledb error that relayed it.
    raise source_error


def _aligned_reader(reader: pa.RecordBatchReader, target: pa.Schema) -> _Source:
    if reader.schema.equals(target, check_metadata=False):
        return _Source(reader.schema, reader)
    if sorted(reader.schema.names) != sorted(target.names):
        raise _mismatch(reader.schema, target)
    return _Source(target, (align(batch, target) for batch in reader))


def _align_item(position: int, item: Any, schema: pa.Schema) -> pa.RecordBatch:
    """The ``position``-th item of an iterator of batches, aligned to ``schema``."""
    if not isinstance(item, pa.RecordBatch):
        raise RiffledbTypeError(
            "data: an iterator must yield pyarrow RecordBatches, got "
            f"{type(item).__name__} at position {position}"
        )
    return align(item, schema)


def _from_python(convert: Callable[[], pa.Table]) -> pa.Table:
    """``convert()``, with pyarrow's conversion errors raised as riffledb's."""
    try:
        return convert()
    except pa.ArrowTypeError as error:
        raise RiffledbTypeError(f"data cannot be converted to Arrow: {error}") from error
    except pa.ArrowInvalid as error:
        raise InvalidError(f"data cannot be converted to Arrow: {error}") from error


def to_arrow_stream(data: Any, schema: pa.Schema | None = None):
    """Returns an object with ``__arrow_c_stream__`` for ``data`` and its schema.

    Arrow tables, batches and readers pass through without copying; a reader (or any
    ``__arrow_c_stream__`` producer) is streamed batch by batch, never materialised.
    With ``schema``, the data is reordered and safely cast to it. Pass the stream to the
    native call through :func:`call_with_source`.
    """
    if schema is not None and not isinstance(schema, pa.Schema):
        try:
            schema = pa.schema(schema)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise RiffledbTypeError(
                "schema must be a pyarrow.Schema or a list of fields, got "
                f"{describe(schema)}"
            ) from error
    if isinstance(data, pa.Table):
        table = data if schema is None else align(data, schema)
        return table, table.schema
    if isinstance(data, pa.RecordBatch):
        batch = data if schema is None else align(data, schema)
        return pa.Table.from_batches([batch]), batch.schema
    if isinstance(data, pa.RecordBatchReader):
        source = _aligned_reader(data, data.schema if schema is None else schema)
        return source, source.schema
    if _is_pandas(data):
        table = _from_python(
            lambda: pa.Table.from_pandas(data, schema=schema, preserve_index=False)
        )
        metadata = dict(table.schema.metadata or {})
        metadata.pop(b"pandas", None)  # pandas' own bookkeeping, not the user's metadata
        table = table.replace_schema_metadata(metadata or None)
        return table, table.schema
    if hasattr(data, "__arrow_c_stream__"):
        reader = pa.RecordBatchReader.from_stream(data)
        if schema is not None:
            source = _aligned_reader(reader, schema)
            return source, source.schema
        return reader, reader.schema
    if isinstance(data, Mapping):
        table = _from_python(lambda: pa.Table.from_pydict(dict(data), schema=schema))
        return table, table.schema
    if isinstance(data, list):
        if not data and schema is None:
            raise InvalidError("Cannot infer a schema from an empty list: pass schema=")
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
            raise RiffledbTypeError(
                "data: a list must hold dicts (one per row) or record batches, "
                f"got {type(data[0]).__name__} at position 0"
            )
        table = _from_python(lambda: pa.Table.from_pylist(data, schema=schema))
        return table, table.schema
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        if schema is None:
            # The schema of the first batch; whatever the source raises here reaches the
            # caller as itself, before anything native runs.
            iterator = iter(data)
            first = next(iterator, None)
            if first is None:
                raise InvalidError("An empty iterator of record batches needs schema=")
            schema = _align_item(0, first, getattr(first, "schema", None)).schema
            data = itertools.chain([first], iterator)
        batches = (_align_item(p, b, schema) for p, b in enumerate(data))
        return _Source(schema, batches), schema
    raise RiffledbTypeError(
        f"Unsupported data of type {type(data).__name__}: pass a pyarrow Table, "
        "RecordBatch or RecordBatchReader, a pandas DataFrame, a list of dicts, a dict "
        "of lists, or an "
        "object with __arrow_c_stream__"
    )
