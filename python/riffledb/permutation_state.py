"""The pickle state of a :class:`~riffledb.permutation.Permutation`.

A permutation crosses into spawn / forkserver ``DataLoader`` workers by pickling, so its
state must be plain values, small, and safe to read back. This module owns that state: its
layout (:data:`FORMAT_VERSION`), what is captured from a permutation, the checks a state
dict passes on the way in, and how the tables come back in the worker.

What a split pickles as, smallest first (:class:`SplitData`):

- its builder *recipe* and the digest of its rows, when the permutation table provably is
  what the recipe builds over this base table and version: a few hundred bytes however
  large the split; rebuilt in the worker, and checked against the digest;
- its *row ids* in permutation order (8 bytes a row), for any other permutation table;
- the whole permutation table (``pa.Table``), LanceDB's layout (spec §6.1), read only.

A permutation over a ``memory://`` table (without a connection factory) pickles the rows
of its split, in permutation order, as the base table, and comes back as an identity
permutation over them: row ids of a rebuilt memory table would not match (spec §8 #7).

Unpickling does no I/O: the base table reopens, and the split is rebuilt, on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import _riffledb
from ._args import check_bool, check_int, check_str, check_str_list, describe
from ._base_table import base_name, is_remote
from .errors import InternalError, InvalidError, RiffledbTypeError
from .table import (
    Table,
    check_table_state,
    memory_state,
    reference,
    table_from_state,
)

if TYPE_CHECKING:
    from .permutation import Permutation

__all__ = ["FORMAT_VERSION", "PermutationState", "SplitData"]

#: Version of the state layout written by :meth:`PermutationState.to_dict`; the only
#: one :meth:`PermutationState.from_dict` reads.
FORMAT_VERSION = 2

#: Rows per batch when reading a split's rows for a ``memory://`` base table.
_ROWS_PER_READ = 65536


def _where(key: str) -> str:
    return f"permutation pickle state key {key!r}"


def _check_picklable_callable(fn: Any, what: str) -> None:
    """Fails early, naming the attribute, for a lambda or a nested function (which pickle
    cannot resolve by name in a worker). Other unpicklable objects get pickle's error."""
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", "")
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise pickle.PicklingError(
            f"Cannot pickle a Permutation whose {what} is {qualname!r}: lambdas and "
            "nested functions do not pickle. Use a module-level function (or a "
            "functools.partial of one), as DataLoader workers under spawn/forkserver "
            "unpickle the dataset."
        )


