"""Permutations: splits and shuffles of a table, read as PyTorch-ready datasets.

LanceDB's ``lancedb.permutation`` surface. A *permutation table* (made by
:func:`permutation_builder`) lists base-table row ids per split; a :class:`Permutation`
reads one split of it (or, with :meth:`Permutation.identity`, the whole table) as a lazy,
map-style dataset: ``len(p)``, ``p[i]``, ``p.__getitems__(indices)`` and batched
iteration, with every read going through the permutation's format or transform.

A permutation pins the versions of its tables when it is created: it reads the base-table
version its table handle was on then (and the permutation table's), so writes to the table
during a training run change neither what the run reads nor ``len()``.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from . import _riffledb
from .util import (
    attempt_import_or_raise,
    batch_to_numpy,
    batch_to_numpy_dict,
    batch_to_tensor,
    batch_to_tensor_dict,
    batch_to_tensor_rows,
    batch_to_torch_dict,
)

if TYPE_CHECKING:
    from ._permutation_builder import PermutationBuilder
    from .table import Table

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Permutation",
    "PermutationBuilder",
    "Permutations",
    "Transforms",
    "permutation_builder",  # noqa: F822 (module __getattr__)
]

#: Rows per batch when iterating, unless ``with_batch_size`` says otherwise (HuggingFace
#: uses 10).
DEFAULT_BATCH_SIZE = 100

_ROWID = "_rowid"


def __getattr__(name: str):
    # The builder lives in its own module; re-exported lazily so that this module does
    # not depend on it at import time.
    if name in ("PermutationBuilder", "permutation_builder"):
        from . import _permutation_builder

        return getattr(_permutation_builder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- transforms --------------------------------------------------------------------------


def _arrow2polars(batch: pa.RecordBatch):
    pl = attempt_import_or_raise("polars")
    return pl.from_arrow(batch)


class Transforms:
    """Batch converters, the transforms behind :meth:`Permutation.with_format`.

    Each takes the ``pa.RecordBatch`` of a read and returns what the read returns. All are
    module-level functions, so a permutation using them pickles.
    """

    @staticmethod
    def arrow2python(batch: pa.RecordBatch) -> list[dict[str, Any]]:
        """``"python"``: a list with one dict per row (copies into Python objects)."""
        return batch.to_pylist()

    @staticmethod
    def arrow2pythoncol(batch: pa.RecordBatch) -> dict[str, list[Any]]:
        """``"python_col"``: a dict of column name -> list of values (copies)."""
        return batch.to_pydict()

    @staticmethod
    def arrow2arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
        """``"arrow"``: the ``pa.RecordBatch`` itself (zero-copy)."""
        return batch

    @staticmethod
    def arrow2numpy(batch: pa.RecordBatch):
        """``"numpy"``: one 2-D ``np.ndarray`` of shape (rows, features).

        See :func:`riffledb.util.batch_to_numpy`: fixed-size list columns (embeddings)
        contribute one feature per element; mixed numeric dtypes are promoted, other mixes
        give ``object``. For a dict of per-column arrays use
        :func:`riffledb.util.batch_to_numpy_dict` with ``with_transform``.
        """
        return batch_to_numpy(batch)

    @staticmethod
    def arrow2pandas(batch: pa.RecordBatch):
        """``"pandas"``: a ``pd.DataFrame`` (zero-copy for numeric columns where pandas
        allows it)."""
        attempt_import_or_raise("pandas")
        return batch.to_pandas()

    @staticmethod
    def arrow2polars(batch: pa.RecordBatch | None = None):
        """``"polars"``: a ``pl.DataFrame`` (zero-copy).

        Called without a batch (LanceDB's spelling, ``Transforms.arrow2polars()``)
        it returns the converter itself, a module-level function that pickles by name.
        """
        if batch is None:
            attempt_import_or_raise("polars")
            return _arrow2polars
        return _arrow2polars(batch)


_FORMATS: dict[str, tuple[Callable[[pa.RecordBatch], Any], str | None]] = {
    "python": (Transforms.arrow2python, None),
    "python_col": (Transforms.arrow2pythoncol, None),
    "numpy": (Transforms.arrow2numpy, None),
    "pandas": (Transforms.arrow2pandas, "pandas"),
    "arrow": (Transforms.arrow2arrow, None),
    "polars": (_arrow2polars, "polars"),
    "torch": (batch_to_tensor_dict, "torch"),
    "torch_row": (batch_to_tensor_rows, "torch"),
    "torch_col": (batch_to_tensor, "torch"),
    # riffledb's own: a dict of batch-first columns (gathered straight into arrays)
    "numpy_dict": (batch_to_numpy_dict, None),
    "torch_dict": (batch_to_torch_dict, "torch"),
}

Format = Literal[
    "python",
    "python_col",
    "numpy",
    "pandas",
    "arrow",
    "polars",
    "torch",
    "torch_row",
    "torch_col",
    "numpy_dict",
    "torch_dict",
]


def _numpy_columns(names: list[str], arrays: list) -> dict[str, Any]:
    return dict(zip(names, arrays, strict=True))


def _torch_columns(names: list[str], arrays: list) -> dict[str, Any]:
    import torch

    from_numpy = torch.from_numpy
    return {name: from_numpy(array) for name, array in zip(names, arrays, strict=True)}


def _column_reader(transform: Callable[[pa.RecordBatch], Any]):
    """For a transform that makes a dict of batch-first columns, the function building
    that dict from the native take's NumPy arrays (the same dict, without a
    ``pa.RecordBatch`` in between); None for other transforms."""
    if transform is batch_to_torch_dict:
        return _torch_columns
    if transform is batch_to_numpy_dict:
        return _numpy_columns
    return None


# -- helpers -----------------------------------------------------------------------------


def _check_table(table: Any, what: str) -> None:
    if not hasattr(table, "_inner") or not hasattr(table._inner, "snapshot"):
        raise TypeError(f"{what} must be a riffledb Table, got {type(table).__name__}")


def _split_names(permutation_table: Table) -> list[str] | None:
    """The JSON ``split_names`` of the permutation table's metadata, validated;
    None when there is none."""
    metadata = permutation_table.schema.metadata
    if not metadata or b"split_names" not in metadata:
        return None
    try:
        names = json.loads(metadata[b"split_names"].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"The permutation table's split_names metadata is not valid JSON: {error}"
        ) from error
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            "The permutation table's split_names metadata must be a JSON list of "
            f"strings, got {names!r}"
        )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(
                f"The permutation table's split names are not unique: `{name}` appears "
                "more than once"
            )
        seen.add(name)
    return names


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    return int(value)


def _as_offsets(offsets: Any):
    """Offsets as something the native take accepts in one call: an int64 numpy array or a
    list of ints."""
    if isinstance(offsets, np.ndarray):
        if offsets.ndim != 1:
            raise ValueError(
                f"offsets must be one-dimensional, got shape {offsets.shape}"
            )
        if offsets.dtype.kind not in "iu":
            raise TypeError(f"offsets must be integers, got dtype {offsets.dtype}")
        if (
            offsets.dtype.kind == "u"
            and len(offsets)
            and offsets.max() > np.iinfo(np.int64).max
        ):
            raise IndexError(f"Offset {offsets.max()} is out of range")
        return np.ascontiguousarray(offsets, dtype=np.int64)
    if isinstance(offsets, list):
        return offsets
    if isinstance(offsets, (pa.Array, pa.ChunkedArray)):
        return _as_offsets(offsets.to_numpy(zero_copy_only=False))
    if hasattr(offsets, "__array__") and not isinstance(offsets, (str, bytes)):
        return _as_offsets(np.asarray(offsets))  # torch tensors
    if isinstance(offsets, (str, bytes)) or not hasattr(offsets, "__iter__"):
        raise TypeError(
            f"offsets must be a sequence of integers, got {type(offsets).__name__}"
        )
    return list(offsets)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# -- pickling helpers --------------------------------------------------------------------

#: Version of the Permutation pickle state layout.
_PICKLE_FORMAT = 1


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


def _memory_table(name: str, data: pa.Table) -> Table:
    from . import connect

    return connect("memory://").create_table(name, data)


def _permutation_table_from_data(data: dict[str, Any], split: int) -> Table:
    """A memory:// permutation table holding one split: ``row_ids`` (bytes or a uint64
    array) at index ``split``, with the original ``split_names`` metadata."""
    row_ids = data["row_ids"]
    if isinstance(row_ids, (bytes, bytearray, memoryview)):
        row_ids = np.frombuffer(row_ids, dtype=np.uint64)
    split_ids = np.full(len(row_ids), split, dtype=np.uint64)
    metadata = None
    if data.get("split_names") is not None:
        metadata = {b"split_names": json.dumps(data["split_names"]).encode("utf-8")}
    schema = pa.schema(
        [
            pa.field("row_id", pa.uint64(), False),
            pa.field("split_id", pa.uint64(), False),
        ],
        metadata=metadata,
    )
    table = pa.Table.from_arrays(
        [pa.array(row_ids, pa.uint64()), pa.array(split_ids, pa.uint64())], schema=schema
    )
    return _memory_table("permutation", table)


# -- Permutations ------------------------------------------------------------------------


class Permutations:
    """The splits of a permutation table, by name or index.

    Attributes:
        base_table: The table the permutation table refers to.
        permutation_table: The permutation table (``row_id``, ``split_id``).
        split_names: The split names from the permutation table's metadata (``[]`` when
            it has none).
        split_dict: Split name -> split index.

    Raises:
        ValueError: the ``split_names`` metadata is not a JSON list of unique strings.
    """

    def __init__(self, base_table: Table, permutation_table: Table):
        _check_table(base_table, "base_table")
        _check_table(permutation_table, "permutation_table")
        self.base_table = base_table
        self.permutation_table = permutation_table
        self.split_names: list[str] = _split_names(permutation_table) or []
        self.split_dict: dict[str, int] = {n: i for i, n in enumerate(self.split_names)}

    def get_by_name(self, name: str) -> Permutation:
        """The split named ``name``; ValueError if there is none."""
        index = self.split_dict.get(name)
        if index is None:
            raise ValueError(f"No split named `{name}` found")
        return self.get_by_index(index)

    def get_by_index(self, index: int) -> Permutation:
        """Split ``index`` (ValueError "No rows found ..." if it has no rows)."""
        return Permutation.from_tables(self.base_table, self.permutation_table, index)

    def __getitem__(self, key: str | int) -> Permutation:
        if isinstance(key, str):
            return self.get_by_name(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.get_by_index(int(key))
        raise TypeError(f"Invalid split name or index: {key}")

    def __repr__(self) -> str:
        return f"Permutations(split_names={self.split_names!r})"


# -- Permutation -------------------------------------------------------------------------


class Permutation:
    """A view of one split of a table, in permutation order, as a map-style dataset.

    Fulfils the PyTorch ``Dataset`` contract (``__len__``, ``__getitem__``,
    ``__getitems__``) and follows HuggingFace ``Dataset`` naming. Nothing is copied or
    materialised: rows are gathered from the base table when read.

    Every ``with_*`` / selection method returns a new permutation; ``self`` is never
    modified. Reads are thread-safe.

    Positions (``offsets``) are 0-based within the permutation after ``with_skip`` /
    ``with_take`` / ``with_repeat``. The permutation reads the table versions that were
    current when it was created (see the module docstring).

    State is plain (tables, split, selection, batch size, transform, offset, limit,
    repeat, pinned versions, connection factory); the native reader is a cache rebuilt
    lazily in each process (``_ensure_open``), so a forked DataLoader worker rebuilds its
    own. A permutation pickles without native handles (spawn/forkserver workers): see
    :meth:`__getstate__`.
    """

    def __init__(
        self,
        base_table: Table,
        permutation_table: Table | None,
        split: int,
        selection: dict[str, str],
        batch_size: int,
        transform_fn: Callable[[pa.RecordBatch], Any],
        offset: int | None = None,
        limit: int | None = None,
        *,
        repeat: int = 1,
        base_version: int | None = None,
        permutation_version: int | None = None,
    ):
        """Internal constructor: use :meth:`from_tables` or :meth:`identity`."""
        assert base_table is not None, "base_table is required"
        assert selection is not None, "selection is required"
        self.base_table = base_table
        self._permutation_table = permutation_table
        # A compact pickled permutation table (row ids of one split), built into a
        # memory:// table on first use; see __setstate__.
        self._permutation_data: dict[str, Any] | None = None
        self.connection_factory: Callable[[str], Table] | None = None
        self.split = split
        self.selection = dict(selection)
        self.batch_size = batch_size
        self.transform_fn = transform_fn
        self.offset = offset
        self.limit = limit
        self.repeat_times = repeat
        self.base_version = (
            base_version if base_version is not None else base_table.version
        )
        self.permutation_version = (
            permutation_version
            if permutation_version is not None or permutation_table is None
            else permutation_table.version
        )
        self._clear_cache()

    @property
    def permutation_table(self) -> Table | None:
        """The permutation table (None for an identity permutation).

        After unpickling it is a ``memory://`` table holding only this permutation's split
        (at its original index, with the original ``split_names``), made on first use.
        """
        table = self._permutation_table
        if table is None and self._permutation_data is not None:
            data = self._permutation_data
            if "recipe" in data:
                data = self._rebuild_split(data)
            table = _permutation_table_from_data(data, self.split)
            self._permutation_table, self._permutation_data = table, None
            self.permutation_version = table.version
        return table

    def _rebuild_split(self, data: dict[str, Any]) -> dict[str, Any]:
        """This split's row ids, rebuilt from a pickled recipe over the base table at the
        pinned version and checked against the pickled digest."""
        from ._permutation_builder import SPLIT_DIGESTS_METADATA_KEY, build_from_recipe

        base = self._snapshot(self.base_table, self.base_version)
        table = build_from_recipe(base, data["recipe"])
        digests = json.loads(table.schema.metadata[SPLIT_DIGESTS_METADATA_KEY])
        got = digests.get(str(self.split))
        if got != data["digest"]:
            raise RuntimeError(
                f"Cannot rebuild split {self.split} of the permutation over table "
                f"'{self.base_table.name}' (version {self.base_version}): rebuilding it "
                f"from its recipe gave other rows (digest {got}, expected "
                f"{data['digest']}). The table was replaced since the permutation was "
                "pickled."
            )
        split_ids = table.column("split_id").to_numpy()
        lo, hi = np.searchsorted(split_ids, [self.split, self.split + 1])
        row_ids = table.column("row_id").slice(lo, hi - lo).to_numpy()
        return {"row_ids": row_ids, "split_names": data.get("split_names")}

    @permutation_table.setter
    def permutation_table(self, table: Table | None) -> None:
        self._permutation_table, self._permutation_data = table, None

    # -- native state (a per-process cache) ----------------------------------------------
    def _clear_cache(self) -> None:
        self._reader = None
        self._bound = None
        self._pid: int | None = None
        self._snapshots = None

    @staticmethod
    def _snapshot(table: Table, version: int):
        if table.version == version:
            return table._inner.snapshot()
        # The handle moved on (it wrote, or checked out): read the pinned version
        # through a separate handle, leaving the user's one alone.
        conn = getattr(table, "_conn", None)
        if conn is None:
            raise ValueError(
                f"Cannot read version {version} of table '{table.name}': the table "
                f"handle is now on version {table.version} and has no connection to "
                "reopen it"
            )
        other = conn.open_table(table.name)
        other.checkout(version)
        return other._inner.snapshot()

    def _ensure_open(self):
        """The native reader of this process, rebuilt after fork or unpickling."""
        pid = os.getpid()
        if self._reader is not None and self._pid == pid:
            return self._reader
        if self._snapshots is None:
            if self.base_version is None:  # unpickled from rows (memory:// base)
                self.base_version = self.base_table.version
            base = self._snapshot(self.base_table, self.base_version)
            permutation_table = self.permutation_table
            perm = (
                None
                if permutation_table is None
                else self._snapshot(permutation_table, self.permutation_version)
            )
            self._snapshots = (base, perm)
        # An identity reader reads "split 0" (of the whole table); a permutation unpickled
        # from rows keeps its original split index (see __getstate__).
        split = 0 if self._snapshots[1] is None else self.split
        reader = _riffledb.PermutationReader.open(*self._snapshots, split)
        if self.offset is not None or self.limit is not None:
            reader = reader.with_offset_limit(self.offset, self.limit)
        self._reader, self._bound, self._pid = reader, None, pid
        return reader

    def _bound_selection(self):
        reader = self._ensure_open()
        if self._bound is None:
            self._bound = reader.bind(list(self.selection.items()))
        return self._bound

    def __copy__(self) -> Permutation:
        # Not through __getstate__ (that is for pickling: it reads, and it reshapes
        # permutations over memory:// tables). The copy shares the tables and the
        # immutable native reader.
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.selection = dict(self.selection)
        return other

    def __deepcopy__(self, memo: dict[int, Any]) -> Permutation:
        # A permutation is immutable: a deep copy is a copy sharing its tables.
        return self.__copy__()

    def _copy(self, **changes: Any) -> Permutation:
        other = self.__copy__()
        for key, value in changes.items():
            setattr(other, key, value)
        if "selection" in changes:
            other._bound = None
        return other

    # -- pickling ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The pickle state: plain values, never a native handle.

        Keys: ``format_version``; ``base_table_name``; ``base_table_state`` (the base
        Table's pickle state at the pinned version; absent with a connection factory);
        ``base_version``; ``permutation_data`` (None for an identity, else ``{"row_ids":
        uint64 bytes of the whole split in permutation order, "split_names"}``);
        ``split``; ``selection``; ``batch_size``; ``transform_fn``; ``offset``;
        ``limit``; ``repeat``; ``connection_factory``.

        A permutation over a ``memory://`` table (without a connection factory) pickles
        the split's rows in permutation order as the base table's data and becomes an
        identity over them, so row ids cannot go stale (appends, deletes).

        Raises:
            pickle.PicklingError: the transform or the connection factory is a lambda
                or a nested function.
        """
        _check_picklable_callable(self.transform_fn, "transform")
        factory = self.connection_factory
        if factory is not None:
            _check_picklable_callable(factory, "connection_factory")
        base = self.base_table
        state: dict[str, Any] = {
            "format_version": _PICKLE_FORMAT,
            "base_table_name": base._unopened_name(),
            "base_version": self.base_version,
            "split": self.split,
            "selection": dict(self.selection),
            "batch_size": self.batch_size,
            "transform_fn": self.transform_fn,
            "offset": self.offset,
            "limit": self.limit,
            "repeat": self.repeat_times,
            "connection_factory": factory,
        }
        if factory is not None:
            state["permutation_data"] = self._compact_permutation_data()
        elif base._native is None and base._pickled is not None:
            # Never used since it was unpickled: pass the state on as it is (no I/O).
            state["base_table_state"] = dict(base._pickled)
            state["permutation_data"] = self._compact_permutation_data()
        elif base._is_memory():
            from .table import _memory_state

            state["base_table_state"] = _memory_state(
                state["base_table_name"], self._split_rows()
            )
            state["base_version"] = None
            state["permutation_data"] = None
        else:
            table_state = base.__getstate__()
            table_state["version"] = self.base_version
            state["base_table_state"] = table_state
            state["permutation_data"] = self._compact_permutation_data()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restores without I/O: the tables reopen, and the reader is built, on first
        use (in this process)."""
        from .table import Table

        factory = state.get("connection_factory")
        name = state["base_table_name"]
        version = state.get("base_version")
        if factory is not None:
            base = Table._from_state(
                {"kind": "factory", "factory": factory, "name": name, "version": version}
            )
        elif state.get("base_table_state") is not None:
            base = Table._from_state(state["base_table_state"])
        else:
            raise ValueError(
                f"Cannot unpickle a permutation over table '{name}': the state has "
                "neither a base_table_state nor a connection_factory"
            )
        self.base_table = base
        self.connection_factory = factory
        self._permutation_table = None
        self._permutation_data = None
        data = state.get("permutation_data")
        if isinstance(data, pa.Table):  # the spec's form: the whole permutation table
            self._permutation_table = _memory_table("permutation", data)
        elif data is not None:
            self._permutation_data = dict(data)
        self.split = state["split"]
        self.selection = dict(state["selection"])
        self.batch_size = state["batch_size"]
        self.transform_fn = state["transform_fn"]
        self.offset = state.get("offset")
        self.limit = state.get("limit")
        self.repeat_times = state.get("repeat", 1)
        self.base_version = version
        self.permutation_version = None
        if self._permutation_table is not None:
            self.permutation_version = self._permutation_table.version
        self._clear_cache()

    def _compact_permutation_data(self) -> dict[str, Any] | None:
        """The row ids of the whole split (before skip/take) in permutation order, and
        the split names."""
        if self._permutation_table is None and self._permutation_data is not None:
            return self._permutation_data
        if self._permutation_table is None:
            return None
        full = self._ensure_open().with_offset_limit(None, None)
        schema, array = full.row_ids()
        batch = pa.RecordBatch._import_from_c_capsule(schema, array)
        recipe = self._recipe_data(batch)
        if recipe is not None:
            return recipe
        return {
            "row_ids": batch.column(0).to_numpy(zero_copy_only=False).tobytes(),
            "split_names": _split_names(self._permutation_table),
        }

    def _recipe_data(self, row_ids: pa.RecordBatch) -> dict[str, Any] | None:
        """The split as the builder's recipe (a few hundred bytes, whatever the size of
        the split), or None unless the permutation table provably is what that recipe
        builds: it carries the recipe, the build's base table and version are this
        permutation's, and the digest of this split's ``row_ids`` matches the build's."""
        from ._permutation_builder import (
            BASE_VERSION_METADATA_KEY,
            RECIPE_METADATA_KEY,
            SPLIT_DIGESTS_METADATA_KEY,
            table_identity,
        )

        metadata = self._permutation_table.schema.metadata or {}
        recipe = metadata.get(RECIPE_METADATA_KEY)
        digests = metadata.get(SPLIT_DIGESTS_METADATA_KEY)
        base_version = metadata.get(BASE_VERSION_METADATA_KEY)
        if recipe is None or digests is None or base_version is None:
            return None
        try:
            spec = json.loads(recipe)
            expected = json.loads(digests).get(str(self.split))
            same_base = int(base_version) == self.base_version and spec.get(
                "base"
            ) == table_identity(self.base_table)
        except (ValueError, AttributeError):
            return None
        if not same_base or expected is None:
            return None
        digest = _riffledb.PermutationBuilder.digest_row_ids(
            pa.Table.from_batches([row_ids])
        )
        if digest != expected:
            return None
        return {
            "recipe": recipe.decode("utf-8"),
            "digest": expected,
            "split_names": _split_names(self._permutation_table),
        }

    def _split_rows(self) -> pa.Table:
        """Every base column of the whole split's rows (before skip/take), in permutation
        order, at the pinned version (schema metadata kept)."""
        full = self._ensure_open().with_offset_limit(None, None)
        stream = pa.RecordBatchReader._import_from_c_capsule(
            full.read(full.bind(None), 65536)
        )
        return stream.read_all()

    def with_connection_factory(self, factory: Callable[[str], Table]) -> Permutation:
        """Reopens the base table in a worker with ``factory(base_table_name)`` instead
        of pickling the table (its path or, for ``memory://``, its rows).

        ``factory`` must pickle: a module-level function, a ``functools.partial`` of one,
        or a picklable callable object. The worker checks the returned table out at the
        permutation's pinned version.
        """
        assert factory is not None, "connection_factory is required"
        if not callable(factory):
            raise TypeError(
                f"connection_factory must be callable, got {type(factory).__name__}"
            )
        return self._copy(connection_factory=factory)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def identity(cls, table: Table) -> Permutation:
        """All rows of ``table`` in storage order, as of its current version.

        Raises:
            ValueError: the table has no rows.
        """
        return cls.from_tables(table, None, None)

    @classmethod
    def from_tables(
        cls,
        base_table: Table,
        permutation_table: Table | None = None,
        split: str | int | None = None,
    ) -> Permutation:
        """One split of a permutation table over ``base_table``.

        Args:
            base_table: The table holding the data.
            permutation_table: What :meth:`PermutationBuilder.execute` returned, or any
                table with integer ``row_id`` (base ``_rowid``) and ``split_id`` columns;
                rows of a split are read in its stored order. None: the identity
                permutation (all base rows in storage order).
            split: The split index, or its name from the ``split_names`` metadata; None
                means split 0.

        Raises:
            ValueError: a split without a permutation table, an unknown split name, a
                negative index, invalid ``split_names`` metadata, a permutation table
                without ``row_id``/``split_id``, or a split without rows ("Invalid input,
                No rows found in the permutation table for the given split").
            TypeError: ``split`` is not a str or int.
        """
        assert base_table is not None, "base_table is required"
        _check_table(base_table, "base_table")
        if permutation_table is not None:
            _check_table(permutation_table, "permutation_table")
        if split is None:
            index = 0
        else:
            if permutation_table is None:
                raise ValueError(
                    f"Cannot create a permutation on split `{split}` because no "
                    "permutation table is provided"
                )
            if isinstance(split, str):
                names = _split_names(permutation_table)
                if names is None:
                    raise ValueError(
                        f"Cannot create a permutation on split `{split}` because no "
                        "split names are defined in the permutation table"
                    )
                if split not in names:
                    raise ValueError(
                        f"Cannot create a permutation on split `{split}` because split "
                        f"`{split}` is not defined in the permutation table"
                    )
                index = names.index(split)
            elif isinstance(split, (int, np.integer)) and not isinstance(split, bool):
                index = int(split)
                if index < 0:
                    raise ValueError(f"Split index must not be negative, got {index}")
            else:
                raise TypeError(f"Invalid split: {split}")
        permutation = cls(
            base_table,
            permutation_table,
            index,
            {},
            DEFAULT_BATCH_SIZE,
            Transforms.arrow2python,
        )
        reader = permutation._ensure_open()
        bound = reader.bind(None)
        names = pa.Schema._import_from_c_capsule(bound.schema()).names
        permutation.selection = {name: name for name in names}
        permutation._bound = bound
        return permutation

    # -- configuration (each returns a new permutation) ----------------------------------
    def with_batch_size(self, batch_size: int) -> Permutation:
        """The batch size of ``__iter__`` (default :data:`DEFAULT_BATCH_SIZE`)."""
        batch_size = _check_count(batch_size, "batch_size")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return self._copy(batch_size=batch_size)

    def with_format(self, format: Format) -> Permutation:
        """Sets what reads return, one of:

        - ``"python"`` (default): a list of row dicts (copies).
        - ``"python_col"``: a dict of column -> list (copies).
        - ``"numpy"``: one 2-D ``np.ndarray`` (rows, features); fixed-size list columns
          (embeddings) give one feature per element. A single numeric column without nulls
          is a zero-copy view; otherwise the columns are copied into one array.
        - ``"pandas"``: a ``pd.DataFrame``.
        - ``"arrow"``: the ``pa.RecordBatch`` (zero-copy).
        - ``"polars"``: a ``pl.DataFrame`` (zero-copy).
        - ``"torch"``: a list of row dicts of tensors, each a view into a zero-copy column
          tensor (0-D, or 1-D for a fixed-size list column); dtypes kept. torch's default
          collate makes a dict of (batch,) / (batch, d) tensors.
        - ``"torch_row"``: a list of 1-D row tensors (features per row; one copy).
        - ``"torch_col"``: one 2-D tensor (features, rows), columns first (one copy).
        - ``"numpy_dict"`` (riffledb's own): a dict of column -> batch-first
          ``np.ndarray``, (rows,) or (rows, d) for a fixed-size list.
        - ``"torch_dict"`` (riffledb's own): a dict of column -> batch-first tensor, like
          HuggingFace's ``with_format("torch")`` batches. The fastest format: reads whose
          columns are numbers, booleans or fixed-size lists of numbers without nulls are
          gathered straight into tensors (see :func:`riffledb.util.batch_to_torch_dict`).
          A ``DataLoader`` needs a ``collate_fn`` that returns its argument.

        Torch formats take numeric and boolean columns and fixed-size lists of them; other
        types raise TypeError naming the column (use :meth:`with_transform`).
        Overrides any earlier transform.

        Raises:
            ValueError: an unknown format.
            ImportError: the format's library is not installed.
        """
        assert format is not None, "format is required"
        if format not in _FORMATS:
            raise ValueError(f"Invalid format: {format}")
        transform, module = _FORMATS[format]
        if module is not None:
            attempt_import_or_raise(module)
        return self.with_transform(transform)

    def with_transform(self, transform: Callable[[pa.RecordBatch], Any]) -> Permutation:
        """Sets a function applied to each ``pa.RecordBatch`` read; its result is
        what reads return. It runs in the caller's thread. Use a module-level function
        so that the permutation pickles (DataLoader workers)."""
        assert transform is not None, "transform is required"
        if not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        return self._copy(transform_fn=transform)

    def with_skip(self, skip: int) -> Permutation:
        """Starts the permutation at row ``skip`` of the split.

        Skip and take always apply as "skip, then take", validated against the whole split
        (no clamping); a second ``with_skip`` replaces the first.

        Raises:
            ValueError: "Offset is greater than the number of rows in the permutation
                table", "Offset + limit is greater than ...", or a negative skip.
        """
        skip = _check_count(skip, "skip")
        reader = self._ensure_open().with_offset_limit(skip, self.limit)
        other = self._copy(offset=skip)
        other._reader, other._bound = reader, None
        return other

    def with_take(self, limit: int) -> Permutation:
        """Limits the permutation to ``limit`` rows after the skip (see
        :meth:`with_skip`).

        ``with_take(0)`` is an empty permutation: iteration yields nothing.

        Raises:
            ValueError: "Limit is greater than the number of rows in the permutation
                table", "Offset + limit is greater than ...", or a negative limit.
        """
        limit = _check_count(limit, "limit")
        reader = self._ensure_open().with_offset_limit(self.offset, limit)
        other = self._copy(limit=limit)
        other._reader, other._bound = reader, None
        return other

    def with_repeat(self, times: int) -> Permutation:
        """Repeats the rows (after skip/take) ``times`` times: ``len`` is multiplied,
        offset ``i`` reads row ``i % n``, and iteration runs through the rows ``times``
        times with batches of exactly ``batch_size`` rows across the repetitions. A
        second call replaces the first.

        Raises:
            ValueError: ``times`` < 1.
        """
        times = _check_count(times, "times")
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        return self._copy(repeat_times=times)

    def skip(self, skip: int) -> Permutation:
        """Deprecated: use :meth:`with_skip`."""
        warnings.warn(
            "skip is deprecated: Use with_skip instead", DeprecationWarning, stacklevel=2
        )
        return self.with_skip(skip)

    def take(self, limit: int) -> Permutation:
        """Deprecated: use :meth:`with_take`."""
        warnings.warn(
            "take is deprecated: Use with_take instead", DeprecationWarning, stacklevel=2
        )
        return self.with_take(limit)

    def repeat(self, times: int) -> Permutation:
        """Deprecated: use :meth:`with_repeat`."""
        warnings.warn(
            "repeat is deprecated: Use with_repeat instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.with_repeat(times)

    # -- selection (metadata only: no I/O) -----------------------------------------------
    def remove_columns(self, columns: list[str]) -> Permutation:
        """Drops these output columns (names not present are ignored).

        Raises:
            ValueError: "Cannot remove all columns".
        """
        assert columns is not None, "columns is required"
        if isinstance(columns, str):
            columns = [columns]
        drop = set(columns)
        selection = {k: v for k, v in self.selection.items() if k not in drop}
        if not selection:
            raise ValueError("Cannot remove all columns")
        return self._copy(selection=selection)

    def rename_column(self, old_name: str, new_name: str) -> Permutation:
        """Renames an output column, keeping its position.

        Raises:
            ValueError: "Cannot rename column `old` because it does not exist", "Cannot
                rename column `old` to `new` because a column with that name already
                exists", or renaming another column to ``_rowid``.
        """
        assert old_name is not None, "old_name is required"
        assert new_name is not None, "new_name is required"
        if old_name not in self.selection:
            raise ValueError(
                f"Cannot rename column `{old_name}` because it does not exist"
            )
        if new_name in self.selection:
            raise ValueError(
                f"Cannot rename column `{old_name}` to `{new_name}` because a column "
                "with that name already exists"
            )
        if new_name == _ROWID:
            raise ValueError(
                f"Dynamic column {self.selection[old_name]} cannot be used to "
                "select _rowid"
            )
        selection = {
            (new_name if key == old_name else key): value
            for key, value in self.selection.items()
        }
        return self._copy(selection=selection)

    def rename_columns(self, column_map: dict[str, str]) -> Permutation:
        """Applies :meth:`rename_column` for each pair, in order."""
        assert column_map is not None, "column_map is required"
        permutation = self
        for old_name, new_name in column_map.items():
            permutation = permutation.rename_column(old_name, new_name)
        return permutation

    def select_columns(self, columns: list[str]) -> Permutation:
        """Keeps only these output columns, in this order (duplicates collapse). Can only
        narrow the selection; ``"_rowid"`` (uint64 row ids) may always be selected.

        Raises:
            ValueError: "Must select at least one column", "Cannot select column `name`
                because it does not exist".
        """
        assert columns is not None, "columns is required"
        if isinstance(columns, str):
            columns = [columns]
        if len(columns) == 0:
            raise ValueError("Must select at least one column")
        selection: dict[str, str] = {}
        for name in columns:
            value = self.selection.get(name)
            if value is None:
                if name != _ROWID:
                    raise ValueError(
                        f"Cannot select column `{name}` because it does not exist"
                    )
                value = _ROWID
            selection[name] = value
        return self._copy(selection=selection)

    def flatten(self) -> Permutation:
        """Replaces each struct column ``s`` by one column per field, named ``s.x``
        (recursively, so nested structs give ``s.x.y``), in place of ``s``. Metadata only:
        fields are read as nested column references.

        Raises:
            ValueError: a struct column computed by an expression (only stored struct
                columns and their fields can be flattened).
        """
        schema = self.schema
        self._ensure_open()
        base_schema = pa.Schema._import_from_c_capsule(self._snapshots[0].schema())
        base_names = set(base_schema.names)

        def expand(
            name: str,
            source: str,
            type_: pa.DataType,
            path: str | None,
            out: dict[str, str],
        ) -> None:
            if not pa.types.is_struct(type_):
                out[name] = source
                return
            if path is None:
                raise ValueError(
                    f"Cannot flatten column `{name}`: it is computed by the expression "
                    f"{source!r}, not read from a struct column"
                )
            for i in range(type_.num_fields):
                child = type_.field(i)
                child_path = f"{path}.{_quote(child.name)}"
                expand(f"{name}.{child.name}", child_path, child.type, child_path, out)

        selection: dict[str, str] = {}
        for field, (name, source) in zip(schema, self.selection.items(), strict=False):
            path = _quote(source) if source in base_names else None
            expand(name, source, field.type, path, selection)
        return self._copy(selection=selection)

    # -- metadata ------------------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        """The schema of what reads return before the transform (selection order)."""
        return pa.Schema._import_from_c_capsule(self._bound_selection().schema())

    @property
    def num_rows(self) -> int:
        """Rows in the permutation (after skip, take and repeat). No I/O."""
        return self._ensure_open().num_rows * self.repeat_times

    @property
    def num_columns(self) -> int:
        return len(self.schema)

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    @property
    def shape(self) -> tuple[int, int]:
        """``(num_rows, num_columns)``."""
        return self.num_rows, self.num_columns

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        kind = "identity" if self.permutation_table is None else f"split={self.split}"
        return (
            f"Permutation({kind}, rows={self.num_rows}, columns={list(self.selection)}, "
            f"batch_size={self.batch_size})"
        )

    def unique(self, column: str) -> list[Any]:
        """The distinct values of an output column over the permutation's rows, in
        order of first appearance (reads the column once).

        Raises:
            ValueError: the column is not in the selection.
        """
        if column not in self.selection:
            raise ValueError(
                f"Cannot get unique values of column `{column}` because it does not exist"
            )
        narrowed = (
            self.select_columns([column])
            .with_repeat(1)
            .with_transform(Transforms.arrow2arrow)
        )
        chunks = [batch.column(0) for batch in narrowed.iter(max(self.batch_size, 8192))]
        if not chunks:
            return []
        import pyarrow.compute as pc  # ~0.1 s to import: only here, not with the module

        return pc.unique(pa.chunked_array(chunks, type=chunks[0].type)).to_pylist()

    # -- reads ---------------------------------------------------------------------------
    def _read_state(self):
        """(reader, bound selection, output schema, output names) of this process, cached:
        the schema is imported once per bound selection, not on every read."""
        reader = self._reader
        if reader is None or self._pid != os.getpid():
            reader = self._ensure_open()
        bound = self._bound
        if bound is None:
            bound = self._bound_selection()
        cache = self.__dict__.get("_read_cache")
        if cache is None or cache[0] is not bound:
            schema = pa.Schema._import_from_c_capsule(bound.schema())
            cache = self._read_cache = (bound, schema, schema.names)
        return reader, bound, cache[1], cache[2]

    def _check_repeat_offsets(self, offsets: Any, reader: Any):
        """Offsets into the repeated permutation as offsets into one repetition."""
        n = reader.num_rows
        array = np.asarray(offsets, dtype=np.int64)
        total = n * self.repeat_times
        bad = (array < 0) | (array >= total)
        if bad.any():
            position = int(np.argmax(bad))
            raise IndexError(
                f"Offset {array[position]} at position {position} is out of range "
                f"for a permutation of {total} rows"
            )
        return array % n

    def _take_batch(self, offsets: Any) -> pa.RecordBatch:
        reader, bound, schema, _ = self._read_state()
        offsets = _as_offsets(offsets)
        if self.repeat_times != 1:
            offsets = self._check_repeat_offsets(offsets, reader)
        address, owner = reader.take_offsets_array(offsets, bound)
        return pa.RecordBatch._import_from_c(address, schema)

    def take_offsets(self, offsets: Sequence[int]) -> Any:
        """The rows at these offsets, in this order (duplicates allowed), through the
        transform. Offsets are positions in this permutation (after skip/take/repeat), and
        the same contract holds for identity permutations.

        Raises:
            IndexError: an offset outside ``[0, len(self))``, naming it.
        """
        reader, bound, schema, names = self._read_state()
        if type(offsets) is not list:
            offsets = _as_offsets(offsets)
        if self.repeat_times != 1:
            offsets = self._check_repeat_offsets(offsets, reader)
        transform = self.transform_fn
        columns = _column_reader(transform)
        if columns is None:
            address, owner = reader.take_offsets_array(offsets, bound)
        else:
            out = reader.take_offsets_numpy(offsets, bound)
            if type(out) is list:
                return columns(names, out)
            address, owner = out  # a column without a NumPy form: through Arrow
        return transform(pa.RecordBatch._import_from_c(address, schema))

    def __getitem__(self, index: int) -> Any:
        """Row ``index`` as a one-row batch through the transform (for ``"python"``,
        a list holding one dict)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(
                f"Permutation indices must be integers, got {type(index).__name__}"
            )
        return self.take_offsets([int(index)])

    def __getitems__(self, indices: Sequence[int]) -> Any:
        """The rows at ``indices`` (torch's batched fetch): one native take, then the
        transform."""
        return self.take_offsets(indices)

    def __iter__(self) -> Iterator[Any]:
        """Batches of ``batch_size`` rows through the transform; a final short batch is
        dropped (``iter(batch_size, skip_last_batch=True)``)."""
        return self.iter(self.batch_size, skip_last_batch=True)

    def iter(self, batch_size: int, skip_last_batch: bool = False) -> Iterator[Any]:
        """Batches of exactly ``batch_size`` rows, in permutation order, through the
        transform; only the last batch may be shorter, and ``skip_last_batch`` drops it.

        A generator: nothing is read until the first ``next``, and each batch is read when
        asked for.
        """
        batch_size = _check_count(batch_size, "batch_size")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        return self._iter(batch_size, skip_last_batch)

    def _iter(self, batch_size: int, skip_last_batch: bool) -> Iterator[Any]:
        reader, bound, schema, names = self._read_state()
        transform = self.transform_fn
        columns = _column_reader(transform)
        if self.repeat_times == 1 and columns is None:
            stream = pa.RecordBatchReader._import_from_c_capsule(
                reader.read(bound, batch_size)
            )
            for batch in stream:
                if skip_last_batch and batch.num_rows < batch_size:
                    return
                yield transform(batch)
            return
        if columns is None:
            take_range, take_offsets = reader.take_range_array, reader.take_offsets_array
        else:
            take_range, take_offsets = reader.take_range_numpy, reader.take_offsets_numpy
        n = reader.num_rows
        total = n * self.repeat_times
        for start in range(0, total, batch_size):
            end = min(start + batch_size, total)
            if skip_last_batch and end - start < batch_size:
                return
            if start // n == (end - 1) // n:
                out = take_range(start % n, end - start, bound)
            else:
                out = take_offsets(np.arange(start, end, dtype=np.int64) % n, bound)
            if type(out) is list:
                yield columns(names, out)
                continue
            address, owner = out
            yield transform(pa.RecordBatch._import_from_c(address, schema))

    # -- introspection -------------------------------------------------------------------
    def row_ids(self) -> pa.UInt64Array:
        """The base ``_rowid`` of each row, in permutation order (after skip/take; one
        repetition)."""
        schema, array = self._ensure_open().row_ids()
        return pa.RecordBatch._import_from_c_capsule(schema, array).column(0)
