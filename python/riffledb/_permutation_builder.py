"""The permutation builder (LanceDB's ``permutation_builder`` surface, spec §1.1).

Re-exported by :mod:`riffledb.permutation`. The work happens in C++
(``cpp/src/riffledb/permutation/builder.h``, where the split, hash and shuffle algorithms
are documented; a seed not given is drawn there when the step is configured, and the
recipe is recorded there); this module checks arguments the way LanceDB's Python layer
does and wraps the result as a table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from . import _riffledb
from ._base_table import is_remote
from ._lifetime import release_at_exit
from .errors import InternalError, InvalidError, RiffledbTypeError
from .remote.errors import HttpError, server_words
from .remote.table import filter_text
from .table import Table, reference

__all__ = ["PermutationBuilder", "permutation_builder"]

_U64_MAX = 2**64 - 1


def _u64(value: Any, name: str) -> Any:
    """Checks a u64 argument like pyo3 does: negative or too large -> OverflowError."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise OverflowError(
                f"can't convert negative int to unsigned ({name}={value})"
            )
        if value > _U64_MAX:
            raise OverflowError(f"int too big to convert ({name}={value})")
    return value


def _u64_list(values: Any, name: str) -> Any:
    if isinstance(values, (list, tuple)):
        for position, value in enumerate(values):
            if isinstance(value, bool) or not hasattr(value, "__index__"):
                raise RiffledbTypeError(
                    f"{name} must be integers, got {type(value).__name__} at position "
                    f"{position}"
                )
            _u64(value, name)
        return list(values)
    return values


def _names(split_names: Any) -> list[str] | None:
    return None if split_names is None else list(split_names)


def _check_sizes(ratios: Any, counts: Any, fixed: Any) -> None:
    if sum(x is not None for x in (ratios, counts, fixed)) != 1:
        raise ValueError("Exactly one of 'ratios', 'counts', or 'fixed' must be provided")


def _snapshot(table: Any, version: int | None = None):
    """The native snapshot of a riffledb ``Table`` at ``version`` (None: its current
    one), or LanceDB's RuntimeError."""
    if not isinstance(table, Table):
        raise RuntimeError(
            "Provided table does not appear to be a Table or RemoteTable instance"
        )
    return reference(table).snapshot(version)


#: Names of the columns of the local stand-in of a remote table (see _RemoteBuilder).
_SPLIT = "__riffledb_split"
_POSITION = "__riffledb_position"


