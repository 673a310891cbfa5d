"""Database connections (LanceDB's ``DBConnection`` surface)."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from . import _riffledb
from ._args import check_bool, check_int, check_str, describe
from ._data import call_with_source, to_arrow_stream
from ._lifetime import release_at_exit
from .errors import InternalError, InvalidError, RiffledbTypeError
from .table import Table


def native_database(connection: DBConnection) -> _riffledb.Database:
    """The native database of a connection (for riffledb.table, which reopens tables)."""
    return connection._inner


def _release_native(connection: DBConnection) -> None:
    """Drops the native database at interpreter exit (see :mod:`riffledb._lifetime`); a
    directory database used after that reconnects."""
    native = connection._native
    if native is not None:
        connection._released_uri = native.uri
        connection._native = None


def check_create_table_args(
    name: Any, mode: Any, exist_ok: Any, schema: Any
) -> tuple[bool, pa.Schema | None]:
    """``create_table``'s checks before any I/O (local and remote connections): the
    name, the mode, ``exist_ok`` as a bool and ``schema`` as a ``pa.Schema`` (or None)."""
    check_str(name, "name")
    check_str(mode, "mode")
    exist_ok = check_bool(exist_ok, "exist_ok")
    if mode not in ("create", "overwrite"):
        raise InvalidError(f"Invalid mode {mode!r}: expected 'create' or 'overwrite'")
    _riffledb.Database.validate_table_name(name)
    if schema is not None and not isinstance(schema, pa.Schema):
        try:
            schema = pa.schema(schema)
        except (TypeError, ValueError, pa.ArrowException) as error:
            raise RiffledbTypeError(
                "schema must be a pyarrow.Schema or a list of fields, got "
                f"{describe(schema)}"
            ) from error
    return exist_ok, schema


class DBConnection:
    """A connection to a database directory, an ``s3://`` prefix or a ``memory://``
    database.

    Thread-safe. Create one with :func:`riffledb.connect`.
    """

    def __init__(
        self, inner: _riffledb.Database, storage_options: dict[str, str] | None = None
    ):
        self._native: _riffledb.Database | None = inner
        self._released_uri: str | None = None
        # What connect() was given: reconnecting (after a release at exit, or in a
        # worker that unpickled a table) needs them again.
        self._storage_options: dict[str, str] = dict(storage_options or {})
        release_at_exit(self, _release_native)

    @property
    def _inner(self) -> _riffledb.Database:
        native = self._native
        if native is None:  # released at interpreter exit
            uri = self._released_uri
            if uri is None or uri.startswith("memory://"):
                raise InternalError(
                    "This memory:// database was released at interpreter exit"
                )
            native = self._native = _riffledb.Database.connect(uri, self._storage_options)
        return native

    @property
    def storage_options(self) -> dict[str, str]:
        """A copy of the storage options the connection was made with."""
        return dict(self._storage_options)

    @property
    def uri(self) -> str:
        """The absolute directory path, ``"s3://bucket/prefix"``, or ``"memory://"``."""
        native = self._native
        return native.uri if native is not None else self._released_uri

    def __repr__(self) -> str:
        return f"DBConnection(uri={self.uri!r})"

    def table_names(
        self, page_token: str | None = None, limit: int | None = None
    ) -> list[str]:
        """Names of the tables, sorted.

        Args:
            page_token: Return only names after this one (LanceDB's paging).
            limit: Return at most this many names (all when None).
        """
        check_str(page_token, "page_token", none_ok=True)
        check_int(limit, "limit", none_ok=True)
        names = self._inner.table_names()
        if page_token is not None:
            names = [n for n in names if n > page_token]
        if limit is not None:
            names = names[:limit]
        return names

    def __contains__(self, name: str) -> bool:
        return self._inner.has_table(check_str(name, "table name"))

    def __len__(self) -> int:
        return len(self._inner.table_names())

    def create_table(
        self,
        name: str,
        data: Any = None,
        schema: pa.Schema | None = None,
        mode: Literal["create", "overwrite"] = "create",
        exist_ok: bool = False,
    ) -> Table:
        """Creates a table.

        Args:
            name: Letters, digits, ``_``, ``-`` and ``.`` (not leading), at most 248
                (the table directory, ``<name>.riffle``, must fit a 255-character
                file name).
            data: A ``pa.Table``, ``pa.RecordBatch`` or ``pa.RecordBatchReader``
                (streamed), a pandas DataFrame, a list of row dicts, a dict of columns,
                an iterable of record batches, or any object with
                ``__arrow_c_stream__`` (polars, DuckDB, ...). None: an empty table.
            schema: The table schema. With data, the data is matched to it as
                :meth:`Table.add` does (columns by name, safe casts, one error naming
                every missing, extra and mismatched column). Required without data.
            mode: ``"create"`` fails if the table exists (see ``exist_ok``);
                ``"overwrite"`` replaces its rows and schema (as a new version).
            exist_ok: With ``mode="create"``, return the existing table instead of failing
                (``data`` is then ignored).

        Returns:
            The table.

        Raises:
            riffledb.errors.TableExistsError: the table exists (a ValueError).
            riffledb.errors.InvalidError: bad name or mode, no data and no schema, or data
                that does not fit ``schema`` (a ValueError; nothing is created then).
            riffledb.errors.RiffledbTypeError: an argument of the wrong type.
            Exception: whatever an iterator given as ``data`` raised, as itself
                (nothing is written).
        """
        exist_ok, schema = check_create_table_args(name, mode, exist_ok, schema)
        stream = None
        if data is not None:
            if mode == "create" and exist_ok and self._inner.has_table(name):
                return self.open_table(name)
            stream = to_arrow_stream(data)
            if stream is None and schema is None:
                raise InvalidError(
                    f"Cannot create table '{name}' from empty data without a schema: "
                    "pass schema="
                )
        inner = call_with_source(
            stream,
            lambda: self._inner.create_table(name, schema, stream, mode, exist_ok),
        )
        return Table(inner, self)

    def open_table(self, name: str, *, version: int | None = None) -> Table:
        """Opens the newest version of a table, or ``version`` of it.

        Args:
            name: The table.
            version: A version to read (as :meth:`Table.checkout`; writes then fail until
                :meth:`Table.checkout_latest`). Not in LanceDB's ``open_table``, hence
                keyword-only.

        Raises:
            riffledb.errors.TableNotFoundError: the table does not exist (a ValueError;
                the message names it and the database), or ``version`` of it does not
                (the message names both).
        """
        check_str(name, "name")
        if version is not None and (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 0 <= version < 2**64
        ):
            raise InvalidError(
                f"version must be a non-negative 64-bit integer, got {version!r}"
            )
        return Table(self._inner.open_table(name, version), self)

    def drop_table(self, name: str, ignore_missing: bool = False) -> None:
        """Deletes a table and all its versions.

        Raises:
            riffledb.errors.TableNotFoundError: the table does not exist and
                ``ignore_missing`` is False (a ValueError).
        """
        check_str(name, "name")
        self._inner.drop_table(name, check_bool(ignore_missing, "ignore_missing"))