# -- one split -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SplitData:
    """One split of a permutation table as pickled: exactly one of ``recipe`` (with
    ``digest``), ``row_ids`` or ``table`` is set.

    Attributes:
        split_names: The permutation table's split names (None when it has none).
        recipe: The builder's recipe (JSON) that rebuilds the permutation table over the
            base table at the pinned version.
        digest: The digest of the split's rows, checked after rebuilding.
        row_ids: The split's base row ids in permutation order (uint64, native order).
        table: A whole permutation table (``row_id``, ``split_id``), LanceDB's layout.
    """

    split_names: list[str] | None = None
    recipe: str | None = None
    digest: str | None = None
    row_ids: bytes | None = None
    table: pa.Table | None = None

    @classmethod
    def capture(
        cls,
        native: Any,
        split: int,
        base_table: Table,
        base_version: int,
        split_reader: Callable[[], Any],
    ) -> SplitData:
        """The smallest form of split ``split`` of the native permutation table
        ``native``: its recipe when ``native`` was built by the builder over
        ``base_table`` at ``base_version``, else its row ids (read through
        ``split_reader()``, a native reader of the whole split)."""
        location = (
            None if is_remote(base_table) else reference(base_table).native().location
        )
        if (
            location is not None
            and native.recipe
            and native.base_version == base_version
            and native.base_location == location
        ):
            return cls(
                native.split_names, recipe=native.recipe, digest=native.digest(split)
            )
        ids = split_reader().row_ids().numpy_columns()[0]
        return cls(native.split_names, row_ids=ids.tobytes())

    def open(self, base_table: Table, base_version: int | None, split: int) -> Any:
        """The native permutation table holding split ``split`` (at its index).

        Raises:
            RuntimeError: the recipe rebuilds other rows than were pickled (the base
                table was replaced).
        """
        if self.table is not None:
            return _riffledb.PermutationTable.from_arrow(self.table)
        if self.row_ids is not None:
            ids = np.frombuffer(self.row_ids, dtype=np.uint64)
            return _riffledb.PermutationTable.from_row_ids(
                np.ascontiguousarray(ids), split, self.split_names
            )
        base = reference(base_table).snapshot(base_version)
        native = _riffledb.PermutationTable.from_recipe(base, self.recipe)
        got = native.digest(split)
        if got != self.digest:
            raise RuntimeError(
                f"Cannot rebuild split {split} of the permutation over table "
                f"'{reference(base_table).name}' (version {base_version}): rebuilding "
                f"it from its recipe gave other rows (digest {got or 'none'}, expected "
                f"{self.digest}). The table was replaced since the permutation was "
                "pickled."
            )
        return native.only_split(split)

    def to_state(self) -> dict[str, Any] | pa.Table:
        """The ``permutation_data`` value of a state dict."""
        if self.table is not None:
            return self.table
        if self.row_ids is not None:
            return {"row_ids": self.row_ids, "split_names": self.split_names}
        return {
            "recipe": self.recipe,
            "digest": self.digest,
            "split_names": self.split_names,
        }

    @classmethod
    def from_state(cls, data: Any) -> SplitData:
        """Checks a ``permutation_data`` value (not None) and returns it as split data.

        Raises:
            TypeError, ValueError: naming the key at fault.
        """
        if isinstance(data, pa.Table):
            return cls(table=data)
        if not isinstance(data, dict):
            raise RiffledbTypeError(
                f"{_where('permutation_data')} must be a dict, a pyarrow.Table or None, "
                f"got {describe(data)}"
            )
        names = data.get("split_names")
        if names is not None:
            names = check_str_list(names, _where("permutation_data.split_names"))
        if "row_ids" in data:
            _check_keys(data, {"row_ids", "split_names"}, "permutation_data.")
            ids = data["row_ids"]
            if isinstance(ids, (bytearray, memoryview)):
                ids = bytes(ids)
            if not isinstance(ids, bytes):
                raise RiffledbTypeError(
                    f"{_where('permutation_data.row_ids')} must be bytes, got "
                    f"{type(ids).__name__}"
                )
            if len(ids) % 8:
                raise InvalidError(
                    f"{_where('permutation_data.row_ids')} must hold uint64 values (a "
                    f"multiple of 8 bytes), got {len(ids)} bytes"
                )
            return cls(names, row_ids=ids)
        if "recipe" in data:
            _check_keys(data, {"recipe", "digest", "split_names"}, "permutation_data.")
            recipe = check_str(data["recipe"], _where("permutation_data.recipe"))
            digest = check_str(data["digest"], _where("permutation_data.digest"))
            return cls(names, recipe=recipe, digest=digest)
        raise InvalidError(
            f"{_where('permutation_data')} must have a 'recipe' or a 'row_ids' key, got "
            f"keys {sorted(map(str, data))}"
        )


# -- the whole state -------------------------------------------------------------------


def _check_keys(
    state: dict, keys: set[str], prefix: str = "", optional: frozenset[str] = frozenset()
) -> None:
    for key in sorted(keys - optional):
        if key not in state:
            raise InvalidError(f"{_where(prefix + key)} is missing")
    unknown = sorted(str(key) for key in state if key not in keys)
    if unknown:
        raise InvalidError(
            f"{_where(prefix + unknown[0])} is unknown (expected the keys {sorted(keys)})"
        )


def _check_callable(value: Any, key: str, *, none_ok: bool = False) -> Any:
    if value is None and none_ok:
        return None
    if not callable(value):
        expected = "callable or None" if none_ok else "callable"
        raise RiffledbTypeError(
            f"{_where(key)} must be {expected}, got {describe(value)}"
        )
    return value


_KEYS = frozenset(
    {
        "format_version",
        "base_table_name",
        "base_table_state",
        "base_version",
        "permutation_data",
        "split",
        "selection",
        "batch_size",
        "transform_fn",
        "offset",
        "limit",
        "repeat",
        "binary_views",
        "connection_factory",
        "base_remote",
        "base_table_id",
    }
)


