"""Query builders: plain scans (``Table.search()``) and takes by offset or row id."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ._args import check_int, check_str, check_str_list, describe
from .errors import RiffledbTypeError

if TYPE_CHECKING:
    from .table import Table


def native_reader(stream) -> pa.RecordBatchReader:
    """A ``_riffledb.NativeStream`` as a pyarrow reader.

    Batches cross one at a time through the native stream's own methods rather than the C
    stream interface, so that an error while reading (a filter is evaluated then) raises
    its riffledb.errors class: pyarrow re-raises the exception a generator raised.
    """
    schema = pa.Schema._import_from_c_capsule(stream.schema())

    def batches():
        while (array := stream.read_next()) is not None:
            yield pa.RecordBatch._import_from_c(array[0], schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def native_read_all(stream) -> pa.Table:
    """The rest of a ``_riffledb.NativeStream`` as a table, read natively."""
    return pa.RecordBatchReader._import_from_c_capsule(stream.read_all()).read_all()


def _projection(
    columns: Sequence[str] | Mapping[str, str] | None,
) -> list[str] | list[tuple[str, str]]:
    """What the native scan takes: a list of column names (never parsed as SQL), or of
    (output name, SQL) pairs."""
    if columns is None:
        return []
    if isinstance(columns, Mapping):
        for name, expr in columns.items():
            if not isinstance(name, str) or not isinstance(expr, str):
                raise RiffledbTypeError(
                    "columns must map output names (str) to SQL (str), got "
                    f"{describe(name)}: {describe(expr)}"
                )
        return list(columns.items())
    return check_str_list(columns, "columns")


class Query:
    """A plain scan of a table: filter, projection, offset and limit.

    Every method returns the builder itself; nothing runs until a ``to_*`` call. The scan
    reads the table version current when it runs.
    """

    def __init__(self, table: Table):
        self._table = table
        self._where: str | None = None
        self._columns: list[str] | list[tuple[str, str]] = []
        self._limit: int | None = None
        self._offset = 0
        self._with_row_id = False

    def where(self, where: str, prefilter: bool | None = None) -> Query:
        """Keeps rows where the SQL expression ``where`` is true."""
        self._where = check_str(where, "where")
        return self

    def select(self, columns: Sequence[str] | Mapping[str, str]) -> Query:
        """Output columns, as in LanceDB: a list selects columns by name, in that order
        (``_rowid`` and ``_rowoffset`` allowed; a name is never parsed as SQL); a dict
        maps output names to SQL expressions (``{"double": "id * 2", "id": "id"}``).

        Raises:
            TypeError: a list entry that is not a str (naming its position), or a dict
                key or value that is not a str.
            ValueError: when the query runs, a name that is not a column ("Column 'x'
                does not exist; available columns: ..."), or an expression that does not
                parse or bind.
        """
        self._columns = _projection(columns)
        return self

    def limit(self, limit: int | None) -> Query:
        """Returns at most ``limit`` rows (None: no limit)."""
        self._limit = check_int(limit, "limit", none_ok=True)
        return self

    def offset(self, offset: int) -> Query:
        """Skips the first ``offset`` matching rows."""
        self._offset = check_int(offset, "offset")
        return self

    def with_row_id(self, with_row_id: bool = True) -> Query:
        """Adds the ``_rowid`` column (uint64) last."""
        self._with_row_id = bool(with_row_id)
        return self

    def _scan(self, batch_size: int | None = None):
        from .table import reference

        return (
            reference(self._table)
            .native()
            .scan(
                self._where,
                self._columns,
                self._with_row_id,
                self._offset,
                self._limit,
                check_int(batch_size, "batch_size", none_ok=True) or 0,
            )
        )

    def to_reader(self, batch_size: int | None = None) -> pa.RecordBatchReader:
        """Streams the result."""
        return native_reader(self._scan(batch_size))

    def to_batches(self, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        """Iterates over the result as record batches of at most ``batch_size`` rows."""
        return iter(self.to_reader(batch_size))

    def to_arrow(self) -> pa.Table:
        return native_read_all(self._scan())

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_list(self) -> list[dict[str, Any]]:
        return self.to_arrow().to_pylist()


class TakeQuery:
    """Rows by offset (``Table.take_offsets``) or row id (``Table.take_row_ids``).

    Rows come back in the requested order, duplicates included.
    """

    def __init__(self, table: Table, keys, by_row_id: bool):
        self._table = table
        self._keys = keys
        self._by_row_id = by_row_id
        self._columns: list[str] = []
        self._with_row_id = False
        self._binary_views = False

    def select(self, columns: Sequence[str]) -> TakeQuery:
        """Only these columns, in this order (``_rowid`` may be named).

        Raises:
            TypeError: not a list of str (naming the position of an entry that is not),
                or a dict: takes select stored columns only, no SQL expressions.
        """
        if isinstance(columns, Mapping):
            raise RiffledbTypeError(
                "A take selects columns by name: pass a list of str, got a dict "
                "(SQL expressions are only supported in search().select)"
            )
        self._columns = check_str_list(columns, "columns")
        return self

    def with_row_id(self, with_row_id: bool = True) -> TakeQuery:
        self._with_row_id = bool(with_row_id)
        return self

    def with_binary_views(self, enabled: bool = True) -> TakeQuery:
        """Returns binary/string columns as Arrow views into the table, without a copy.

        ``binary`` and ``large_binary`` columns come back as ``binary_view``, ``string``
        and ``large_string`` as ``string_view``. Values longer than 12 bytes are not
        copied: the views point into the table's own buffers (the memory-mapped
        fragment files of a directory table), which the result keeps alive. Other
        columns, and binary or string values nested in lists or structs, are unchanged.

        pyarrow (``to_pylist``, ``to_pandas``, compute) and polars read view columns;
        cast them back with ``pa.Table.cast`` where a consumer needs the plain types.
        """
        if not isinstance(enabled, bool):
            raise TypeError(
                f"with_binary_views() takes a bool, got {type(enabled).__name__}"
            )
        self._binary_views = enabled
        return self

    def to_batch(self) -> pa.RecordBatch:
        return self._table._take(
            self._keys,
            self._by_row_id,
            self._columns,
            self._with_row_id,
            binary_views=self._binary_views,
        )

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_batches([self.to_batch()])

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        return iter([self.to_batch()])

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_list(self) -> list[dict[str, Any]]:
        return self.to_batch().to_pylist()
