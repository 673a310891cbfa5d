"""What a permutation reads from: a riffledb ``Table`` (a local snapshot) or a remote
table (``db://``, :class:`riffledb.remote.table.RemoteTable`). The one place that tells
them apart for permutations, the builder and ``StreamingDataset``; both end as a native
source the permutation reader takes rows from (``cpp/src/riffledb/permutation/
take_source.h``)."""

from __future__ import annotations

from typing import Any

from .errors import RiffledbTypeError
from .table import Table, reference


def is_remote(table: Any) -> bool:
    """Whether ``table`` is a remote table (without importing the remote package for
    local ones)."""
    if type(table).__name__ != "RemoteTable":
        return False
    from .remote.table import RemoteTable

    return isinstance(table, RemoteTable)


def check_base(table: Any, what: str = "table") -> None:
    """TypeError naming ``what`` unless ``table`` is a riffledb or a remote table."""
    if not isinstance(table, Table) and not is_remote(table):
        raise RiffledbTypeError(
            f"{what} must be a riffledb Table, got {type(table).__name__}"
        )


def base_source(table: Any, version: int | None) -> Any:
    """The native base of a permutation reader: a local table's snapshot at ``version``
    (None: its current one), or a remote table's take source pinned there."""
    if is_remote(table):
        return table._take_source(version)
    return reference(table).snapshot(version)


def base_name(table: Any) -> str:
    """The table's name (no I/O for a pending local table)."""
    if is_remote(table):
        return table.name
    return reference(table).name