@dataclasses.dataclass(frozen=True)
class PermutationState:
    """What a pickled permutation holds: plain values, never a native handle.

    Attributes:
        base_table_name: The base table's name (what a connection factory is called with).
        base_table_state: The base table's pickle state (see
            :class:`riffledb.table.TableRef`); None with a connection factory.
        base_version: The pinned base-table version (None: the version the base table
            state names, as for a ``memory://`` copy).
        permutation_data: The split (:class:`SplitData`); None for an identity.
        split: The split's index in the permutation table.
        selection: Output column -> column or SQL expression, in output order.
        batch_size: Rows per batch of ``iter()``.
        transform_fn: What reads return (must pickle by name).
        offset: The skip (None: none).
        limit: The take (None: none).
        repeat: Repetitions of the rows (at least 1).
        binary_views: Whether binary and string columns are read as views.
        connection_factory: Reopens the base table by name in the worker (must pickle by
            name); None: ``base_table_state`` does.
        base_remote: With a connection factory, whether the base table is a remote
            one (the factory then returns a ``RemoteTable``; it is called on first
            use, as for a local table).
        base_table_id: With a connection factory and a remote base, which table of the
            name ``base_version`` is of, when a describe of it gave one: the reopened
            table's reads of that version say it, so that a table dropped and created
            again up to that version is refused rather than read as the pinned one
            (``base_table_state`` carries it otherwise). None: not known.
    """

    base_table_name: str
    base_table_state: dict[str, Any] | None
    base_version: int | None
    permutation_data: SplitData | None
    split: int
    selection: dict[str, str]
    batch_size: int
    transform_fn: Callable[[pa.RecordBatch], Any]
    offset: int | None = None
    limit: int | None = None
    repeat: int = 1
    binary_views: bool = False
    connection_factory: Callable[[str], Table] | None = None
    base_remote: bool = False
    base_table_id: str | None = None

    @classmethod
    def from_permutation(
        cls,
        permutation: Permutation,
        split_data: Callable[[], SplitData | None],
        split_reader: Callable[[], Any],
    ) -> PermutationState:
        """The state of ``permutation``, from its public settings and two callables
        given by the permutation: ``split_data()`` (its split, None for an identity) and
        ``split_reader()`` (a native reader of the whole split, for a ``memory://``
        base). Neither is called when the state needs no I/O (a copy never used since it
        was unpickled).

        Raises:
            pickle.PicklingError: the transform or the connection factory is a lambda or
                a nested function.
        """
        _check_picklable_callable(permutation.transform_fn, "transform")
        factory = permutation.connection_factory
        if factory is not None:
            _check_picklable_callable(factory, "connection_factory")
        base = permutation.base_table
        base_version = permutation.base_version
        settings = {
            "base_table_name": base_name(base),
            "split": permutation.split,
            "selection": dict(permutation.selection),
            "batch_size": permutation.batch_size,
            "transform_fn": permutation.transform_fn,
            "offset": permutation.offset,
            "limit": permutation.limit,
            "repeat": permutation.repeat_times,
            "binary_views": permutation.binary_views,
            "connection_factory": factory,
        }
        if is_remote(base):
            # A remote table pickles as its connection settings, name and the pinned
            # version (riffledb.remote.table.RemoteTable.__getstate__).
            return cls(
                base_table_state=None
                if factory is not None
                else base._pickle_state(base_version),
                base_version=base_version,
                permutation_data=split_data(),
                base_remote=factory is not None,
                base_table_id=None
                if factory is None or base_version is None
                else base._table_id(base_version),
                **settings,
            )
        ref = reference(base)
        if factory is None and ref.is_memory and not ref.is_pending:
            rows = _split_rows(split_reader())
            return cls(
                base_table_state=memory_state(ref.name, rows),
                base_version=None,
                permutation_data=None,
                **settings,
            )
        return cls(
            base_table_state=None if factory is not None else ref.state(base_version),
            base_version=base_version,
            permutation_data=split_data(),
            **settings,
        )

    def to_dict(self) -> dict[str, Any]:
        """The state dict pickled (``base_table_state`` is left out with a connection
        factory)."""
        state = {
            "format_version": FORMAT_VERSION,
            "base_table_name": self.base_table_name,
            "base_table_state": self.base_table_state,
            "base_version": self.base_version,
            "permutation_data": (
                None
                if self.permutation_data is None
                else self.permutation_data.to_state()
            ),
            "split": self.split,
            "selection": dict(self.selection),
            "batch_size": self.batch_size,
            "transform_fn": self.transform_fn,
            "offset": self.offset,
            "limit": self.limit,
            "repeat": self.repeat,
            "binary_views": self.binary_views,
            "connection_factory": self.connection_factory,
        }
        if self.connection_factory is not None:
            del state["base_table_state"]
            if self.base_remote:
                state["base_remote"] = True
            if self.base_table_id is not None:
                state["base_table_id"] = self.base_table_id
        return state

    @classmethod
    def from_dict(cls, state: Any) -> PermutationState:
        """Checks a state dict and returns it as a state.

        Raises:
            ValueError: an unknown ``format_version``, a missing or unknown key, a value
                out of range, or neither a ``base_table_state`` nor a
                ``connection_factory`` (each message names the key).
            TypeError: a value of the wrong type (naming the key).
        """
        if not isinstance(state, dict):
            raise RiffledbTypeError(
                f"A permutation pickle state must be a dict, got {describe(state)}"
            )
        if "format_version" not in state:
            raise InvalidError(f"{_where('format_version')} is missing")
        version = state["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise InvalidError(
                f"{_where('format_version')} is {version!r}: this riffledb reads only "
                f"format version {FORMAT_VERSION} (was the permutation pickled by "
                "another riffledb version?)"
            )
        factory = _check_callable(
            state.get("connection_factory"), "connection_factory", none_ok=True
        )
        # base_table_state is left out with a factory; its absence without one gets
        # the message below, which says what else would do.
        _check_keys(
            state,
            set(_KEYS),
            optional=frozenset({"base_table_state", "base_remote", "base_table_id"}),
        )
        name = check_str(state["base_table_name"], _where("base_table_name"))
        table_state = state.get("base_table_state")
        if factory is None and table_state is None:
            raise InvalidError(
                f"Cannot unpickle a permutation over table '{name}': the state has "
                "neither a base_table_state nor a connection_factory"
            )
        if isinstance(table_state, dict) and table_state.get("kind") == "remote":
            _check_remote_state(table_state)
        elif table_state is not None:
            check_table_state(table_state, _where("base_table_state"))
        selection = state["selection"]
        if not isinstance(selection, dict) or not selection:
            raise RiffledbTypeError(
                f"{_where('selection')} must be a non-empty dict of str -> str, got "
                f"{describe(selection)}"
            )
        for key, value in selection.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise RiffledbTypeError(
                    f"{_where('selection')} must map str to str, got {describe(key)} "
                    f"-> {describe(value)}"
                )
        data = state["permutation_data"]
        base_remote = check_bool(state.get("base_remote", False), _where("base_remote"))
        table_id = check_str(
            state.get("base_table_id"), _where("base_table_id"), none_ok=True
        )
        if table_id is not None and not base_remote:
            raise InvalidError(
                f"{_where('base_table_id')} is set, but the state is not of a remote "
                "base table opened by a connection_factory (base_remote)"
            )
        return cls(
            base_table_name=name,
            base_table_state=None if table_state is None else dict(table_state),
            base_version=check_int(
                state["base_version"], _where("base_version"), minimum=1, none_ok=True
            ),
            permutation_data=None if data is None else SplitData.from_state(data),
            split=check_int(state["split"], _where("split")),
            selection=dict(selection),
            batch_size=check_int(state["batch_size"], _where("batch_size"), minimum=1),
            transform_fn=_check_callable(state["transform_fn"], "transform_fn"),
            offset=check_int(state["offset"], _where("offset"), none_ok=True),
            limit=check_int(state["limit"], _where("limit"), none_ok=True),
            repeat=check_int(state["repeat"], _where("repeat"), minimum=1),
            binary_views=check_bool(state["binary_views"], _where("binary_views")),
            connection_factory=factory,
            base_remote=base_remote,
            base_table_id=table_id,
        )

    def open_base_table(self) -> Table:
        """The base table, reopened on first use (no I/O now): through the connection
        factory at the pinned version, or from its pickle state."""
        if self.connection_factory is not None and self.base_remote:
            from .remote.table import RemoteTable

            table = RemoteTable._from_factory(
                self.connection_factory, self.base_table_name, self.base_version
            )
            if self.base_table_id is not None and self.base_version is not None:
                table._pin_table_id(self.base_version, self.base_table_id)
            return table
        if self.connection_factory is not None:
            return table_from_state(
                {
                    "kind": "factory",
                    "factory": self.connection_factory,
                    "name": self.base_table_name,
                    "version": self.base_version,
                }
            )
        if self.base_table_state is None:  # from_dict refuses this
            raise InternalError("A permutation state without a base table")
        if self.base_table_state.get("kind") == "remote":
            from .remote.table import RemoteTable

            table = RemoteTable.__new__(RemoteTable)
            table.__setstate__(self.base_table_state)  # connects: no request
            return table
        return table_from_state(self.base_table_state)