class _RemoteBuilder:
    r"""The native builder's surface over a remote table: configuration is recorded,
    and ``execute()`` builds the permutation table locally, with the native builder.

    ``execute()`` sends one scan (spec §2.9): ``_rowid`` plus the hash columns or the
    calculated split, the filter applied by the server, at the pinned version. The rows
    are sorted by ``_rowid`` here (a server's scan order is not promised), which is the
    storage order of a local table, and become a ``memory://`` stand-in table; the native
    builder runs over it (split, shuffle, grouping: the same code and seeds as for a local
    table, so the same recipe over the same rows gives the same permutation), and its row
    ids (positions in the stand-in) are mapped back to the remote ``_rowid``\ s.

    The scan is one request, not pages: the protocol has no ordered scan, so pages by
    offset would be consistent only on a server whose scan order never changes (LanceDB
    Cloud's distributed scans promise nothing). Its answer is 8 bytes a row, plus the
    split's columns. A 400 answer (a bad filter or split expression) is an InvalidError
    in the server's words, as the local builder's.
    """

    def __init__(self, table: Any, version: int | None):
        self._table = table
        self._version = table.version if version is None else version
        self._filter: str | None = None
        self._split: tuple[str, dict[str, Any]] | None = None
        self._shuffle: dict[str, Any] | None = None

    def filter(self, filter: str) -> None:
        self._filter = filter

    def split_random(self, **kwargs: Any) -> None:
        self._split = ("split_random", kwargs)

    def split_sequential(self, **kwargs: Any) -> None:
        self._split = ("split_sequential", kwargs)

    def split_hash(self, columns: list[str], split_weights: Any, **kwargs: Any) -> None:
        self._split = (
            "split_hash",
            dict(columns=columns, split_weights=split_weights, **kwargs),
        )

    def split_calculated(self, calculation: str, split_names: Any = None) -> None:
        self._split = (
            "split_calculated",
            dict(calculation=calculation, split_names=split_names),
        )

    def shuffle(self, **kwargs: Any) -> None:
        self._shuffle = kwargs

    def _scan(self) -> pa.Table:
        """The scan of the build: ``_rowid`` and what the split reads."""
        from .remote.table import NO_LIMIT

        columns = {"_rowid": "_rowid"}
        kind, args = self._split if self._split is not None else (None, {})
        if kind == "split_hash":
            for name in args["columns"]:
                if not isinstance(name, str):
                    raise RiffledbTypeError(
                        f"columns must be strings, got {type(name).__name__}"
                    )
                columns[name] = name
        elif kind == "split_calculated":
            columns[_SPLIT] = args["calculation"]
        body: dict[str, Any] = {
            "version": self._version,
            "prefilter": True,
            "k": NO_LIMIT,
            # A list of names as LanceDB's builder sends (``["_rowid"]``: how servers
            # and LanceDB's mocks know the build scan); an object only for a calculation.
            "columns": list(columns)
            if all(k == v for k, v in columns.items())
            else columns,
            "vector": [],
        }
        if self._filter is not None:
            body["filter"] = filter_text(self._filter)
        try:
            return self._table._query(body)
        except HttpError as error:
            # A 400 here is the filter or the split's expression, as the local builder's
            # InvalidError: the server's own words (riffledb serve's name the column).
            if error.status_code != 400:
                raise
            raise InvalidError(server_words(error) or str(error)) from error

    def execute(self) -> Any:
        from . import connect

        rows = self._scan()
        ids = rows.column("_rowid").to_numpy().astype(np.uint64, copy=False)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(ids) > 1 and np.any(ids[1:] == ids[:-1]):
            raise InternalError(
                f"The server's scan of table '{self._table.name}' returned a row id twice"
            )
        taken = rows.drop_columns(["_rowid"])
        stand_in = pa.table({_POSITION: pa.array(np.arange(len(ids), dtype=np.uint64))})
        for name in taken.column_names:
            stand_in = stand_in.append_column(
                taken.schema.field(name), taken.column(name).take(pa.array(order))
            )
        local = connect("memory://").create_table("remote", stand_in)
        native = _riffledb.PermutationBuilder(reference(local).snapshot())
        if self._split is not None:
            kind, args = self._split
            if kind == "split_calculated":
                args = dict(args, calculation=f"`{_SPLIT}`")
            getattr(native, kind)(**args)
        if self._shuffle is not None:
            native.shuffle(**self._shuffle)
        built = pa.table(native.execute())
        # Row ids of the stand-in -> its positions -> the remote row ids.
        positions = local.take_row_ids(built.column("row_id").to_numpy()).select(
            [_POSITION]
        )
        remote_ids = ids[positions.to_arrow().column(0).to_numpy()]
        metadata = {}
        names = (built.schema.metadata or {}).get(
            _riffledb.PERMUTATION_METADATA_KEYS["split_names"].encode()
        )
        if names is not None:
            metadata[_riffledb.PERMUTATION_METADATA_KEYS["split_names"]] = names
        table = pa.table(
            {"row_id": pa.array(remote_ids, pa.uint64()), "split_id": built["split_id"]},
            metadata=metadata or None,
        )
        return _riffledb.PermutationTable.from_arrow(table)


