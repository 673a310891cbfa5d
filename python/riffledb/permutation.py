"""Permutations: splits and shuffles of a table, read as PyTorch-ready datasets.

LanceDB's ``lancedb.permutation`` surface. A *permutation table* (made by
:func:`permutation_builder`) lists base-table row ids per split; a :class:`Permutation`
reads one split of it (or, with :meth:`Permutation.identity`, the whole table) as a lazy,
map-style dataset: ``len(p)``, ``p[i]``, ``p.__getitems__(indices)`` and batched
iteration, with every read going through the permutation's format or transform.

The work is native: the permutation table is held in C++ grouped by split (a split is a
slice), and the native reader owns the view (skip, take, repeat, batches of exactly
``batch_size`` rows). This module validates arguments, keeps the configuration, and
turns native batches into the chosen format (:mod:`riffledb.formats`).

A permutation pins the versions of its tables when it is created: it reads the base-table
version its table handle was on then (and the permutation table's), so writes to the table
during a training run change neither what the run reads nor ``len()``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import _riffledb
from ._args import bad_index, index_array, offsets_for_take
from ._base_table import base_source, check_base, is_remote
from ._lifetime import release_at_exit
from ._prefetch import (
    DEFAULT_PREFETCH_BYTES,
    DEFAULT_PREFETCH_THREADS,
    PrefetchingIterator,
    check_prefetch,
)
from .errors import InvalidError, RiffledbTypeError
from .formats import Format, Transforms, column_builder, transform_of
from .permutation_state import PermutationState, SplitData
from .table import Table, reference

if TYPE_CHECKING:
    from ._permutation_builder import PermutationBuilder

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "Format",
    "Permutation",
    "PermutationBuilder",
    "Permutations",
    "Transforms",
    "permutation_builder",  # noqa: F822 (module __getattr__)
]

#: Rows per batch when iterating, unless ``with_batch_size`` says otherwise (HuggingFace
#: uses 10).
DEFAULT_BATCH_SIZE = 100
#: Rows a prefetched iteration over a remote table asks for in one request, at most
#: (whole batches, and no more than ``prefetch // prefetch_threads`` of them:
#: ``iter(256, prefetch=8)`` reads 4 batches a request, 2 requests ahead).
REMOTE_READ_ROWS = 1024

_ROWID = "_rowid"
_INT64_MAX = 2**63 - 1


def __getattr__(name: str):
    # The builder lives in its own module; re-exported lazily so that this module does
    # not depend on it at import time.
    if name in ("PermutationBuilder", "permutation_builder"):
        from . import _permutation_builder

        return getattr(_permutation_builder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- helpers -----------------------------------------------------------------------------


def _require(value: Any, what: str) -> None:
    if value is None:
        raise RiffledbTypeError(f"{what} is required")


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise RiffledbTypeError(f"{what} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value > _INT64_MAX:
        raise InvalidError(f"{what} must be at most 2^63 - 1, got {value}")
    return value


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _open_permutation_table(table: Table, version: int | None = None):
    """The native permutation table of a riffledb table (grouped once per version)."""
    snapshot = reference(table, "permutation_table").snapshot(version)
    return _riffledb.PermutationTable.open(snapshot)


def permutation_table_from_native(native: Any) -> Table:
    """A ``memory://`` table holding a native permutation table, which is kept as the
    grouped form of that table's first version (it is not grouped again)."""
    from . import connect

    table = connect("memory://").create_table("permutation", native)
    native.attach(reference(table).snapshot())
    return table


