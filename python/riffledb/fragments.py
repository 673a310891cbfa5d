"""Distributed writes in two steps: workers write fragments, one commit publishes them.

Any engine (Ray, Dask, Spark, ``multiprocessing``) can drive a parallel write::

    # in each worker: write files, commit nothing
    descriptions = table.write_fragments(batch_of_rows)  # list[FragmentDescription]
    # send them to one process (they pickle, or travel as JSON: to_json / from_json)
    # in that process: one atomic commit, all rows or none
    table.commit_fragments(all_descriptions)  # -> the new version

A worker needs only the table, which pickles by reference (its database path and
name), or the database ``uri`` and table name (:func:`write_fragments`). Files written
but never committed are invisible to readers and are removed by
:meth:`Table.cleanup_old_versions` once older than its grace period (7 days). See
``docs/ray.md``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa

from . import _riffledb
from ._args import check_str, describe
from .errors import InvalidError, RiffledbTypeError

__all__ = ["FragmentDescription", "commit_fragments", "write_fragments"]


class FragmentDescription:
    """A fragment file written for a table and not committed yet.

    Made by :meth:`Table.write_fragments` (one per file written), committed by
    :meth:`Table.commit_fragments`. Small and immutable; pickles as its JSON text, and
    :meth:`to_json` / :meth:`from_json` carry it through anything that moves strings.
    A description is checked whenever it is made from text (:meth:`from_json`,
    unpickling), and again against the table when committed.

    Attributes:
        table_name: The table it was written for.
        base_version: The table's newest version when it was written.
        num_rows: Rows in its file (0 for the description of no file that data
            without rows gives).
        files: Its file's path relative to the table directory (empty or one).
    """

    __slots__ = ("_json", "_table", "_base_version", "_files", "_schema")

    def __init__(self, json: str):
        """Use :meth:`from_json`; ``json`` is checked the same way."""
        json = check_str(json, "json")
        table, base_version, schema, files = _riffledb.parse_fragment_description(json)
        self._json = json
        self._table = table
        self._base_version = base_version
        self._schema = schema
        self._files = tuple(files)

    @classmethod
    def from_json(cls, json: str) -> FragmentDescription:
        """A description from its :meth:`to_json` text.

        Raises:
            InvalidError: text that is not a description this riffledb writes (a
                ValueError naming the key at fault, e.g. ``'fragments[0].path'``).
            RiffledbTypeError: ``json`` is not a str.
        """
        return cls(json)

    def to_json(self) -> str:
        """The description as one line of JSON (``docs/format.md``)."""
        return self._json

    @property
    def table_name(self) -> str:
        return self._table

    @property
    def base_version(self) -> int:
        return self._base_version

    @property
    def num_rows(self) -> int:
        return sum(rows for _, rows in self._files)

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self._files)

    @property
    def schema(self) -> pa.Schema:
        """The schema the file was written with."""
        return pa.Schema._import_from_c_capsule(self._schema)

    def __reduce__(self):
        return (FragmentDescription.from_json, (self._json,))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FragmentDescription):
            return NotImplemented
        return self._json == other._json

    def __hash__(self) -> int:
        return hash(self._json)

    def __repr__(self) -> str:
        files = ", ".join(self.files) or "no file"
        return (
            f"FragmentDescription(table={self._table!r}, rows={self.num_rows}, "
            f"files=[{files}])"
        )


def check_descriptions(descriptions: Any) -> list[str]:
    """The JSON texts of an iterable of :class:`FragmentDescription` (TypeError naming
    the position of anything else)."""
    if isinstance(descriptions, (FragmentDescription, str, bytes)) or not isinstance(
        descriptions, Iterable
    ):
        raise RiffledbTypeError(
            "descriptions must be a list of FragmentDescription, got "
            f"{describe(descriptions)}"
        )
    texts = []
    for position, description in enumerate(descriptions):
        if not isinstance(description, FragmentDescription):
            raise RiffledbTypeError(
                "descriptions must hold FragmentDescription objects (from "
                "Table.write_fragments or FragmentDescription.from_json), got "
                f"{describe(description)} at position {position}"
            )
        texts.append(description.to_json())
    # An empty list is refused by Table::CommitFragments, the owner of that check.
    return texts


def check_commit_mode(mode: Any) -> bool:
    """Whether ``mode`` ("append" or "overwrite") overwrites."""
    check_str(mode, "mode")
    if mode not in ("append", "overwrite"):
        raise InvalidError(f"Invalid mode {mode!r}: expected 'append' or 'overwrite'")
    return mode == "overwrite"


def _open(uri: str | os.PathLike, table_name: str):
    from . import connect

    return connect(uri).open_table(check_str(table_name, "table_name"))


def write_fragments(
    uri: str | os.PathLike,
    table_name: str,
    data: Any,
    *,
    schema: pa.Schema | None = None,
) -> list[FragmentDescription]:
    """Writes ``data`` as fragment files of table ``table_name`` of the database at
    ``uri`` without committing them: :meth:`Table.write_fragments` for a worker that
    has only the database's address.

    Returns:
        One description per file written; commit them with :func:`commit_fragments` or
        :meth:`Table.commit_fragments`.
    """
    return _open(uri, table_name).write_fragments(data, schema=schema)


def commit_fragments(
    uri: str | os.PathLike,
    table_name: str,
    descriptions: Iterable[FragmentDescription],
    mode: Literal["append", "overwrite"] = "append",
) -> int:
    """Commits ``descriptions`` to table ``table_name`` of the database at ``uri`` in
    one new version: :meth:`Table.commit_fragments` on the newest version.

    Returns:
        The new version.
    """
    return _open(uri, table_name).commit_fragments(descriptions, mode=mode)