class PermutationBuilder:
    """Builds a permutation table (row ids grouped by split) over a table.

    Fluent: every configuration method returns ``self``, and calling a kind of method
    again replaces the earlier call (a second ``split_*`` replaces the strategy and the
    names; a second ``filter`` or ``shuffle`` replaces the first). Defaults: no filter,
    one split (id 0) with every row in storage order, no shuffle. The pipeline is
    filter -> split -> shuffle -> stable grouping by split.

    The builder reads the version of the table current when it was created. It is
    consumed by :meth:`execute`: any later call raises ``RuntimeError``. Not
    thread-safe.

    Example:
        >>> perm = (
        ...     permutation_builder(table)
        ...     .split_random(ratios=[0.8, 0.2], seed=42, split_names=["train", "test"])
        ...     .shuffle(seed=7)
        ...     .execute()
        ... )
    """

    def __init__(self, table: Any, *, version: int | None = None) -> None:
        """Starts a builder over ``table``.

        Args:
            table: A riffledb ``Table``, or a remote table (``db://``): its row ids are
                scanned once (filtered by the server) and the permutation table is
                built here, in ``memory://``.
            version: The table version to read (riffledb's); None reads the version the
                handle is on.

        Raises:
            RuntimeError: ``table`` is not a table.
            ValueError: ``version`` cannot be read.
        """
        if is_remote(table):
            self._native: Any = _RemoteBuilder(table, version)
        else:
            self._native = _riffledb.PermutationBuilder(_snapshot(table, version))
        release_at_exit(self, _release_native)

    def _builder(self) -> _riffledb.PermutationBuilder:
        if self._native is None:
            raise RuntimeError("Builder already consumed")
        return self._native

    def filter(self, filter: str) -> PermutationBuilder:
        """Keeps only rows where the SQL boolean expression ``filter`` is true.

        Split sizes are computed from the filtered row count. Errors in the expression are
        reported by :meth:`execute`.
        """
        if not isinstance(filter, str):
            raise RiffledbTypeError(
                f"filter must be a str (a SQL expression), got {type(filter).__name__}"
            )
        self._builder().filter(filter)
        return self

    def split_random(
        self,
        *,
        ratios: list[float] | None = None,
        counts: list[int] | None = None,
        fixed: int | None = None,
        seed: int | None = None,
        clump_size: int | None = None,
        split_names: list[str] | None = None,
    ) -> PermutationBuilder:
        """Splits the rows at random: a seeded shuffle of all (filtered) rows, then the
        first ``sizes[0]`` rows go to split 0, the next to split 1, and so on.

        Args:
            ratios: Fraction of the rows for each split (each in [0, 1], sum <= 1).
            counts: Number of rows for each split (each >= 1, sum <= row count).
            fixed: Number of equal splits of ``row_count // fixed`` rows each.
            seed: Seed of the shuffle; None draws one from the OS (not reproducible).
            clump_size: Rows move in clumps of this many consecutive rows (default 1).
            split_names: One distinct name per split, stored in the table's metadata.

        Raises:
            ValueError: not exactly one of ``ratios``, ``counts``, ``fixed``. Other size
                errors are raised by :meth:`execute`.
            OverflowError: a negative integer.
        """
        _check_sizes(ratios, counts, fixed)
        args = dict(
            ratios=None if ratios is None else list(ratios),
            counts=_u64_list(counts, "counts"),
            fixed=_u64(fixed, "fixed"),
            seed=_u64(seed, "seed"),
            clump_size=_u64(clump_size, "clump_size"),
            split_names=_names(split_names),
        )
        self._builder().split_random(**args)
        return self

    def split_hash(
        self,
        columns: list[str],
        split_weights: list[int],
        *,
        discard_weight: int | None = None,
        split_names: list[str] | None = None,
    ) -> PermutationBuilder:
        """Splits the rows by a hash of ``columns``: rows with equal values always land in
        the same split, whatever else is in the table.

        The hash is xxHash64 of a canonical encoding of the values (documented in
        ``builder.h``); ``hash mod (sum(split_weights) + discard_weight)`` picks the split
        by cumulative weight, the top ``discard_weight`` residues drop the row.

        Args:
            columns: Columns to hash (at least one).
            split_weights: Relative weight of each split (each >= 1).
            discard_weight: Relative weight of the rows left out (default 0: none).
            split_names: One distinct name per split.

        Raises:
            OverflowError: a negative integer.
        """
        args = dict(
            columns=list(columns),
            split_weights=_u64_list(split_weights, "split_weights"),
            discard_weight=_u64(discard_weight, "discard_weight"),
            split_names=_names(split_names),
        )
        self._builder().split_hash(**args)
        return self

    def split_sequential(
        self,
        *,
        ratios: list[float] | None = None,
        counts: list[int] | None = None,
        fixed: int | None = None,
        split_names: list[str] | None = None,
    ) -> PermutationBuilder:
        """Splits the rows in storage order: the first ``sizes[0]`` rows go to split 0,
        the next to split 1, and so on. Sizes as in :meth:`split_random`.

        Raises:
            ValueError: not exactly one of ``ratios``, ``counts``, ``fixed``.
            OverflowError: a negative integer.
        """
        _check_sizes(ratios, counts, fixed)
        args = dict(
            ratios=None if ratios is None else list(ratios),
            counts=_u64_list(counts, "counts"),
            fixed=_u64(fixed, "fixed"),
            split_names=_names(split_names),
        )
        self._builder().split_sequential(**args)
        return self

    def split_calculated(
        self, calculation: str, split_names: list[str] | None = None
    ) -> PermutationBuilder:
        """Gives each row the split id computed by the SQL expression ``calculation``.

        Integer and boolean results are used as they are, floats when integral; null,
        negative or fractional values make :meth:`execute` raise ``ValueError`` naming the
        row. With ``split_names``, every split id must be below ``len(split_names)``.
        """
        args = dict(calculation=calculation, split_names=_names(split_names))
        self._builder().split_calculated(**args)
        return self

    def shuffle(
        self, *, seed: int | None = None, clump_size: int | None = None
    ) -> PermutationBuilder:
        """Shuffles the rows within each split.

        Args:
            seed: Seed of the shuffle; None draws one from the OS (not reproducible).
            clump_size: Consecutive rows of the split stream move together in clumps of
                this many (default 1; 0 makes :meth:`execute` raise ``ValueError``).

        Raises:
            OverflowError: a negative integer.
        """
        args = dict(seed=_u64(seed, "seed"), clump_size=_u64(clump_size, "clump_size"))
        self._builder().shuffle(**args)
        return self

    def execute(self) -> Any:
        """Builds the permutation table and consumes the builder.

        Returns:
            A riffledb ``Table`` named ``"permutation"`` in a fresh ``memory://``
            database, with columns ``row_id`` (uint64, the base table's ``_rowid``) and
            ``split_id`` (uint64), grouped by split, and the ``split_names`` metadata
            (a JSON array) when names were given. Its schema metadata also records the
            base version, a digest of each split and, for a base table that can be
            reopened by path, the builder's recipe (every seed explicit), which lets a
            pickled permutation travel as a few hundred bytes.

        Raises:
            ValueError: invalid sizes, weights, names, clump size or calculated split
                values, or a bad filter or expression (LanceDB's messages where it has
                them).
            RuntimeError: the builder was already consumed.
        """
        from .permutation import permutation_table_from_native

        native = self._builder()
        self._native = None
        return permutation_table_from_native(native.execute())


def _release_native(builder: PermutationBuilder) -> None:
    """Drops the native builder at interpreter exit (see :mod:`riffledb._lifetime`)."""
    builder._native = None


def permutation_builder(table: Any) -> PermutationBuilder:
    """A :class:`PermutationBuilder` over ``table`` (same as the constructor)."""
    return PermutationBuilder(table)