def _release_native(permutation: Permutation) -> None:
    """Drops the native handles at interpreter exit (see :mod:`riffledb._lifetime`); a
    permutation used after that reopens them from its tables."""
    permutation._reader = None
    permutation._selection_cache = None
    if permutation._pending is not None or permutation._permutation_table is not None:
        permutation._native_table = None


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
        check_base(base_table, "base_table")
        native = _open_permutation_table(permutation_table)
        self.base_table = base_table
        self.permutation_table = permutation_table
        self.split_names: list[str] = native.split_names or []
        self.split_dict: dict[str, int] = {n: i for i, n in enumerate(self.split_names)}

    def get_by_name(self, name: str) -> Permutation:
        """The split named ``name``; ValueError if there is none."""
        index = self.split_dict.get(name)
        if index is None:
            raise InvalidError(f"No split named `{name}` found")
        return self.get_by_index(index)

    def get_by_index(self, index: int) -> Permutation:
        """Split ``index`` (ValueError "No rows found ..." if it has no rows)."""
        return Permutation.from_tables(self.base_table, self.permutation_table, index)

    def __getitem__(self, key: str | int) -> Permutation:
        if isinstance(key, str):
            return self.get_by_name(key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return self.get_by_index(int(key))
        raise RiffledbTypeError(f"Invalid split name or index: {key}")

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
    repeat, pinned versions, connection factory) plus the native reader, which is
    immutable and survives ``fork`` (DESIGN.md decision 9): a forked DataLoader worker
    reads through the parent's reader. A permutation pickles without native handles
    (spawn/forkserver workers; see :meth:`__getstate__`) and reopens on first use.
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
        _require(base_table, "base_table")
        _require(selection, "selection")
        self.base_table = base_table
        self._permutation_table = permutation_table
        # The native permutation table; for an unpickled permutation, made from
        # `_pending` (the pickled split) on first use.
        self._native_table = None
        self._pending: SplitData | None = None
        self._identity = permutation_table is None
        self.connection_factory: Callable[[str], Table] | None = None
        self.split = split
        self.selection = dict(selection)
        self.batch_size = batch_size
        self.transform_fn = transform_fn
        self.offset = offset
        self.limit = limit
        self.repeat_times = repeat
        self.binary_views = False
        self.base_version = (
            base_version if base_version is not None else base_table.version
        )
        self.permutation_version = (
            permutation_version
            if permutation_version is not None or permutation_table is None
            else permutation_table.version
        )
        self._reader = None  # the native reader of the view, made on first use
        self._selection_cache = None  # (bound selection, output schema, names)
        release_at_exit(self, _release_native)

    @property
    def permutation_table(self) -> Table | None:
        """The permutation table (None for an identity permutation).

        After unpickling it is a ``memory://`` table holding only this permutation's split
        (at its original index, with the original ``split_names``), made on first use.
        """
        if self._permutation_table is None and not self._identity:
            table = permutation_table_from_native(self._permutation())
            self._permutation_table = table
            self.permutation_version = table.version
        return self._permutation_table

    @permutation_table.setter
    def permutation_table(self, table: Table | None) -> None:
        self._permutation_table = table
        self._identity = table is None
        self._native_table = self._pending = None
        self.permutation_version = None if table is None else table.version
        self._reader = None

    # -- native state --------------------------------------------------------------------
    def _permutation(self):
        """The native permutation table (None for identity)."""
        native = self._native_table
        if native is not None or self._identity:
            return native
        if self._pending is not None:
            native = self._pending.open(self.base_table, self.base_version, self.split)
        else:
            native = _open_permutation_table(
                self._permutation_table, self.permutation_version
            )
        # `_pending` stays: it re-pickles without I/O, and reopens after a release.
        self._native_table = native
        return native

    def _view(self):
        """The native reader of this permutation's view (made once; shared by copies)."""
        reader = self._reader
        if reader is None:
            base = base_source(self.base_table, self.base_version)
            native = self._permutation()
            # An identity reader reads "split 0" (of the whole table).
            split = 0 if native is None else self.split
            reader = _riffledb.PermutationReader.open(base, native, split)
            if self.offset is not None or self.limit is not None:
                reader = reader.with_offset_limit(self.offset, self.limit)
            if self.repeat_times != 1:
                reader = reader.with_repeat(self.repeat_times)
            self._reader = reader
        return reader

    def _selection(self):
        """(bound selection, output schema, output names), bound once per selection."""
        cache = self._selection_cache
        if cache is None:
            bound = self._view().bind(list(self.selection.items()), self.binary_views)
            schema = pa.Schema._import_from_c_capsule(bound.schema())
            cache = self._selection_cache = (bound, schema, schema.names)
        return cache

    def __copy__(self) -> Permutation:
        # Not through __getstate__ (that is for pickling). The copy shares the tables and
        # the immutable native reader.
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.selection = dict(self.selection)
        release_at_exit(other, _release_native)
        return other

    def __deepcopy__(self, memo: dict[int, Any]) -> Permutation:
        # A permutation is immutable: a deep copy is a copy sharing its tables.
        return self.__copy__()

    def _copy(self, **changes: Any) -> Permutation:
        other = self.__copy__()
        for key, value in changes.items():
            setattr(other, key, value)
        if "selection" in changes or "binary_views" in changes:
            other._selection_cache = None
        return other

    # -- pickling ------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The pickle state: plain values, never a native handle (see
        :mod:`riffledb.permutation_state` for the layout and what a split pickles as).

        Raises:
            pickle.PicklingError: the transform or the connection factory is a lambda
                or a nested function.
        """
        return PermutationState.from_permutation(
            self, self._split_data, self._split_reader
        ).to_dict()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restores without I/O: the tables reopen, and the reader is built, on first
        use (in this process).

        Raises:
            ValueError, TypeError: the state is not one this riffledb writes (naming the
                key at fault).
        """
        checked = PermutationState.from_dict(state)
        self.base_table = checked.open_base_table()
        self.connection_factory = checked.connection_factory
        self._permutation_table = None
        self._native_table = None
        self._pending = checked.permutation_data
        self._identity = checked.permutation_data is None
        self.permutation_version = None
        self.split = checked.split
        self.selection = dict(checked.selection)
        self.batch_size = checked.batch_size
        self.transform_fn = checked.transform_fn
        self.offset = checked.offset
        self.limit = checked.limit
        self.repeat_times = checked.repeat
        self.binary_views = checked.binary_views
        self.base_version = checked.base_version
        self._reader = None
        self._selection_cache = None
        release_at_exit(self, _release_native)

    def _split_data(self) -> SplitData | None:
        """The whole split (before skip/take) as pickled; None for an identity."""
        if self._identity:
            return None
        if self._pending is not None:
            return self._pending  # as unpickled: no I/O, and the same rows
        return SplitData.capture(
            self._permutation(),
            self.split,
            self.base_table,
            self.base_version,
            self._split_reader,
        )

    def _split_reader(self):
        """A native reader of the whole split (no skip, take or repeat)."""
        view = self._view()
        base = view.base if view.base is not None else view.source
        return _riffledb.PermutationReader.open(base, view.permutation, view.split)

    def with_connection_factory(self, factory: Callable[[str], Table]) -> Permutation:
        """Reopens the base table in a worker with ``factory(base_table_name)`` instead
        of pickling the table (its path or, for ``memory://``, its rows).

        ``factory`` must pickle: a module-level function, a ``functools.partial`` of one,
        or a picklable callable object. The worker checks the returned table out at the
        permutation's pinned version.
        """
        _require(factory, "connection_factory")
        if not callable(factory):
            raise RiffledbTypeError(
                f"connection_factory must be callable, got {type(factory).__name__}"
            )
        return self._copy(connection_factory=factory)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def identity(cls, table: Table) -> Permutation:
        """All rows of ``table`` in storage order, as of its current version.

        A remote table (``db://``) is read by ``_rowoffset`` takes, through the same
        native reader as a local one.

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
        _require(base_table, "base_table")
        check_base(base_table, "base_table")
        native = None
        if permutation_table is not None:
            native = _open_permutation_table(permutation_table)
        if split is not None and (
            isinstance(split, bool) or not isinstance(split, (str, int, np.integer))
        ):
            raise RiffledbTypeError(f"Invalid split: {split}")
        if split is None:
            index = 0
        else:
            if permutation_table is None:
                raise InvalidError(
                    f"Cannot create a permutation on split `{split}` because no "
                    "permutation table is provided"
                )
            if isinstance(split, str):
                names = native.split_names
                if names is None:
                    raise InvalidError(
                        f"Cannot create a permutation on split `{split}` because no "
                        "split names are defined in the permutation table"
                    )
                if split not in names:
                    raise InvalidError(
                        f"Cannot create a permutation on split `{split}` because split "
                        f"`{split}` is not defined in the permutation table"
                    )
                index = names.index(split)
            elif isinstance(split, (int, np.integer)) and not isinstance(split, bool):
                index = int(split)
                if index < 0:
                    raise InvalidError(f"Split index must not be negative, got {index}")
            else:
                raise RiffledbTypeError(f"Invalid split: {split}")
        return cls._of_split(base_table, permutation_table, native, index)

    @classmethod
    def _of_split(
        cls,
        base_table: Table,
        permutation_table: Table | None,
        native: Any,
        index: int,
        base_version: int | None = None,
    ) -> Permutation:
        """Split ``index`` of a native permutation table (None: identity) over
        ``base_table`` at ``base_version`` (None: its current version), every column
        selected; the arguments are already checked."""
        permutation = cls(
            base_table,
            permutation_table,
            index,
            {},
            DEFAULT_BATCH_SIZE,
            Transforms.arrow2python,
            base_version=base_version,
        )
        permutation._identity = native is None
        permutation._native_table = native
        reader = permutation._view()
        bound = reader.bind(None)
        schema = pa.Schema._import_from_c_capsule(bound.schema())
        permutation.selection = {name: name for name in schema.names}
        permutation._selection_cache = (bound, schema, schema.names)
        return permutation

    # -- configuration (each returns a new permutation) ----------------------------------
    def with_batch_size(self, batch_size: int) -> Permutation:
        """The batch size of ``__iter__`` (default :data:`DEFAULT_BATCH_SIZE`)."""
        batch_size = _check_count(batch_size, "batch_size")
        if batch_size < 1:
            raise InvalidError(f"batch_size must be at least 1, got {batch_size}")
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
        _require(format, "format")
        return self.with_transform(transform_of(format))

    def with_transform(self, transform: Callable[[pa.RecordBatch], Any]) -> Permutation:
        """Sets a function applied to each ``pa.RecordBatch`` read; its result is
        what reads return. It runs in the caller's thread. Use a module-level function
        so that the permutation pickles (DataLoader workers)."""
        _require(transform, "transform")
        if not callable(transform):
            raise RiffledbTypeError(
                f"transform must be callable, got {type(transform).__name__}"
            )
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
        reader = self._view().with_offset_limit(skip, self.limit)
        return self._copy(offset=skip, _reader=reader)

    def with_take(self, limit: int) -> Permutation:
        """Limits the permutation to ``limit`` rows after the skip (see
        :meth:`with_skip`).

        ``with_take(0)`` is an empty permutation: iteration yields nothing.

        Raises:
            ValueError: "Limit is greater than the number of rows in the permutation
                table", "Offset + limit is greater than ...", or a negative limit.
        """
        limit = _check_count(limit, "limit")
        reader = self._view().with_offset_limit(self.offset, limit)
        return self._copy(limit=limit, _reader=reader)

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
            raise InvalidError(f"times must be at least 1, got {times}")
        reader = self._view().with_repeat(times)
        return self._copy(repeat_times=times, _reader=reader)

    def with_binary_views(self, enabled: bool = True) -> Permutation:
        """Reads ``binary`` and ``string`` columns as ``binary_view`` / ``string_view``
        columns whose data buffers are the table's own (for a directory table, the
        memory-mapped files): a take of large values (images, documents) copies 16 bytes
        a value instead of the value. The returned arrays keep the files mapped.

        pyarrow, pandas, polars and numpy conversions accept view columns; most
        ``pyarrow.compute`` kernels do not yet (cast to the plain type first). Expressions
        in the selection see the view columns.
        """
        if not isinstance(enabled, bool):
            raise RiffledbTypeError(
                f"enabled must be a bool, got {type(enabled).__name__}"
            )
        return self._copy(binary_views=enabled)

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
        _require(columns, "columns")
        if isinstance(columns, str):
            columns = [columns]
        drop = set(columns)
        selection = {k: v for k, v in self.selection.items() if k not in drop}
        if not selection:
            raise InvalidError("Cannot remove all columns")
        return self._copy(selection=selection)

    def rename_column(self, old_name: str, new_name: str) -> Permutation:
        """Renames an output column, keeping its position.

        Raises:
            ValueError: "Cannot rename column `old` because it does not exist", "Cannot
                rename column `old` to `new` because a column with that name already
                exists", or renaming another column to ``_rowid``.
        """
        _require(old_name, "old_name")
        _require(new_name, "new_name")
        if old_name not in self.selection:
            raise InvalidError(
                f"Cannot rename column `{old_name}` because it does not exist"
            )
        if new_name in self.selection:
            raise InvalidError(
                f"Cannot rename column `{old_name}` to `{new_name}` because a column "
                "with that name already exists"
            )
        if new_name == _ROWID:
            raise InvalidError(
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
        _require(column_map, "column_map")
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
        _require(columns, "columns")
        if isinstance(columns, str):
            columns = [columns]
        if len(columns) == 0:
            raise InvalidError("Must select at least one column")
        selection: dict[str, str] = {}
        for name in columns:
            value = self.selection.get(name)
            if value is None:
                if name != _ROWID:
                    raise InvalidError(
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
        base_schema = pa.Schema._import_from_c_capsule(self._view().source.schema())
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
                raise InvalidError(
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
        return self._selection()[1]

    @property
    def num_rows(self) -> int:
        """Rows in the permutation (after skip, take and repeat). No I/O."""
        return self._view().num_rows

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
        kind = "identity" if self._identity else f"split={self.split}"
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
            raise InvalidError(
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
    def _convert(self, batch: Any, schema: pa.Schema, names: list[str]) -> Any:
        """A native batch through the transform (dicts of columns built straight from
        NumPy arrays when the transform is one of the dict formats)."""
        transform = self.transform_fn
        build = column_builder(transform)
        if build is not None:
            arrays = batch.numpy_columns()
            if arrays is not None:
                return build(names, arrays)
        return transform(batch.to_arrow(schema))

    def take_offsets(self, offsets: Sequence[int]) -> Any:
        """The rows at these offsets, in this order (duplicates allowed), through the
        transform. Offsets are positions in this permutation (after skip/take/repeat), and
        the same contract holds for identity permutations.

        Raises:
            IndexError: an offset outside ``[0, len(self))``, naming it and its position.
            TypeError: an offset that is not an integer, naming its position.
        """
        reader = self._reader or self._view()
        bound, schema, names = self._selection_cache or self._selection()
        offsets = offsets_for_take(offsets)
        try:
            batch = reader.take(offsets, bound)
        except TypeError:
            # nanobind refused the list: say which offset, in riffledb's words.
            error = bad_index(offsets, "offsets")
            if error is not None:
                raise error from None
            if type(offsets) is not list:
                raise
            # Valid, but not all Python ints (NumPy integers): the array overload.
            batch = reader.take(index_array(offsets, "offsets"), bound)
        return self._convert(batch, schema, names)

    def __getitem__(self, index: int) -> Any:
        """Row ``index`` as a one-row batch through the transform (for ``"python"``,
        a list holding one dict)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise RiffledbTypeError(
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

    def iter(
        self,
        batch_size: int,
        skip_last_batch: bool = False,
        *,
        prefetch: int = 0,
        prefetch_bytes: int = DEFAULT_PREFETCH_BYTES,
        prefetch_threads: int = DEFAULT_PREFETCH_THREADS,
    ) -> Iterator[Any]:
        """Batches of exactly ``batch_size`` rows, in permutation order (across
        repetitions), through the transform; only the last batch may be shorter, and
        ``skip_last_batch`` drops it.

        Nothing is read until the first ``next``. Without ``prefetch`` each batch is read
        when asked for (a generator). With ``prefetch=N`` (riffledb's), native threads
        read up to N batches (and ``prefetch_bytes``) ahead of the loop, without the GIL,
        ``prefetch_threads`` at once, so reads overlap the training step; the iterator
        then has ``stats`` (seconds of I/O, waiting, conversion and transform) and
        ``close()``. See docs/dataloader.md.
        """
        batch_size = _check_count(batch_size, "batch_size")
        if batch_size < 1:
            raise InvalidError(f"batch_size must be at least 1, got {batch_size}")
        check_prefetch(prefetch, prefetch_bytes, prefetch_threads)
        if prefetch:
            return self._iter_prefetched(
                batch_size,
                bool(skip_last_batch),
                prefetch,
                prefetch_bytes,
                prefetch_threads,
            )
        return self._iter(batch_size, bool(skip_last_batch))

    def _iter_prefetched(
        self,
        batch_size: int,
        drop_last: bool,
        prefetch: int,
        max_bytes: int,
        threads: int,
    ) -> PrefetchingIterator:
        # A remote table's reads are coalesced: each request asks for the rows of
        # `group` consecutive batches (about REMOTE_READ_ROWS), and the iterator hands
        # them out batch by batch; a round trip costs more than the rows it carries.
        # Requests read ahead carry at most `prefetch` batches in all, and there are
        # as many as `threads` of them when `prefetch` allows, so that requests overlap.
        group = 1
        if is_remote(self.base_table):
            group = max(1, min(REMOTE_READ_ROWS // batch_size, prefetch // threads))

        def reads():
            reader = self._view()
            bound = self._selection()[0]
            end = min(
                reader.num_batches(batch_size, drop_last) * batch_size, reader.num_rows
            )
            step = batch_size * group
            return [
                (reader, bound, start, min(step, end - start), start // batch_size)
                for start in range(0, end, step)
            ]

        def convert(batch):
            _, schema, names = self._selection_cache or self._selection()
            transform = self.transform_fn
            build = column_builder(transform)
            if build is not None:
                arrays = batch.numpy_columns()
                if arrays is not None:
                    out = build(names, arrays)  # the format itself: conversion
                    return out, time.perf_counter()
            table = batch.to_arrow(schema)
            converted = time.perf_counter()
            return transform(table), converted

        return PrefetchingIterator(
            reads,
            convert,
            prefetch // group,
            max_bytes,
            threads,
            split_rows=batch_size if group > 1 else 0,
        )

    def _iter(self, batch_size: int, drop_last: bool) -> Iterator[Any]:
        reader = self._view()
        bound, schema, names = self._selection()
        for index in range(reader.num_batches(batch_size, drop_last)):
            batch = reader.read_batch(index, batch_size, drop_last, bound)
            yield self._convert(batch, schema, names)

    # -- introspection -------------------------------------------------------------------
    def row_ids(self) -> pa.UInt64Array:
        """The base ``_rowid`` of each row, in permutation order (after skip/take; one
        repetition)."""
        batch = self._view().row_ids()
        return pa.RecordBatch._import_from_c_capsule(*batch.__arrow_c_array__()).column(0)
