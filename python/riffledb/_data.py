"""Turning user data (Arrow, pandas, Python objects, streams) into Arrow streams.

Only conversion lives here: the data keeps its own column order and types. Checking it
against a table's schema, reordering and casting is the C++ write path's job (one check,
one message; see ``docs/tables.md``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import pyarrow as pa

from .errors import InvalidError, RiffledbTypeError

T = TypeVar("T")


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
                raise RiffledbTypeError(
                    "A list of rows must hold only dicts, got "
                    f"{type(row).__name__} at position {position}"
                ) from None
        raise


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


def _from_python(convert: Callable[[], pa.Table]) -> pa.Table:
    """``convert()``, with pyarrow's conversion errors raised as riffledb's."""
    try:
        return convert()
    except pa.ArrowTypeError as error:
        raise RiffledbTypeError(f"data cannot be converted to Arrow: {error}") from error
    except pa.ArrowInvalid as error:
        raise InvalidError(f"data cannot be converted to Arrow: {error}") from error


def _as_batches(item: Any, position: int) -> list[pa.RecordBatch]:
    if isinstance(item, pa.RecordBatch):
        return [item]
    if isinstance(item, pa.Table):
        return item.to_batches()
    raise RiffledbTypeError(
        "An iterable of data must yield pyarrow RecordBatches or Tables, got "
        f"{type(item).__name__} at position {position}"
    )


def _from_iterable(data: Iterable) -> _Source | None:
    # Whatever the source raises for its first item reaches the caller as itself, before
    # anything native runs; later errors through call_with_source.
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

    return _Source(schema, batches())


def to_arrow_stream(data: Any) -> Any:
    """Returns ``data`` as an Arrow stream for the native write path: an object with
    ``__arrow_c_stream__``, or None for data that holds no rows and no types (an empty
    list or iterator).

    Anything with ``__arrow_c_stream__`` (pyarrow tables, batches and readers, polars,
    DuckDB, ...) is returned as is, so the native side pulls it directly (a reader is
    streamed batch by batch, never materialised, and never passes through Python). A
    pandas DataFrame loses its index and pandas metadata; lists of row dicts and dicts of
    columns are converted with inferred types; an iterable of record batches becomes a
    reader with the first batch's schema.

    Pass the stream to the native call through :func:`call_with_source`, so that an
    exception raised by the caller's iterator reaches the caller as itself.

    Raises:
        riffledb.errors.RiffledbTypeError: data of an unsupported kind (naming it).
    """
    if _is_pandas(data):
        # Before __arrow_c_stream__: pandas' own export keeps the index as a column.
        return _from_python(lambda: _from_pandas(data))
    if isinstance(data, pa.RecordBatchReader):
        # Passed through batch by batch (no copy, no cast): a reader is often fed by the
        # caller's Python generator, whose exception then reaches the caller as itself.
        return _Source(data.schema, data)
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, Mapping):
        return _from_python(lambda: _from_columns(data))
    if isinstance(data, list):
        if not data:
            return None
        if isinstance(data[0], Mapping):
            return _from_python(lambda: _from_rows(data))
        if isinstance(data[0], (pa.RecordBatch, pa.Table)):
            return _from_iterable(data)
        raise RiffledbTypeError(
            "A list of data must hold dicts (one per row) or record batches, "
            f"got {type(data[0]).__name__} at position 0"
        )
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        return _from_iterable(data)
    raise unsupported_data(data)


def unsupported_data(data: Any) -> RiffledbTypeError:
    """The error for ``data`` of a type no table takes."""
    return RiffledbTypeError(
        f"Unsupported data of type {type(data).__name__}: pass a pyarrow Table, "
        "RecordBatch or RecordBatchReader, a pandas DataFrame, a list of dicts, a dict "
        "of lists, an iterable of record batches, or an object with __arrow_c_stream__"
    )
