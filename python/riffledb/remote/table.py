"""Tables of a remote database (LanceDB's ``RemoteTable``), with the local tables'
read surface where the protocol allows it: counts, scans and query builders, takes by
offset and row id, ``__getitems__`` (a torch ``Dataset``), appends, versions.

The query builders are the local ones (:class:`riffledb.query.Query` and
:class:`riffledb.query.TakeQuery`): only where the rows come from differs.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from .. import _riffledb
from .._args import UINT64_MAX, check_int, check_str, index_array
from .._data import to_arrow_stream, unsupported_data
from ..errors import (
    InternalError,
    InvalidError,
    NotSupportedError,
    RiffledbIndexError,
    RiffledbTypeError,
    TableNotFoundError,
)
from ..query import Query, TakeQuery
from ._schema import schema_of_describe
from .db import ARROW_STREAM, ipc_stream_bytes, read_ipc, table_path
from .errors import HttpError, RemoteError, server_words

if TYPE_CHECKING:
    from .db import RemoteDBConnection

#: What LanceDB's client sends as ``k`` for "no limit" (isize::MAX).
NO_LIMIT = 9223372036854775807


_VIEWS = {
    pa.binary(): pa.binary_view(),
    pa.large_binary(): pa.binary_view(),
    pa.string(): pa.string_view(),
    pa.large_string(): pa.string_view(),
}


def _with_views(schema: pa.Schema) -> pa.Schema:
    """``schema`` with its top-level binary and string columns as views (what a local
    take's ``with_binary_views()`` returns)."""
    return pa.schema(
        [f.with_type(_VIEWS.get(f.type, f.type)) for f in schema], schema.metadata
    )


def filter_text(where: str) -> str:
    """A user's filter as sent: parenthesized when it begins with ``_rowoffset`` or
    ``_rowid``, the same filter, which no server reads as a take. A query whose filter
    is exactly ``_rowoffset in (...)`` or ``_rowid in (...)`` IS a take on the wire
    (spec §2.7, LanceDB's ``take_offsets``): its rows come in the order of the list,
    repeats repeated, and a key past the end is a 400, where a filter gives the matching
    rows once each, in scan order. Other filters are sent as they are."""
    stripped = where.lstrip().lower()
    if stripped.startswith(("_rowoffset", "_rowid")):
        return f"({where})"
    return where


class RemoteQuery(Query):
    """``RemoteTable.search()``: the local query builder, run as one ``/query/``
    request (spec §2.6)."""

    def _body(self, limit: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "version": self._table._checkout_version,
            "prefilter": True,
            "k": NO_LIMIT if limit is None else limit,
            "vector": [],
        }
        if self._offset:
            body["offset"] = self._offset
        if self._where is not None:
            body["filter"] = filter_text(self._where)
        if self._columns:
            if isinstance(self._columns[0], tuple):
                body["columns"] = dict(self._columns)
            else:
                body["columns"] = list(self._columns)
        if self._with_row_id:
            body["with_row_id"] = True
        return body

    def to_arrow(self) -> pa.Table:
        if self._limit == 0:  # k=0 means "no limit" on the wire
            return self._table._query(self._body(1)).slice(0, 0)
        return self._table._query(self._body(self._limit))

    def to_reader(self, batch_size: int | None = None) -> pa.RecordBatchReader:
        """The result (fetched whole: the protocol has no streaming), re-chunked to
        ``batch_size`` rows: batches of exactly that many but the last, as a local
        query's (the server's own batches are merged first)."""
        batch_size = check_int(batch_size, "batch_size", minimum=1, none_ok=True)
        table = self.to_arrow()
        if (
            batch_size is not None
            and table.num_columns
            and table.column(0).num_chunks > 1
        ):
            table = table.combine_chunks()
        return pa.RecordBatchReader.from_batches(
            table.schema, table.to_batches(max_chunksize=batch_size)
        )

    def to_batches(self, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        return iter(self.to_reader(batch_size))


class RemoteTable:
    """A table of a :class:`~riffledb.remote.db.RemoteDBConnection`.

    Reads see the newest version, or the checked-out one. Thread-safe; keeps working in
    a forked child (the connection's client is per process); pickles as its connection
    settings, name and checked-out version (a spawn worker reconnects). A map-style
    torch ``Dataset``: ``len(table)`` rows, ``table.__getitems__(offsets)`` a
    ``pa.Table`` of those rows in order.
    """

    def __init__(
        self, connection: RemoteDBConnection, name: str, version: int | None = None
    ):
        self._connection: RemoteDBConnection | None = connection
        self._factory: Any = None
        self._name = name
        self._path = table_path(name)
        self._checkout_version = version
        # The table_id each version had when a describe of it answered (riffledb's
        # servers give one): sent back with reads of that version, which a riffledb
        # server then refuses (404) if the version is of another table of this name.
        self._table_ids: dict[int, str] = {}

    @classmethod
    def _from_factory(cls, factory: Any, name: str, version: int | None) -> RemoteTable:
        """A table that calls ``factory(name)`` for its connection on first use (a
        permutation's ``connection_factory`` in a worker), checked out at ``version``."""
        table = cls.__new__(cls)
        table._connection = None
        table._factory = factory
        table._name = name
        table._path = table_path(name)
        table._checkout_version = version
        table._table_ids = {}
        return table

    @property
    def _conn(self) -> RemoteDBConnection:
        conn = self._connection
        if conn is None:
            opened = self._factory(self._name)
            if not isinstance(opened, RemoteTable):
                raise RiffledbTypeError(
                    f"connection_factory({self._name!r}) must return a remote table "
                    f"(the permutation's base was one), got {type(opened).__name__}"
                )
            conn = self._connection = opened._conn
        return conn

    # -- pickling -----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Raises ValueError for a connection with a ``header_provider``."""
        state = {
            "kind": "remote",
            "connection": self._conn.__getstate__(),
            "name": self._name,
            "version": self._checkout_version,
        }
        # Only when known: a state without it is also what riffledb before it reads.
        if self._table_ids.get(self._checkout_version) is not None:
            state["table_id"] = self._table_ids[self._checkout_version]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from .db import RemoteDBConnection, reopen_arguments

        if not isinstance(state, dict) or state.get("kind") != "remote":
            raise InvalidError("Not the pickle state of a remote table")
        self._connection = RemoteDBConnection(**reopen_arguments(state["connection"]))
        self._factory = None
        self._name = state["name"]
        self._path = table_path(self._name)
        self._checkout_version = state["version"]
        self._table_ids = {}
        if state["version"] is not None and isinstance(state.get("table_id"), str):
            self._table_ids[state["version"]] = state["table_id"]

    # -- metadata -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def connection(self) -> RemoteDBConnection:
        return self._conn

    def __repr__(self) -> str:
        return f"RemoteTable({self._conn.db_name}.{self._name})"

    def _describe(self, version: int | None, open_request: bool = False) -> dict:
        request = None if open_request else self._identified({"version": version})
        _, _, body, _ = self._conn._table_send(self._name, "describe", request)
        try:
            answer = json.loads(body) if body else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            return {}
        if isinstance(answer.get("table_id"), str) and isinstance(
            answer.get("version"), int
        ):
            self._table_ids[answer["version"]] = answer["table_id"]
        return answer

    def _table_id(self, version: int) -> str | None:
        """The table_id a describe of ``version`` gave, if any."""
        return self._table_ids.get(version)

    def _pin_table_id(self, version: int, table_id: str) -> None:
        """Reads of ``version`` say it is of ``table_id`` (an object that pinned the
        version keeps the id it saw, whatever a later describe says)."""
        self._table_ids[version] = table_id

    def _identified(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` with the ``table_id`` of the version it reads, when it names one
        and a describe of it gave one (riffledb's servers refuse a version of another
        table; others ignore the field)."""
        table_id = self._table_ids.get(body.get("version"))
        if table_id is not None:
            body["table_id"] = table_id
        return body

    @property
    def schema(self) -> pa.Schema:
        answer = self._describe(self._checkout_version)
        if "schema" not in answer:
            raise InternalError(f"The server's describe of '{self._name}' has no schema")
        return schema_of_describe(answer)

    @property
    def version(self) -> int:
        """The checked-out version, or the newest one (a describe request)."""
        if self._checkout_version is not None:
            return self._checkout_version
        return int(self._describe(None)["version"])

    def checkout(self, version: int) -> None:
        """Reads ``version`` from now on (checked with a describe); writes fail until
        :meth:`checkout_latest`."""
        version = check_int(version, "version", maximum=UINT64_MAX)
        # The table the name holds now: a version checked out again is of it, whichever
        # table an earlier describe of that version was of.
        self._table_ids.pop(version, None)
        self._describe(version)
        self._checkout_version = version

    def checkout_latest(self) -> None:
        self._checkout_version = None

    def list_versions(self) -> list[dict[str, Any]]:
        """``{"version", "timestamp" (a timezone-aware datetime), "metadata"}`` of every
        version."""
        _, _, body, _ = self._conn._table_send(self._name, "version/list")
        versions = []
        for entry in json.loads(body).get("versions", []):
            stamp = entry.get("timestamp")
            if isinstance(stamp, str):
                when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            elif entry.get("timestamp_millis") is not None:
                when = datetime.datetime.fromtimestamp(
                    entry["timestamp_millis"] / 1000.0, tz=datetime.timezone.utc
                )
            else:
                when = None
            versions.append(
                {
                    "version": entry["version"],
                    "timestamp": when,
                    "metadata": entry.get("metadata") or {},
                }
            )
        return versions

    def _take_source(self, version: int | None = None) -> Any:
        """The native source permutations read this table through
        (``_riffledb.RemoteTakeSource``), pinned at ``version`` (None: the checked-out
        version, else the newest). Asks for the schema and the row count.

        A ``header_provider`` is asked for its headers before every request of the
        source, from the thread that sends it (with the GIL), so a credential that
        expires stays fresh for a long-lived reader.
        """
        if version is None:
            version = self.version
        conn = self._conn
        try:
            return _riffledb.RemoteTakeSource.open(
                conn._client,
                self._name,
                self._path,
                version,
                header_provider=conn._header_provider,
                table_id=self._table_ids.get(version, ""),
            )
        except HttpError as error:
            if error.status_code == 404:
                raise TableNotFoundError(
                    server_words(error)
                    or f"Table '{self._name}' (version {version}) was not found in "
                    f"{conn.uri}"
                ) from error
            raise

    def _pickle_state(self, version: int | None) -> dict[str, Any]:
        """The pickle state of this table checked out at ``version``."""
        state = self.__getstate__()
        state["version"] = version
        state.pop("table_id", None)
        if self._table_ids.get(version) is not None:
            state["table_id"] = self._table_ids[version]
        return state

    # -- reads --------------------------------------------------------------------------
    def _query(self, body: dict[str, Any]) -> pa.Table:
        _, headers, answer, _ = self._conn._table_send(
            self._name, "query", self._identified(body)
        )
        return read_ipc(answer, headers.get("content-type"))

    def count_rows(self, filter: str | None = None) -> int:
        """Rows matching the SQL ``filter`` (all rows when None)."""
        body: dict[str, Any] = {"version": self._checkout_version}
        if check_str(filter, "filter", none_ok=True) is not None:
            body["predicate"] = filter
        _, _, answer, _ = self._conn._table_send(
            self._name, "count_rows", self._identified(body)
        )
        return int(json.loads(answer))

    def __len__(self) -> int:
        return self.count_rows()

    def search(self, query: Any = None, **kwargs) -> RemoteQuery:
        """A plain-scan query builder (``where``/``select``/``limit``/``offset``/
        ``with_row_id``), run as one request."""
        if query is not None:
            raise NotSupportedError(
                "riffledb has no vector or full-text search: call search() without "
                "a query for a plain scan"
            )
        return RemoteQuery(self)

    def query(self) -> RemoteQuery:
        return RemoteQuery(self)

    def to_arrow(self) -> pa.Table:
        """Every row (one query; LanceDB's client refuses this, riffledb's does it)."""
        return RemoteQuery(self).to_arrow()

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def head(self, n: int = 5) -> pa.Table:
        return RemoteQuery(self).limit(check_int(n, "n")).to_arrow()

    def take_offsets(self, offsets) -> TakeQuery:
        """Rows at these offsets, in this order, repeats included, in one ``_rowoffset
        in (...)`` query (unlike LanceDB's client, which returns a remote table's rows
        in ascending offset order). See :meth:`_take` for what is sent."""
        return TakeQuery(self, index_array(offsets, "offsets", np.int64), False)

    def take_row_ids(self, row_ids) -> TakeQuery:
        """Rows with these ``_rowid``s, in this order (reordered here: a server may
        answer in any order)."""
        return TakeQuery(self, index_array(row_ids, "row_ids", np.uint64), True)

    def _take(
        self,
        keys: np.ndarray,
        by_row_id: bool,
        columns: list[str],
        with_row_id: bool,
        binary_views: bool = False,
    ) -> pa.RecordBatch:
        """The rows of ``keys`` (offsets, or row ids if ``by_row_id``), in that order,
        repeats repeated: one ``_rowoffset in (...)`` / ``_rowid in (...)`` query, built,
        sent and read natively without the GIL (``_riffledb.remote_take``): to a
        server that says it answers takes in the order asked (``riffledb serve``), the
        keys as they are; to any other, the distinct keys, ascending, the answer put in
        order here. A take of no key asks for one row, for the schema. A negative
        offset is an IndexError naming its position, raised before any request; so is
        an offset past the end, after the server's 400.

        Lean on purpose: a take's Python work runs once per batch of a DataLoader, on
        caches the exchange has just cleared."""
        conn = self._conn
        try:
            batch = _riffledb.remote_take(
                conn._client,
                self._name,
                self._path,
                self._checkout_version,
                keys.view(np.uint64),  # index_array's: contiguous
                by_row_id,
                columns,
                with_row_id,
                conn._header_provider,
                self._table_ids.get(self._checkout_version, ""),
            )
        except HttpError as error:
            not_found = conn._not_found(error, self._name)
            if not_found is not None:
                raise not_found from error
            if error.status_code == 400 and not by_row_id:
                self._raise_offset_past_end(keys, error)
            if error.status_code == 400 and by_row_id:
                self._raise_unknown_row_id(error)
            raise
        batch = pa.RecordBatch._import_from_c_capsule(*batch)
        if by_row_id and not with_row_id and "_rowid" in batch.schema.names:
            batch = batch.drop_columns(["_rowid"])
        if binary_views:
            batch = batch.cast(_with_views(batch.schema))
        return batch

    @staticmethod
    def _raise_unknown_row_id(error: HttpError) -> None:
        """After a row-id take's 400: the IndexError a local take raises, in the
        server's words, when they say a row id is not a row (riffledb serve names it
        and its position in the keys sent, which are the caller's: it answers takes in
        the order asked)."""
        words = server_words(error) or ""
        if words.startswith("Row id ") and " is not a row" in words:
            raise RiffledbIndexError(words) from error

    def _raise_offset_past_end(self, offsets: np.ndarray, error: HttpError) -> None:
        """After a take's 400: the IndexError a local take raises, naming the first
        offset past the end and its position in the caller's list, when there is one
        (the server names it at its place in the sorted request; one count is asked
        for, on this failure path only)."""
        try:
            count = self.count_rows()
        except RemoteError:
            return  # the 400 stands
        past = offsets >= count
        if past.any():
            position = int(np.argmax(past))
            raise RiffledbIndexError(
                f"Offset {int(offsets[position])} at position {position} is out of "
                f"range for table '{self._name}' of {count} rows"
            ) from error

    def __getitems__(self, offsets) -> pa.Table:
        """The rows at ``offsets`` as a ``pa.Table``, in order (torch's batched fetch)."""
        keys = index_array(offsets, "offsets", np.int64)
        return pa.Table.from_batches([self._take(keys, False, [], False)])

    # -- writes -------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._checkout_version is not None:
            raise InvalidError(
                f"Cannot mutate table reference fixed at version "
                f"{self._checkout_version}: call checkout_latest() first"
            )

    def add(self, data: Any, mode: Literal["append", "overwrite"] = "append") -> None:
        """Appends rows, or replaces them all (one request, never retried: a failure may
        or may not have committed, as with LanceDB)."""
        check_str(mode, "mode")
        if mode not in ("append", "overwrite"):
            raise InvalidError(f"Invalid mode {mode!r}: expected 'append' or 'overwrite'")
        self._check_writable()
        if data is None:
            # As a local add: None is not data (an empty list or table is no rows).
            raise unsupported_data(data)
        if to_arrow_stream(data) is None:
            if mode == "overwrite":
                raise InvalidError(
                    f"Cannot overwrite table '{self._name}' with empty data: it has no "
                    "schema to give the table"
                )
            body = ipc_stream_bytes(None, self.schema)  # no rows: an empty append
        else:
            body = ipc_stream_bytes(data)
        self._conn._table_send(
            self._name,
            "insert",
            raw=body,
            content_type=ARROW_STREAM,
            retry=False,
            query="?mode=overwrite" if mode == "overwrite" else "",
        )
