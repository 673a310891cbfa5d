"""The permutation builder (LanceDB's ``permutation_builder`` surface, spec §1.1).

Re-exported by :mod:`riffledb.permutation`. The work happens in C++
(``cpp/src/riffledb/permutation/builder.h``, where the split, hash and shuffle algorithms
are documented); this module checks arguments the way LanceDB's Python layer does and
wraps the result as a table.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pyarrow as pa

from . import _riffledb

__all__ = ["PermutationBuilder", "permutation_builder"]

_U64_MAX = 2**64 - 1

# Schema metadata key of the recipe execute() records: the builder calls, with every
# seed made explicit, that rebuild the same table from the same base table version (the
# build is deterministic: DESIGN.md decision 8). A pickled permutation travels as its
# recipe when the table still matches the build's digests (see riffledb.permutation).
RECIPE_METADATA_KEY = b"riffledb:recipe"
BASE_VERSION_METADATA_KEY = b"riffledb:base_version"
SPLIT_DIGESTS_METADATA_KEY = b"riffledb:split_digests"
_RECIPE_FORMAT = 1


def _plain(value: Any) -> Any:
    """``value`` as JSON-able ints, floats, strings and lists (numpy scalars and tuples
    included), or raises TypeError."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "__index__"):
        return int(value.__index__())
    if isinstance(value, float) or hasattr(value, "__float__"):
        return float(value)
    raise TypeError(f"not a plain value: {value!r}")


def _draw_seed(seed: Any) -> Any:
    """The seed to build with: ``seed`` as given, or a fresh one from the OS (what the
    native builder would draw) so that the recipe can rebuild the same table."""
    return secrets.randbits(64) if seed is None else seed


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
        for value in values:
            _u64(value, name)
        return list(values)
    return values


def _names(split_names: Any) -> list[str] | None:
    return None if split_names is None else list(split_names)


def _check_sizes(ratios: Any, counts: Any, fixed: Any) -> None:
    if sum(x is not None for x in (ratios, counts, fixed)) != 1:
        raise ValueError("Exactly one of 'ratios', 'counts', or 'fixed' must be provided")


def _native_table(table: Any) -> _riffledb.Table:
    """The native table behind a riffledb ``Table`` (or a wrapper holding one in
    ``_table``), or LanceDB's RuntimeError."""
    inner = getattr(table, "_inner", None)
    if not isinstance(inner, _riffledb.Table):
        inner = getattr(getattr(table, "_table", None), "_inner", None)
    if not isinstance(inner, _riffledb.Table):
        raise RuntimeError(
            "Provided table does not appear to be a Table or RemoteTable instance"
        )
    return inner


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

    def __init__(self, table: Any) -> None:
        """Starts a builder over ``table``.

        Args:
            table: A riffledb ``Table`` (an object exposing the native table as
                ``_inner`` or ``_table._inner``).

        Raises:
            RuntimeError: ``table`` is not a table.
        """
        self._native: _riffledb.PermutationBuilder | None = _riffledb.PermutationBuilder(
            _native_table(table).snapshot()
        )
        # The calls that define the table, by kind (later calls replace earlier ones).
        self._recipe: dict[str, Any] = {}
        self._base_identity = table_identity(table)

    @classmethod
    def _from_snapshot(cls, snapshot: Any) -> PermutationBuilder:
        builder = cls.__new__(cls)
        builder._native = _riffledb.PermutationBuilder(snapshot)
        builder._recipe = {}
        builder._base_identity = None
        return builder

    def _record(self, step: str, **args: Any) -> None:
        self._recipe[step] = args

    def _builder(self) -> _riffledb.PermutationBuilder:
        if self._native is None:
            raise RuntimeError("Builder already consumed")
        return self._native

    def filter(self, filter: str) -> PermutationBuilder:
        """Keeps only rows where the SQL boolean expression ``filter`` is true.

        Split sizes are computed from the filtered row count. Errors in the expression are
        reported by :meth:`execute`.
        """
        self._builder().filter(filter)
        self._record("filter", filter=filter)
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
            seed=_draw_seed(_u64(seed, "seed")),
            clump_size=_u64(clump_size, "clump_size"),
            split_names=_names(split_names),
        )
        self._builder().split_random(**args)
        self._record("split", kind="random", **args)
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
        self._record("split", kind="hash", **args)
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
        self._record("split", kind="sequential", **args)
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
        self._record("split", kind="calculated", **args)
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
        args = dict(
            seed=_draw_seed(_u64(seed, "seed")), clump_size=_u64(clump_size, "clump_size")
        )
        self._builder().shuffle(**args)
        self._record("shuffle", **args)
        return self

    def execute(self) -> Any:
        """Builds the permutation table and consumes the builder.

        Returns:
            A riffledb ``Table`` named ``"permutation"`` in a fresh ``memory://``
            database, with columns ``row_id`` (uint64, the base table's ``_rowid``) and
            ``split_id`` (uint64), grouped by split, and the ``split_names`` metadata
            (a JSON array) when names were given.

        Raises:
            ValueError: invalid sizes, weights, names, clump size or calculated split
                values, or a bad filter or expression (LanceDB's messages where it has
                them).
            RuntimeError: the builder was already consumed.
        """
        from . import connect

        return connect("memory://").create_table("permutation", self._execute_arrow())

    def _execute_arrow(self) -> pa.Table:
        """Builds and consumes the builder: the permutation table as Arrow, with the
        recipe in its schema metadata (when every argument is a plain value)."""
        native = self._builder()
        self._native = None
        capsule = native.execute()
        table = pa.RecordBatchReader._import_from_c_capsule(capsule).read_all()
        if self._base_identity is None:
            return table  # a base table that cannot be named again: no recipe
        try:
            recipe = json.dumps(
                {
                    "format": _RECIPE_FORMAT,
                    "base": self._base_identity,
                    **_plain_dict(self._recipe),
                },
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError):
            return table  # an argument that does not round-trip: no recipe
        metadata = dict(table.schema.metadata or {})
        metadata[RECIPE_METADATA_KEY] = recipe.encode()
        return table.replace_schema_metadata(metadata)


