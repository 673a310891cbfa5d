"""Tables (LanceDB's ``Table`` surface for training data)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from . import _riffledb
from ._args import (
    UINT64_MAX,
    check_bool,
    check_int,
    check_storage_options,
    check_str,
    describe,
    index_array,
)
from ._data import call_with_source, to_arrow_stream
from ._lifetime import release_at_exit
from .errors import (
    InternalError,
    InvalidError,
    NotSupportedError,
    RiffledbTypeError,
)
from .fragments import FragmentDescription, check_commit_mode, check_descriptions
from .query import Query, TakeQuery, native_read_all

if TYPE_CHECKING:
    from .db import DBConnection


@dataclasses.dataclass(frozen=True)
class CleanupStats:
    """What :meth:`Table.cleanup_old_versions` removed (LanceDB's ``CleanupStats``).

    Attributes:
        bytes_removed: Bytes of the fragment, deletion and temporary files removed
            (manifests are not counted).
        old_versions: Versions removed.
        files_removed: Fragment, deletion and temporary files removed.
    """

    bytes_removed: int = 0
    old_versions: int = 0
    files_removed: int = 0


@dataclasses.dataclass(frozen=True)
class CompactionStats:
    """What the compaction of :meth:`Table.optimize` did (LanceDB's
    ``CompactionStats``).

    Attributes:
        fragments_removed: Fragments rewritten (small ones merged, or with deletions).
        fragments_added: Fragments written in their place.
        files_removed: Data and deletion files the new version no longer references
            (removed from disk only by a cleanup).
        files_added: Data files written.
    """

    fragments_removed: int = 0
    fragments_added: int = 0
    files_removed: int = 0
    files_added: int = 0


@dataclasses.dataclass(frozen=True)
class OptimizeStats:
    """What :meth:`Table.optimize` did (LanceDB's ``OptimizeStats``): its compaction,
    and its cleanup (``prune``; all zeros without ``cleanup_older_than``)."""

    compaction: CompactionStats
    prune: CleanupStats


#: ``progress(stage, done, total)``: called during long maintenance work.
ProgressCallback = Callable[[str, int, int], None]

_DEFAULT_OLDER_THAN = datetime.timedelta(days=7)


def _older_than_ms(value: Any, name: str) -> int:
    """A non-negative ``timedelta`` as whole milliseconds (TypeError/ValueError naming
    ``name`` otherwise)."""
    if not isinstance(value, datetime.timedelta):
        raise RiffledbTypeError(
            f"{name} must be a datetime.timedelta, got {describe(value)}"
        )
    if value < datetime.timedelta(0):
        raise InvalidError(f"{name} must not be negative, got {value!r}")
    return value // datetime.timedelta(milliseconds=1)


def _check_progress(progress: Any) -> None:
    if progress is not None and not callable(progress):
        raise RiffledbTypeError(
            f"progress must be callable or None, got {describe(progress)}"
        )


def memory_state(name: str, data: pa.Table) -> dict[str, Any]:
    """The pickle state of a ``memory://`` table holding ``data`` (Arrow IPC bytes)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        writer.write_table(data)
    data_bytes = sink.getvalue().to_pybytes()
    return {"kind": "memory", "name": name, "version": None, "data": data_bytes}


# kind -> (key, type, None allowed) of each key of a table pickle state besides "kind".
_STATE_KEYS: dict[str, tuple[tuple[str, type, bool], ...]] = {
    "local": (
        ("name", str, False),
        ("version", int, False),
        ("uri", str, False),
        ("storage_options", dict, False),
    ),
    "memory": (("name", str, False), ("version", int, True), ("data", bytes, False)),
    "factory": (("name", str, False), ("version", int, True)),
}


# Keys a state may leave out: "storage_options" only when the connection had none.
_OPTIONAL_STATE_KEYS = frozenset({"storage_options"})


def check_table_state(state: Any, what: str) -> dict[str, Any]:
    """Checks a table pickle state (see :class:`TableRef`) before anything reopens it.

    Raises:
        ValueError: an unknown ``kind``, or a missing or unknown key (naming ``what``
            and the key).
        TypeError: a value of the wrong type (naming ``what`` and the key).
    """
    if not isinstance(state, dict):
        raise RiffledbTypeError(f"{what} must be a dict, got {type(state).__name__}")
    kind = state.get("kind")
    keys = _STATE_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise InvalidError(f"Unknown table pickle state kind: {kind!r} (in {what})")
    expected = {"kind", *(key for key, _, _ in keys)} | (
        {"factory"} if kind == "factory" else set()
    )
    unknown = sorted(str(key) for key in state if key not in expected)
    if unknown:
        raise InvalidError(f"{what} of kind {kind!r} has an unknown key {unknown[0]!r}")
    for key, type_, none_ok in keys:
        if key not in state:
            if key in _OPTIONAL_STATE_KEYS:
                continue
            raise InvalidError(f"{what} of kind {kind!r} is missing the key {key!r}")
        value = state[key]
        if (value is None and none_ok) or (
            isinstance(value, type_) and not isinstance(value, bool)
        ):
            continue
        expected_type = type_.__name__ + (" or None" if none_ok else "")
        raise RiffledbTypeError(
            f"{what} key {key!r} must be {expected_type}, got {type(value).__name__}"
        )
    if "storage_options" in state:
        check_storage_options(state["storage_options"])
    if kind == "factory" and not callable(state.get("factory")):
        raise RiffledbTypeError(
            f"{what} key 'factory' must be callable, got "
            f"{type(state.get('factory')).__name__}"
        )
    return state


class TableRef:
    """A reference to one table: the one owner of how it is opened again (in this
    process, or in a worker after pickling), of its identity and of its pickle state.

    A reference is either *open* (a native handle and the connection it came from) or
    *pending* (a pickle state, reopened on first use). Pickle states, by ``kind``:
    ``"local"`` (``uri``, ``name``, ``version``, and ``storage_options`` if the connection
    had any: a directory or ``s3://`` database), ``"memory"``
    (``name``, ``data``: the rows as Arrow IPC bytes) and ``"factory"`` (``factory``,
    ``name``, ``version``: ``factory(name)`` returns the table, then checked out at
    ``version`` unless that is None).

    Native tables survive ``fork`` (DESIGN.md decision 9), so an open reference stays
    open in a forked child.
    """

    __slots__ = ("_native", "_conn", "_state", "__weakref__")

    def __init__(
        self,
        native: _riffledb.Table | None = None,
        connection: DBConnection | None = None,
        state: dict[str, Any] | None = None,
    ):
        self._native = native
        self._conn = connection
        self._state = state
        if native is not None:
            release_at_exit(self, _release_native)

    @classmethod
    def pending(cls, state: dict[str, Any]) -> TableRef:
        """A reference that reopens from ``state`` on first use (no I/O now)."""
        return cls(state=dict(state))

    @property
    def name(self) -> str:
        """The table name (no I/O, even when pending)."""
        if self._native is None and self._state is not None:
            return self._state["name"]
        return self.native().name

    @property
    def is_pending(self) -> bool:
        """Whether the reference still waits to be reopened from a pickle state."""
        return self._native is None

    @property
    def is_memory(self) -> bool:
        """Whether this is (or reopens as) a ``memory://`` table; no I/O."""
        if self._native is None and self._state is not None:
            return self._state.get("kind") == "memory"
        return self._conn is not None and self._conn.uri.startswith("memory://")

    @property
    def connection(self) -> DBConnection | None:
        self.native()
        return self._conn

    def native(self) -> _riffledb.Table:
        """The native table, reopened now if the reference is pending."""
        native = self._native
        if native is None:
            native = self._reopen()
        return native

    def snapshot(self, version: int | None = None):
        """The native snapshot of ``version`` (None: the handle's current one). A handle
        that has moved on is left alone: the version is read through a handle of its own.

        Raises:
            ValueError: the version cannot be reached (naming the table and version).
        """
        return self._handle(version).snapshot()

    def _handle(self, version: int | None) -> _riffledb.Table:
        native = self.native()
        if version is None or native.version == version:
            return native
        if self._conn is None:
            raise InvalidError(
                f"Cannot read version {version} of table '{native.name}': the table "
                f"handle is now on version {native.version} and has no connection to "
                "reopen it"
            )
        from .db import native_database

        return native_database(self._conn).open_table(native.name, version)

    def state(self, version: int | None = None) -> dict[str, Any]:
        """The pickle state: the table at ``version`` (None: the handle's), without
        native handles. A pending reference passes its state on as it is (no I/O).

        Raises:
            TypeError: a table without a connection cannot be pickled.
        """
        if self._native is None and self._state is not None:
            state = dict(self._state)
            if version is not None and state.get("kind") != "memory":
                state["version"] = version
            return state
        native = self.native()
        uri = self._conn.uri if self._conn is not None else None
        if uri is None:
            raise RiffledbTypeError(
                f"Cannot pickle table '{native.name}': it has no connection"
            )
        if version is None:
            version = native.version
        if uri.startswith("memory://"):
            rows = native_read_all(
                self._handle(version).scan(None, [], False, 0, None, 0)
            )
            state = memory_state(native.name, rows)
            state["version"] = version
            return state
        state = {"kind": "local", "name": native.name, "version": version, "uri": uri}
        options = self._conn.storage_options
        if options:
            state["storage_options"] = options
        return state

    def _reopen(self) -> _riffledb.Table:
        from . import connect
        from .db import native_database

        state = self._state
        if state is None:
            raise InternalError("Table has neither a native handle nor a pickled state")
        kind = state.get("kind")
        if kind == "local":
            conn = connect(state["uri"], storage_options=state.get("storage_options"))
            native = native_database(conn).open_table(state["name"], state["version"])
        elif kind == "memory":
            conn = connect("memory://")
            data = pa.ipc.open_stream(state["data"]).read_all()
            native = conn.create_table(state["name"], data)._ref.native()
        elif kind == "factory":
            table = state["factory"](state["name"])
            if not isinstance(table, Table):
                raise RiffledbTypeError(
                    f"connection_factory({state['name']!r}) must return a riffledb "
                    f"Table, got {type(table).__name__}"
                )
            native, conn = table._ref.native(), table._ref._conn
            version = state.get("version")
            if version is not None and native.version != version:
                native.checkout(version)
        elif kind == "released":
            raise InternalError(
                f"Table '{state['name']}' was released at interpreter exit: a memory:// "
                "table cannot be reopened"
            )
        else:
            raise InvalidError(f"Unknown table pickle state kind: {kind!r}")
        self._conn = conn
        self._native = native
        release_at_exit(self, _release_native)
        return native


def _release_native(ref: TableRef) -> None:
    """Drops the native handles at interpreter exit (see :mod:`riffledb._lifetime`).

    A directory table used after that reopens from its state; a ``memory://`` one is
    gone."""
    native = ref._native
    if native is None:
        return
    if ref._state is None:
        uri = ref._conn.uri if ref._conn is not None else None
        if uri is None or uri.startswith("memory://"):
            ref._state = {"kind": "released", "name": native.name}
        else:
            ref._state = ref.state()
    ref._native = None
    ref._conn = None


def reference(table: Any, what: str = "table") -> TableRef:
    """The reference of a riffledb ``Table`` (TypeError naming ``what`` otherwise)."""
    if not isinstance(table, Table):
        raise RiffledbTypeError(
            f"{what} must be a riffledb Table, got {type(table).__name__}"
        )
    return table._ref


def table_from_state(state: dict[str, Any]) -> Table:
    """A table that reopens from a pickle state (see :class:`TableRef`) on first use."""
    table = Table.__new__(Table)
    table._ref = TableRef.pending(state)
    return table


class Table:
    """A table in a riffledb database.

    Reads see the version this object last opened, wrote or checked out; writes commit a
    new version atomically (concurrent writers in other threads or processes lose
    nothing).
    A table is a map-style torch ``Dataset``: ``len(table)`` rows, and
    ``table.__getitems__(offsets)`` returns those rows as a ``pa.Table``, in order.
    """

    def __init__(self, inner: _riffledb.Table, connection: DBConnection | None = None):
        self._ref = TableRef(inner, connection)

    @property
    def _inner(self) -> _riffledb.Table:
        """The native table, reopened on first use after unpickling."""
        return self._ref.native()

    # -- pickling -----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """A table pickles without native handles, for spawn/forkserver workers.

        A directory table pickles as its database path, name and version (the copy reads
        that same version); a ``memory://`` table as its rows in Arrow IPC form. A copy
        that was never used pickles as the state it was unpickled from (no I/O).
        """
        return self._ref.state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._ref = TableRef.pending(check_table_state(state, "table pickle state"))

    # -- metadata -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def schema(self) -> pa.Schema:
        """The schema, with schema and field metadata."""
        return pa.Schema._import_from_c_capsule(self._inner.schema())

    @property
    def version(self) -> int:
        """The version this object reads (1 after create, +1 per write)."""
        return self._inner.version

    def __repr__(self) -> str:
        return f"Table(name={self.name!r}, version={self.version}, rows={len(self)})"

    def list_versions(self) -> list[dict[str, Any]]:
        """Every committed version, damaged ones included.

        Returns:
            Dicts with ``version``, ``timestamp`` (a timezone-aware ``datetime``) and
            ``metadata`` (``{"operation": ...}``), as LanceDB's. A version whose manifest
            is damaged (corrupt, or a foreign file named like one) is listed with
            ``timestamp`` None, empty ``metadata`` and ``damaged``: why it cannot be
            read, naming the file. :meth:`checkout` and :meth:`restore` reach the
            intact versions.
        """
        versions = []
        for version, ms, operation, damage in self._inner.list_versions():
            if damage is not None:
                versions.append(
                    {
                        "version": version,
                        "timestamp": None,
                        "metadata": {},
                        "damaged": damage,
                    }
                )
                continue
            versions.append(
                {
                    "version": version,
                    "timestamp": datetime.datetime.fromtimestamp(
                        ms / 1000.0, tz=datetime.timezone.utc
                    ),
                    "metadata": {"operation": operation},
                }
            )
        return versions

    def checkout(self, version: int) -> None:
        """Reads ``version`` from now on; writes fail until :meth:`checkout_latest`."""
        self._inner.checkout(check_int(version, "version", maximum=UINT64_MAX))

    def checkout_latest(self) -> None:
        """Moves to the newest version (including other writers' commits)."""
        self._inner.checkout_latest()

    def restore(self, version: int | None = None) -> int:
        """Makes ``version`` (default: the checked-out one) the newest again.

        Commits a new version equal to it (its schema and rows), on top of the newest
        version even when that one is damaged, and moves this object to it, as LanceDB's
        ``restore`` does. Old versions are kept.

        Returns:
            The new version.

        Raises:
            InvalidError: ``version`` does not exist.
            CorruptionError: ``version`` is damaged, or its files are.
        """
        if version is None:
            version = self.version
        return self._inner.restore(check_int(version, "version", maximum=UINT64_MAX))

    def verify(self, version: int | None = None) -> None:
        """Checks every file of ``version`` (default: the checked-out one) byte by byte.

        Reads each file the version references in full and compares it with the
        checksum (CRC-32C) its manifest records, then opens the version as a read does.
        Ordinary reads check the manifests, segment files and deletion files they read,
        and each data file's size; only ``verify`` reads whole data files, since a take
        touches a few rows of a memory map. Tables written before format 2 have no
        checksums for their older files: those get the structural checks only. Files
        already verified through this object are not read again.

        Raises:
            CorruptionError: a file is damaged or missing; the message names the
                version and the file.
            InvalidError: ``version`` does not exist.
        """
        if version is not None:
            version = check_int(version, "version", maximum=UINT64_MAX)
        self._inner.verify(version)

    # -- reads --------------------------------------------------------------------------
    def count_rows(self, filter: str | None = None) -> int:
        """Rows matching the SQL ``filter`` (all rows when None)."""
        return self._inner.count_rows(check_str(filter, "filter", none_ok=True))

    def __len__(self) -> int:
        return self._inner.num_rows

    def search(self, query: Any = None, **kwargs) -> Query:
        """A plain-scan query builder (``where``/``select``/``limit``/``offset``).

        Vector and full-text search are not part of riffledb.
        """
        if query is not None:
            raise NotSupportedError(
                "riffledb has no vector or full-text search: call search() without "
                "a query for a plain scan"
            )
        return Query(self)

    def query(self) -> Query:
        """Same as ``search()``."""
        return Query(self)

    def to_arrow(self) -> pa.Table:
        """The whole table (schema metadata included)."""
        return native_read_all(self._inner.scan(None, [], False, 0, None, 0))

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def head(self, n: int = 5) -> pa.Table:
        """The first ``n`` rows."""
        return Query(self).limit(check_int(n, "n")).to_arrow()

    def take_offsets(self, offsets) -> TakeQuery:
        """Rows at these offsets (positions in scan order), in this order.

        Duplicates are allowed. Out-of-range offsets raise IndexError naming the offset.
        """
        return TakeQuery(self, index_array(offsets, "offsets", np.int64), False)

    def take_row_ids(self, row_ids) -> TakeQuery:
        """Rows with these ``_rowid``s, in this order; unknown ids raise IndexError."""
        return TakeQuery(self, index_array(row_ids, "row_ids", np.uint64), True)

    def _take(
        self,
        keys: np.ndarray,
        by_row_id: bool,
        columns: list[str],
        with_row_id: bool,
        binary_views: bool = False,
    ) -> pa.RecordBatch:
        take = self._inner.take_row_ids if by_row_id else self._inner.take_offsets
        schema, array = take(keys, columns, with_row_id, binary_views=binary_views)
        return pa.RecordBatch._import_from_c_capsule(schema, array)

    def __getitems__(self, offsets) -> pa.Table:
        """The rows at ``offsets`` as a ``pa.Table``, in order (torch's batched fetch)."""
        keys = index_array(offsets, "offsets", np.int64)
        schema, array = self._inner.take_offsets(keys, [], False)
        return pa.Table.from_batches(
            [pa.RecordBatch._import_from_c_capsule(schema, array)]
        )

    # -- writes -------------------------------------------------------------------------
    def add(self, data: Any, mode: Literal["append", "overwrite"] = "append") -> None:
        """Adds rows (``mode="append"``) or replaces them all (``"overwrite"``).

        Args:
            data: What :meth:`DBConnection.create_table` accepts. Streams (readers,
                ``__arrow_c_stream__`` producers) are pulled batch by batch by the native
                write path, without passing through Python.
            mode: ``"append"`` or ``"overwrite"`` (rows and schema become ``data``'s).

        Appended data is matched to the table schema by column name, in any order, and
        cast safely (``int64`` values into an ``int32`` column, ``list`` into a
        fixed-size list, ...). A value the cast would change (an overflow, a float with a
        fraction into an integer, an unparsable string) or a null in a non-nullable
        column is an error naming the column, the row and the value. Every column of the
        data must be in the table. A nullable table column the data lacks is filled with
        nulls, whatever form the data take (rows, an Arrow table, a stream); a
        non-nullable one is an error naming it (LanceDB's rule).

        Raises:
            ValueError: the data does not fit the schema (one message naming every
                missing, extra and mismatched column with its expected and given type),
                or a value does not. Nothing is written then, even if the error comes
                from a late batch of a stream.
        """
        check_str(mode, "mode")
        if mode not in ("append", "overwrite"):
            raise InvalidError(f"Invalid mode {mode!r}: expected 'append' or 'overwrite'")
        stream = to_arrow_stream(data)
        if mode == "append":
            if stream is None:
                stream = self.schema.empty_table()  # no rows: a new, empty version
            call_with_source(stream, lambda: self._inner.add(stream))
        else:
            if stream is None:
                raise InvalidError(
                    f"Cannot overwrite table '{self.name}' with empty data: it has no "
                    "schema to give the table"
                )
            call_with_source(stream, lambda: self._inner.overwrite(stream))

    def delete(self, where: str) -> None:
        """Deletes the rows matching the SQL filter ``where``."""
        self._inner.delete(check_str(where, "where"))

    # -- distributed writes (riffledb.fragments) ----------------------------------------
    def write_fragments(
        self, data: Any, *, schema: pa.Schema | None = None
    ) -> list[FragmentDescription]:
        """Writes ``data`` as new files of this table without committing them: the
        first step of a distributed write (see :mod:`riffledb.fragments`).

        Readers see nothing until :meth:`commit_fragments` commits the descriptions,
        in this process or another one (they pickle, and travel as JSON). Works on a
        table pickled into a worker, whatever version it is pinned to.

        Args:
            data: What :meth:`add` accepts, matched to the newest version's schema as
                :meth:`add` matches it (the same check and messages).
            schema: Write for this schema instead (data matched to it as
                ``create_table(schema=)`` does): for an ``overwrite`` that changes the
                schema.

        Returns:
            One description per file written (a file holds up to 1,048,576 rows); for
            data without rows, one description of no file, which carries the schema.

        Raises:
            ValueError: the data does not fit the schema (nothing is left behind).
        """
        if schema is not None and not isinstance(schema, pa.Schema):
            raise RiffledbTypeError(
                f"schema must be a pyarrow.Schema or None, got {describe(schema)}"
            )
        stream = to_arrow_stream(data)  # None: no rows
        texts = call_with_source(
            stream, lambda: self._inner.write_fragments(stream, schema)
        )
        return [FragmentDescription(text) for text in texts]

    def commit_fragments(
        self,
        descriptions: Iterable[FragmentDescription],
        mode: Literal["append", "overwrite"] = "append",
    ) -> int:
        """Commits the files of ``descriptions`` in one new version, atomically (every
        row or none): the second step of a distributed write.

        Rebased on concurrent writers as :meth:`add` is, and this object moves to the
        new version.

        Args:
            descriptions: From :meth:`write_fragments` (any process, any worker).
            mode: ``"append"`` adds their rows; ``"overwrite"`` replaces every row, and
                the schema, with theirs.

        Returns:
            The new version.

        Raises:
            InvalidError: before anything is committed, naming the file: a description
                of another table, descriptions of different schemas (or, to append, not
                the table's), a file named twice, a file that is not in this table as
                described (never written here, or removed by a cleanup), a description
                whose ``base_version`` is above the newest version, or a file that any
                version still listed references (every one is read: committing the
                same descriptions twice never duplicates rows); or this object is
                checked out at an old version. No file is removed on error.
            OSError: a version that may reference the files cannot be read (its error,
                e.g. CorruptionError, naming the version).
        """
        texts = check_descriptions(descriptions)
        overwrite = check_commit_mode(mode)
        return self._inner.commit_fragments(texts, overwrite)

    # -- maintenance --------------------------------------------------------------------
    def cleanup_old_versions(
        self,
        older_than: datetime.timedelta | None = None,
        *,
        delete_unverified: bool = False,
        progress: ProgressCallback | None = None,
    ) -> CleanupStats:
        """Removes old versions and the files only they use, as LanceDB's.

        Removes the versions committed more than ``older_than`` ago (the newest version
        is never removed), then every data, deletion and temporary file that no
        remaining version references. A file that only removed versions referenced
        goes at once. A file that *no* version references (a crashed writer's, or one
        a writer in another process has written but not committed yet) goes only once
        it is older than both ``older_than`` and 7 days, unless ``delete_unverified``.
        Files of a version committed while cleanup runs are kept.

        Removed versions can no longer be checked out, opened with
        ``open_table(name, version=n)`` or reopened by a pickled table or permutation
        pinned to them: that raises InvalidError "Version n of table 't' was removed by
        cleanup_old_versions; versions: ...". Tables and permutations already open at
        such a version keep reading it (their files stay mapped until they are closed).

        Args:
            older_than: Age of the versions to remove (default 7 days);
                ``timedelta(0)`` removes every version but the newest.
            delete_unverified: Also remove unreferenced files younger than the grace
                period. Only safe when nothing else writes to the table: an append in
                flight would lose its rows.
            progress: Called as ``progress(stage, done, total)`` during the work.

        Returns:
            What was removed.

        Raises:
            CorruptionError: a remaining version's manifest is damaged (nothing removed).
        """
        older_than_ms = _older_than_ms(
            _DEFAULT_OLDER_THAN if older_than is None else older_than, "older_than"
        )
        delete_unverified = check_bool(delete_unverified, "delete_unverified")
        _check_progress(progress)
        old_versions, files, size = self._inner.cleanup_old_versions(
            older_than_ms, delete_unverified, progress
        )
        return CleanupStats(
            bytes_removed=size, old_versions=old_versions, files_removed=files
        )

    def optimize(
        self,
        *,
        cleanup_older_than: datetime.timedelta | None = None,
        delete_unverified: bool = False,
        target_rows_per_fragment: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> OptimizeStats:
        """Compacts small fragments and materialises deletions, as LanceDB's.

        Adjacent fragments with fewer live rows than ``target_rows_per_fragment`` are
        merged, and a fragment with deleted rows is rewritten without them, in scan
        order: row offsets and the rows at them are unchanged (the ``_rowid`` of a
        rewritten row changes). Commits one new version (operation ``"optimize"``) if
        there was anything to do. Appends racing it are kept; if a concurrent delete or
        overwrite changes the fragments being compacted, it plans again, and raises
        InvalidError after three such conflicts.

        The old files stay until a cleanup removes the versions that use them: pass
        ``cleanup_older_than`` to run :meth:`cleanup_old_versions` afterwards. Unlike
        LanceDB, no cleanup runs without it.

        Args:
            cleanup_older_than: If given, clean up versions older than this afterwards.
            delete_unverified: Passed to the cleanup.
            target_rows_per_fragment: Rows per compacted fragment (default 1,048,576,
                the writers' maximum).
            progress: Called as ``progress(stage, done, total)`` during the work.

        Returns:
            The compaction's and the cleanup's statistics.
        """
        target = check_int(
            target_rows_per_fragment,
            "target_rows_per_fragment",
            minimum=1,
            none_ok=True,
        )
        delete_unverified = check_bool(delete_unverified, "delete_unverified")
        _check_progress(progress)
        older_than_ms = (
            None
            if cleanup_older_than is None
            else _older_than_ms(cleanup_older_than, "cleanup_older_than")
        )
        compaction = CompactionStats(*self._inner.compact(target or 0, progress))
        prune = CleanupStats()
        if older_than_ms is not None:
            old_versions, files, size = self._inner.cleanup_old_versions(
                older_than_ms, delete_unverified, progress
            )
            prune = CleanupStats(
                bytes_removed=size, old_versions=old_versions, files_removed=files
            )
        return OptimizeStats(compaction=compaction, prune=prune)