def _check_remote_state(state: dict[str, Any]) -> None:
    """Checks the pickle state of a remote base table (see
    :meth:`riffledb.remote.table.RemoteTable.__getstate__`)."""
    what = _where("base_table_state")
    # table_id: which table of the name the version is of (optional: states pickled
    # before it, or of a server that gives none).
    _check_keys(
        state,
        {"kind", "connection", "name", "version", "table_id"},
        "base_table_state.",
        optional=frozenset({"table_id"}),
    )
    if not isinstance(state["connection"], dict):
        raise RiffledbTypeError(
            f"{what} key 'connection' must be a dict, got {describe(state['connection'])}"
        )
    check_str(state["name"], f"{what} key 'name'")
    check_int(state["version"], f"{what} key 'version'", minimum=1, none_ok=True)
    check_str(state.get("table_id"), f"{what} key 'table_id'", none_ok=True)


def _split_rows(reader: Any) -> pa.Table:
    """Every base column of the rows of a native reader, in its order (schema metadata
    kept)."""
    bound = reader.bind(None)
    schema = pa.Schema._import_from_c_capsule(bound.schema())
    batches = [
        reader.read_batch(i, _ROWS_PER_READ, False, bound).to_arrow(schema)
        for i in range(reader.num_batches(_ROWS_PER_READ, False))
    ]
    return pa.Table.from_batches(batches, schema=schema)