def table_identity(table: Any) -> str | None:
    """``"<database uri>/<table name>"`` for a riffledb table in a directory database (the
    table a recipe was built over), else None (``memory://`` tables and other objects)."""
    pickled = getattr(table, "_pickled", None)
    if getattr(table, "_native", None) is None and pickled is not None:
        if pickled.get("kind") == "local":
            return f"{pickled['uri']}/{pickled['name']}"
        return None
    conn = getattr(table, "_conn", None)
    uri = getattr(conn, "uri", None)
    if not isinstance(uri, str) or uri.startswith("memory://"):
        return None
    return f"{uri}/{table.name}"


def _plain_dict(recipe: dict[str, Any]) -> dict[str, Any]:
    return {
        kind: {k: _plain(v) for k, v in args.items()} for kind, args in recipe.items()
    }


def build_from_recipe(snapshot: Any, recipe: str) -> pa.Table:
    """Rebuilds a permutation table over the native ``snapshot`` from the recipe JSON
    that :meth:`PermutationBuilder.execute` recorded.

    Raises:
        ValueError: the recipe is not one this version of riffledb wrote.
    """
    spec = json.loads(recipe)
    if not isinstance(spec, dict) or spec.get("format") != _RECIPE_FORMAT:
        raise ValueError(f"Unsupported permutation recipe: {recipe[:200]!r}")
    builder = PermutationBuilder._from_snapshot(snapshot)
    if "filter" in spec:
        builder.filter(**spec["filter"])
    split = dict(spec.get("split") or {})
    kind = split.pop("kind", None)
    if kind == "random":
        builder.split_random(**split)
    elif kind == "hash":
        builder.split_hash(**split)
    elif kind == "sequential":
        builder.split_sequential(**split)
    elif kind == "calculated":
        builder.split_calculated(**split)
    elif kind is not None:
        raise ValueError(f"Unsupported split kind in permutation recipe: {kind!r}")
    if "shuffle" in spec:
        builder.shuffle(**spec["shuffle"])
    return builder._execute_arrow()


def permutation_builder(table: Any) -> PermutationBuilder:
    """A :class:`PermutationBuilder` over ``table`` (same as the constructor)."""
    return PermutationBuilder(table)
